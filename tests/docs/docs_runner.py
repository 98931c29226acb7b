"""Run the fenced code blocks of a Markdown page as a user would, and check their output.

The marker convention (docs/design.md, "Conventions") in short: a block is run unless an
HTML comment ``<!-- docs-test: ... -->`` on the line before its fence says otherwise.

- ``python`` blocks run as scripts (``python3 FILE``), each its own process, and must exit
  with status 0; blocks starting with ``>>>`` run as doctests (``python3 -m doctest``).
- Transcripts (any block whose first line starts with ``$ ``) run each ``$ COMMAND`` in
  one bash process, in order; the lines up to the next ``$`` are the expected output
  (stdout and stderr, as on a terminal).
- ``sh``/``bash`` blocks without ``$`` run as a bash script that must exit with status 0.

Markers:

- ``skip: REASON`` or ``fragment: REASON``: not run (a piece of a larger example, a
  command that installs or runs forever...). The reason is required.
- ``output``: the expected output of the run block just before it; after a ``background``
  block, what that block prints first (it goes on running, so more may follow).
- ``file: PATH``: write the block (a config file the page says to save) to PATH in the
  page's working folder, for the blocks after it.
- ``same-as: PAGE``: the commands of this block (each line, a leading ``$ `` dropped) are
  run on PAGE; not run here, and each line must occur in a block PAGE runs.
- ``background port=PORT [port=PORT...] [ready="TEXT"...]``: start the block (python or sh)
  and keep it running until the end of the page; the next block runs once every PORT
  accepts and the block has printed each TEXT (e.g. a bridge's ``device psu is synced``).
- ``setup: COMMAND`` (a marker of its own, not before a fence): run COMMAND in bash in the
  background, for the blocks after it, as ``background`` does; ``port=PORT`` words after
  ``--`` at the end say what to wait for: ``<!-- docs-test: setup: katcpx-sim site
  --speed 50 -- port=7151 -->``.

Expected output is matched loosely where a live simulation varies: every number matches
any number, every run of spaces any run of spaces, and a line ``...`` any lines (none
too). Everything else must be as printed.

``python docs_runner.py PAGE`` runs the page's blocks in the current network namespace and
prints one JSON object per block; the tests run it in a private namespace (``unshare``) so
that the documented ports (7147...) are free.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK_TIMEOUT = 120.0
SIGINT_GRACE = 10.0
PORT_TIMEOUT = 60.0
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
# A fence may be indented (a block inside a list item); its lines lose that indentation.
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[\w+-]*)")
SEPARATOR = "@@docs-test-separator@@"
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Block:
    """One fenced block of a page, or a ``setup`` marker."""

    page: str
    line: int  # 1-based line of the opening fence (or of the setup marker)
    info: str
    text: str
    marker: str = ""
    kind: str = ""  # doctest, script, transcript, shell, skip, output, setup, file, same-as,
    # unmarked
    reason: str = ""  # skip: why; file: the path; same-as: the page
    ports: list[int] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    background: bool = False

    @property
    def ident(self) -> str:
        return f"{self.page}:{self.line}"


def parse_page(path: Path) -> list[Block]:
    """The blocks of a Markdown page, classified by the marker convention."""
    lines = path.read_text().splitlines()
    page = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    blocks: list[Block] = []
    marker = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line.strip())
        if m:
            body = m["body"]
            if body.startswith("setup:"):
                command, _, waits = body[len("setup:") :].partition(" -- ")
                block = Block(page, i + 1, "sh", command.strip(), body, "setup")
                block.ports = _ports(waits)
                block.background = True
                blocks.append(block)
            else:
                marker = body
            i += 1
            continue
        f = FENCE.match(line)
        if not f:
            if line.strip():
                marker = ""
            i += 1
            continue
        fence, indent, start = f["fence"], f["indent"], i
        i += 1
        body_lines = []
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body_lines.append(lines[i].removeprefix(indent))
            i += 1
        i += 1
        blocks.append(
            _classify(Block(page, start + 1, f["info"], "\n".join(body_lines) + "\n", marker))
        )
        marker = ""
    return blocks


def _ports(text: str) -> list[int]:
    return [int(p) for p in re.findall(r"port=(\d+)", text)]


def _classify(block: Block) -> Block:
    marker, text, info = block.marker, block.text, block.info
    word = re.split(r"[\s:]", marker, maxsplit=1)[0] if marker else ""
    if word in ("skip", "fragment"):
        block.kind = "skip"
        block.reason = marker.split(":", 1)[1].strip() if ":" in marker else ""
        return block
    if word == "output":
        block.kind = "output"
        return block
    if word in ("file", "same-as"):
        block.kind = word
        block.reason = marker.split(":", 1)[1].strip() if ":" in marker else ""
        return block
    if word == "background":
        block.background = True
        block.ports = _ports(marker)
        block.ready = [w[len("ready=") :] for w in shlex.split(marker) if w.startswith("ready=")]
    elif marker:
        block.kind = "unmarked"
        block.reason = f"unknown docs-test marker {marker!r}"
        return block
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if info == "python" and first.startswith(">>>"):
        block.kind = "doctest"
    elif info == "python":
        block.kind = "script"
    elif first.startswith("$ "):
        block.kind = "transcript"
    elif info in ("sh", "bash"):
        block.kind = "shell"
    else:
        block.kind = "unmarked"
        block.reason = (
            f"a {info or 'plain'} block that is neither run nor marked: mark it "
            "<!-- docs-test: skip: REASON --> or make it runnable"
        )
    return block


# -- matching ---------------------------------------------------------------------------------


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for m in NUMBER.finditer(expected):
        parts.append(_literal(expected[pos : m.start()]))
        parts.append(NUMBER.pattern)
        pos = m.end()
    parts.append(_literal(expected[pos:]))
    return re.compile("".join(parts))


def _literal(text: str) -> str:
    return r"\s+".join(re.escape(piece) for piece in re.split(r"\s+", text))


def output_matches(expected: str, actual: str) -> bool:
    """Whether `actual` output is what `expected` (from the page) documents."""
    want = (
        [line.rstrip() for line in expected.rstrip("\n").splitlines()] if expected.strip() else []
    )
    got = [line.rstrip() for line in actual.rstrip("\n").splitlines()] if actual.strip() else []
    return _match(want, got)


def _match(want: list[str], got: list[str]) -> bool:
    if not want:
        return not got
    if want[0].strip() == "...":
        return any(_match(want[1:], got[k:]) for k in range(len(got) + 1))
    return (
        bool(got)
        and _line_pattern(want[0]).fullmatch(got[0]) is not None
        and _match(want[1:], got[1:])
    )


# -- running ----------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be bound right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def child_env(**extra: str) -> dict[str, str]:
    """Environment of child processes: this source tree importable, unbuffered, no colour."""
    env = dict(os.environ)
    env.pop("KATCP_SERVER", None)
    paths = [str(ROOT), env.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
        COLUMNS="100",
    )
    # The console scripts of this interpreter's environment, as after pip install.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def _command(block: Block, workdir: Path) -> list[str]:
    if block.info == "python":
        path = workdir / f"block_{block.line}.py"
        path.write_text(block.text)
        return [sys.executable, path.name]
    return ["bash", "-c", block.text]


def _wait_ready(block: Block, proc: subprocess.Popen[str], log: Path) -> str:
    """Wait for a background block's ports, then for the lines it must print first."""
    problem = _wait_ports(block.ports, proc)
    deadline = time.monotonic() + PORT_TIMEOUT
    for text in [] if problem else block.ready:
        # Polling its output file: a subprocess writing a file gives no event to wait on.
        while text not in log.read_text():
            if proc.poll() is not None and proc.returncode != 0:
                return f"exited with status {proc.returncode} before printing {text!r}"
            if time.monotonic() > deadline:
                return f"did not print {text!r} within {PORT_TIMEOUT:g} s"
            time.sleep(0.1)
    return problem


