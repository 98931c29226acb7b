"""Kind 6, docs not run as a user runs them: every block of README.md and docs/ runs.

Each page runs in its own process (``docs_runner.py``), in a private network namespace when
``unshare`` allows one, so that the documented ports (7147...) are free; each block there is
its own process, run exactly as written. The marker convention is in docs/design.md.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from docs_runner import (
    ROOT,
    isolated_command,
    output_matches,
    parse_page,
    port_free,
    same_as_missing,
)

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: Ports the pages use; without a private namespace they must be free on this host.
DOC_PORTS = [6379, 6380, 7147, 7148, 7149, 7150, 7151, 7160, 8080, 8081, 8082, 8083, 8443]
DOC_PORTS += [9100, 9147]
PAGE_TIMEOUT = 600


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_docs_every_block_is_run_or_marked() -> None:
    problems = []
    for page in PAGES:
        blocks = parse_page(page)
        for prev, block in zip([None, *blocks], blocks, strict=False):
            if block.kind == "unmarked":
                problems.append(f"{block.ident}: {block.reason}")
            elif block.kind == "skip" and not block.reason:
                problems.append(f"{block.ident}: a skip/fragment marker needs a reason")
            elif block.kind == "file" and not block.reason:
                problems.append(f"{block.ident}: a file marker needs a path")
            elif block.kind == "same-as":
                problems += [
                    f"{block.ident}: {line!r} is not run on {block.reason}"
                    for line in same_as_missing(block)
                ]
            elif block.kind == "output" and (
                prev is None or prev.kind not in ("script", "shell", "doctest")
            ):
                problems.append(f"{block.ident}: an output block must follow a run block")
    assert not problems, "\n".join(problems)


def test_docs_marker_convention_is_enforced(tmp_path: Path) -> None:
    # The check above can fail: an unmarked non-runnable block, a reasonless skip.
    page = tmp_path / "page.md"
    page.write_text(
        "```json\n{}\n```\n\n<!-- docs-test: skip -->\n```text\nx\n```\n\n"
        "<!-- docs-test: fragment: a method of the class above -->\n```python\n    pass\n```\n"
    )
    kinds = [(b.kind, b.reason) for b in parse_page(page)]
    assert kinds[0][0] == "unmarked"
    assert kinds[1] == ("skip", "")
    assert kinds[2] == ("skip", "a method of the class above")


def test_docs_indented_fence_is_a_block(tmp_path: Path) -> None:
    # A block inside a numbered step is run (and marked) as any other, without its indent.
    page = tmp_path / "page.md"
    page.write_text(
        "1. Save it:\n\n   <!-- docs-test: file: a.toml -->\n   ```toml\n   x = 1\n   ```\n\n"
        "2. Run:\n\n   ```sh\n   cat a.toml\n   ```\n"
    )
    blocks = parse_page(page)
    assert [(b.kind, b.reason, b.text) for b in blocks] == [
        ("file", "a.toml", "x = 1\n"),
        ("shell", "", "cat a.toml\n"),
    ]


def test_docs_output_matching() -> None:
    assert output_matches("az  1.5 deg  nominal\n", "az  17.25 deg    nominal\n")
    assert not output_matches("az  1.5 deg  nominal\n", "az  17.25 deg  warn\n")
    assert output_matches("a 1\n...\nz 2\n", "a 3\nb\nc\nz 4\n")
    assert not output_matches('{"value": 5.4}\n', '{"value": 5.4}\n{"value": 5.5}\n')


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_docs_page_runs_as_written(page: Path) -> None:
    blocks = parse_page(page)
    if not any(b.kind not in ("skip", "output") for b in blocks):
        pytest.skip("no runnable blocks")
    command, isolation = isolated_command(page)
    if isolation == "host":
        busy = [p for p in DOC_PORTS if not port_free(p)]
        if busy:
            pytest.skip(f"no private network namespace (unshare) and ports {busy} are in use")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=PAGE_TIMEOUT)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stderr
    failed = [r for r in results if r["status"] == "failed"]
    report = "\n\n".join(f"{r['block']} ({r['kind']}): {r['detail']}" for r in failed)
    assert not failed, report
    assert len(results) == len(blocks)


def test_docs_server_example_must_stop_on_ctrl_c(tmp_path: Path, monkeypatch) -> None:
    # A server example that ignores Ctrl-C fails, as it would leave a user stuck.
    import docs_runner

    monkeypatch.setattr(docs_runner, "SIGINT_GRACE", 1.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    page = tmp_path / "page.md"
    page.write_text(
        f"<!-- docs-test: background port={port} -->\n```python\n"
        "import signal, socket, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "time.sleep(60)\n```\n"
    )
    (result,) = docs_runner.run_page(page)
    assert result["status"] == "failed"
    assert "did not stop within 1 s of Ctrl-C" in str(result["detail"])


def test_docs_same_as_lines_must_run_on_the_page(tmp_path: Path) -> None:
    # A summary of another page's commands fails once that page no longer runs one of them.
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: same-as: docs/security.md -->\n```text\n"
        "katcp-cmd --tls-ca ca.pem localhost:7148 watchdog\nkatcp-cmd --no-such-flag\n```\n"
    )
    (block,) = parse_page(page)
    assert block.kind == "same-as"
    assert same_as_missing(block) == ["katcp-cmd --no-such-flag"]


def test_docs_file_background_output_and_ready(tmp_path: Path) -> None:
    # A file block is written for the blocks after it; a background block waits for its
    # ready text, and its output block is checked against what it printed first.
    import docs_runner

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = (
        "import socket, sys, time\n"
        "print(open('greeting.txt').read().strip(), flush=True)\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "time.sleep(0.5)\nprint('now ready', flush=True)\n"
        "try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    sys.exit(0)\n"
    )
    page = tmp_path / "page.md"

    def run(first_line: str) -> list[dict[str, object]]:
        page.write_text(
            "<!-- docs-test: file: greeting.txt -->\n```text\nhello\n```\n\n"
            f'<!-- docs-test: background port={port} ready="now ready" -->\n'
            f"```python\n{server}```\n\n"
            f"<!-- docs-test: output -->\n```text\n{first_line}\n```\n\n"
            "```sh\ngrep -q 'now ready' background_*.log\n```\n"
        )
        return docs_runner.run_page(page)

    results = run("hello")
    assert [r["status"] for r in results] == ["passed", "passed", "skipped", "passed"], results
    wrong = run("goodbye")
    assert wrong[1]["status"] == "failed"
    assert "expected first:\ngoodbye" in str(wrong[1]["detail"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_docs_scale_out_diagram_command(tmp_path: Path) -> None:
    # The command docs/scale-out.md gives (in running text) for its diagram makes a PNG.
    doc = ROOT / "docs" / "scale-out.md"
    (line,) = re.findall(r"`(dot -Tpng [^`]*)`", doc.read_text())
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "scale-out.dot", tmp_path / "docs")
    subprocess.run(line, shell=True, cwd=tmp_path, check=True, timeout=60)
    assert (tmp_path / "docs" / "scale-out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
