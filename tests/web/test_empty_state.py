"""Kind 8, empty states: a dashboard with every device down says so, and what to do."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from katcpx.web import DeviceSpec

from . import browser
from .conftest import start_web

pytestmark = pytest.mark.skipif(
    not os.path.exists(browser.CHROMIUM),
    reason=f"{browser.CHROMIUM} is absent: apt-get install -y chromium chromium-driver",
)


def read_empty_states(url: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    b = browser.Browser()
    try:
        d = b.driver
        d.get(url)
        wait = WebDriverWait(d, 10)

        def text(css: str) -> str:
            found = d.find_elements(By.CSS_SELECTOR, css)
            return found[0].text if found and found[0].is_displayed() else ""

        wait.until(lambda d: text("#devices-empty"))
        wait.until(lambda d: text("#sensors-empty") and text("#requests-empty"))
        wait.until(lambda d: text("#devices li .reason"))  # the hub's first attempt failed
        states = {k: text(f"#{k}-empty") for k in ("devices", "sensors", "requests")}
        states["reason"] = text("#devices li .reason")
        return states
    finally:
        b.quit()


async def test_empty_state_every_device_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    server = await start_web([DeviceSpec("antenna", "127.0.0.1", port)], sync=False)
    try:
        url = f"http://127.0.0.1:{server.port}/"
        states = await asyncio.wait_for(asyncio.to_thread(read_empty_states, url), 60)
    finally:
        await server.stop()
    assert (
        f"No device is connected (antenna at 127.0.0.1:{port} (disconnected))"
        in (states["devices"])
    )
    assert "start the devices (for the simulated site: katcpx-sim site)" in states["devices"]
    assert states["sensors"] == "No sensors to show: no device is connected (see Devices above)."
    assert states["requests"] == "No requests to show: no device is connected yet."
    # Each disconnected device says why, next to its badge.
    assert f"127.0.0.1:{port}" in states["reason"] and "111" in states["reason"], states