def _wait_ports(ports: list[int], proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + PORT_TIMEOUT
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                # A block that starts servers in the background (cmd &) exits with 0 at once.
                if proc.poll() is not None and proc.returncode != 0:
                    return f"exited with status {proc.returncode} before port {port} opened"
                if time.monotonic() > deadline:
                    return f"port {port} did not open within {PORT_TIMEOUT:g} s"
                time.sleep(0.1)
    return ""


def _transcript_script(text: str) -> tuple[str, list[str]]:
    """A bash script running each ``$`` command, and the expected output of each."""
    commands: list[str] = []
    expected: list[str] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            commands.append(line[2:])
            expected.append("")
        elif commands:
            expected[-1] += line + "\n"
    script = ["exec 2>&1"]
    for command in commands:
        script.append(command)
        # On a line of its own even after output without a final newline (curl's).
        script.append(f"__status=$?; printf '\\n%s\\n' {SEPARATOR}; (exit $__status)")
    return "\n".join(script) + "\n", expected


def run_page(path: Path) -> list[dict[str, object]]:
    """Run the blocks of a page in order; one result per block."""
    blocks = parse_page(path)
    results: list[dict[str, object]] = []
    background: list[tuple[subprocess.Popen[str], Block, dict[str, object]]] = []
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="docs-test-") as tmp:
        workdir = Path(tmp)
        try:
            for index, block in enumerate(blocks):
                result = {
                    "block": block.ident,
                    "kind": block.kind,
                    "status": "passed",
                    "detail": "",
                }
                if block.kind in ("skip", "unmarked", "output", "same-as"):
                    result["status"] = "skipped" if block.kind != "unmarked" else "failed"
                    result["detail"] = block.reason
                elif block.kind == "file":
                    result.update(_write_file(block, workdir))
                elif block.background:
                    # Its output goes to a file, never a pipe nobody reads while it runs
                    # (a full pipe would stall it).
                    log = workdir / f"background_{block.line}.log"
                    with log.open("w") as out:
                        proc = subprocess.Popen(
                            _command(block, workdir),
                            cwd=workdir,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            text=True,
                            start_new_session=True,
                            preexec_fn=_like_a_terminal,
                        )
                    following = blocks[index + 1 : index + 2]
                    expected = (
                        following[0].text if following and following[0].kind == "output" else None
                    )
                    background.append(_Background(proc, block, result, log, expected))
                    problem = _wait_ready(block, proc, log)
                    if problem:
                        out_text = log.read_text() if proc.poll() is not None else ""
                        result.update(status="failed", detail=f"{problem}\n{out_text}")
                else:
                    result.update(_run_block(block, blocks[index + 1 :], workdir, env))
                results.append(result)
        finally:
            for bg in background:
                block, result = bg.block, bg.result
                # A Python program must end on Ctrl-C as it would in a terminal; commands
                # put in the background by a shell (cmd &) ignore SIGINT, so they get SIGTERM.
                if not _stop(bg.proc, SIGINT_GRACE if block.info == "python" else 2.0):
                    if block.info == "python" and result["status"] == "passed":
                        result.update(
                            status="failed",
                            detail=f"did not stop within {SIGINT_GRACE:g} s of Ctrl-C (SIGINT)",
                        )
                if bg.expected is not None and result["status"] == "passed":
                    # What it printed first: the documented lines, then anything (it kept
                    # running, and logged what the blocks after it did).
                    got = bg.log.read_text()
                    if not output_matches(bg.expected.rstrip("\n") + "\n...\n", got):
                        result.update(
                            status="failed", detail=f"expected first:\n{bg.expected}\ngot:\n{got}"
                        )
    return results


