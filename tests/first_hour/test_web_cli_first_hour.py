"""katcpx-web run as a user runs it: kind 2, what the user typed (--timeout) wins."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from sim_process import Sim, child_env


def test_explicit_choice_wins_web_timeout_over_hint(antenna: Sim) -> None:
    web = subprocess.Popen(
        [sys.executable, "-m", "katcpx.web", f"antenna={antenna.address('antenna')}"]
        + ["--timeout", "1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
    )
    try:
        assert web.stdout is not None
        seen = []
        for line in web.stdout:  # start-up notes (the access guard) come first
            seen.append(line)
            if "serving antenna on" in line or len(seen) > 20:
                break
        assert "serving antenna on" in line, seen
        url = line.rsplit(" on ", 1)[1].strip()
        deadline = time.monotonic() + 30
        while json.load(urllib.request.urlopen(url + "api/devices/antenna"))["state"] != "synced":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # ?target hints 300 s; this slew takes over a minute; --timeout 1 is what counts.
        post = urllib.request.Request(
            url + "api/devices/antenna/requests/target",
            data=b'{"args": [0, 20]}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        start = time.monotonic()
        try:
            urllib.request.urlopen(post, timeout=30)
            raise AssertionError("expected a 504")
        except urllib.error.HTTPError as exc:
            assert exc.code == 504
            body = json.load(exc)
        assert body["status"] == "timeout" and body["error"].startswith(
            "no reply within 1 s; the request may still be running on the device"
        )
        assert time.monotonic() - start < 10
    finally:
        web.terminate()
        web.wait(10)