@dataclass
class _Background:
    """A block left running until the end of the page."""

    proc: subprocess.Popen[str]
    block: Block
    result: dict[str, object]
    log: Path
    expected: str | None


def _write_file(block: Block, workdir: Path) -> dict[str, object]:
    """A ``file: PATH`` block: the page says to save it as PATH (in the working folder)."""
    target = (workdir / block.reason).resolve()
    if not block.reason or not target.is_relative_to(workdir.resolve()):
        return {"status": "failed", "detail": f"file: needs a relative path, got {block.reason!r}"}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.text)
    return {"status": "passed", "detail": f"wrote {block.reason}"}


RUN_KINDS = ("doctest", "script", "transcript", "shell", "setup")


def same_as_missing(block: Block) -> list[str]:
    """The lines of a ``same-as: PAGE`` block that no block run on PAGE has."""
    page = ROOT / block.reason
    if not block.reason or not page.is_file():
        return [f"same-as: no page {block.reason!r}"]
    run = {
        line.removeprefix("$ ").strip()
        for b in parse_page(page)
        if b.kind in RUN_KINDS
        for line in b.text.splitlines()
    }
    return [
        line
        for line in block.text.splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and line.removeprefix("$ ").strip() not in run
    ]


def _run_block(
    block: Block, following: list[Block], workdir: Path, env: dict[str, str]
) -> dict[str, object]:
    expected_block = next(
        (b for b in following[:1] if b.kind == "output"), None
    )  # only the very next block
    if block.kind == "doctest":
        path = workdir / f"block_{block.line}.txt"
        path.write_text(block.text)
        command = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", path.name]
        expected = None
    elif block.kind == "transcript":
        script, expected_each = _transcript_script(block.text)
        command = ["bash", "-c", script]
        expected = None
    else:
        command = _command(block, workdir)
        expected = expected_block.text if expected_block else None
    try:
        proc = subprocess.run(
            command,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            start_new_session=True,
            preexec_fn=_like_a_terminal,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        text = out.decode() if isinstance(out, bytes) else out
        return {"status": "failed", "detail": f"timed out after {BLOCK_TIMEOUT:g} s:\n{text}"}
    if block.kind == "transcript":
        outputs = proc.stdout.split("\n" + SEPARATOR + "\n")
        for want, got in zip(expected_each, outputs, strict=False):
            if not output_matches(want, got):
                return {
                    "status": "failed",
                    "detail": f"expected:\n{want}\ngot:\n{got}\n(all output:\n{proc.stdout})",
                }
        return {"status": "passed", "detail": ""}
    if proc.returncode != 0:
        return {
            "status": "failed",
            "detail": f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}",
        }
    if expected is not None and not output_matches(expected, proc.stdout):
        return {"status": "failed", "detail": f"expected:\n{expected}\ngot:\n{proc.stdout}"}
    return {"status": "passed", "detail": ""}


def _like_a_terminal() -> None:
    """In a block's process, before it starts: Ctrl-C (SIGINT) stops it, as in a terminal.

    A shell leaves SIGINT ignored in what it starts in the background (``pytest &``), and
    children inherit that; a Python program then never sees KeyboardInterrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(proc: subprocess.Popen[str], grace: float) -> bool:
    """Stop a background block: SIGINT to its process group (Ctrl-C), then SIGTERM, then
    SIGKILL; return whether SIGINT alone stopped it within `grace` seconds."""
    if proc.poll() is not None:
        _kill_group(proc.pid)  # what a shell block started in the background (cmd &)
        return True
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            if sig == signal.SIGINT:
                # The leader ended; anything it started in the background (cmd &) goes too.
                _kill_group(proc.pid)
                return True
            break
        except subprocess.TimeoutExpired:
            continue
    _kill_group(proc.pid)
    return False


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.5)


def isolated_command(page: Path) -> tuple[list[str], str]:
    """The command that runs a page in a private network namespace, and how isolated it is."""
    runner = [sys.executable, str(Path(__file__).resolve()), str(page)]
    try:
        probe = subprocess.run(
            ["unshare", "-rn", "ip", "link", "set", "lo", "up"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        probe = None
    if probe is not None and probe.returncode == 0:
        inner = "ip link set lo up && exec " + shlex.join(runner)
        return ["unshare", "-rn", "bash", "-c", inner], "namespace"
    return runner, "host"


if __name__ == "__main__":
    for item in run_page(Path(sys.argv[1]).resolve()):
        print(json.dumps(item), flush=True)
