"""The dashboard asks for the token of a guarded bridge (headless Debian Chromium)."""

from __future__ import annotations

import asyncio
import os

import pytest

from katcpx.web import DeviceHub, DeviceSpec, WebServer
from katcpx.web._auth import Guard

from . import browser
from .conftest import TIMEOUT

pytestmark = pytest.mark.skipif(
    not os.path.exists(browser.CHROMIUM),
    reason=f"{browser.CHROMIUM} is absent: apt-get install -y chromium chromium-driver",
)

WAIT = 10.0
TOKEN = "dashboard-token"


def drive(url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    b = browser.Browser()
    try:
        d = b.driver
        wait = WebDriverWait(d, WAIT)
        d.get(url)
        wait.until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '#request-device option[value="thermo"]')
        )
        Select(d.find_element(By.ID, "request-device")).select_by_value("thermo")
        details = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, 'details[data-request="set-temp"]')
        )
        details.find_element(By.TAG_NAME, "summary").click()
        form = details.find_element(By.TAG_NAME, "form")
        form.find_element(By.NAME, "t").send_keys("15.5")
        result = form.find_element(By.CSS_SELECTOR, ".result")

        # First a wrong token: refused, and forgotten.
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = wait.until(expected_conditions.alert_is_present())
        assert "token" in alert.text
        alert.send_keys("wrong")
        alert.accept()
        wait.until(lambda d: result.text.startswith("error:"))
        assert "token" in result.text
        # Asked again on the next use; the right token lets the request through.
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = wait.until(expected_conditions.alert_is_present())
        alert.send_keys(TOKEN)
        alert.accept()
        wait.until(lambda d: result.text.startswith("ok 15.5"))
        # Kept for the tab: no third prompt.
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: result.text.startswith("ok 15.5") and "ms" in result.text)
        assert not expected_conditions.alert_is_present()(d)
    finally:
        b.quit()


async def test_dashboard_asks_for_the_token(device):
    hub = DeviceHub([DeviceSpec("thermo", *device.bind_address)], ("event",), request_timeout=2.0)
    web = WebServer(hub, "127.0.0.1", 0, guard=Guard(TOKEN))
    await web.start()
    try:
        await hub.until_synced(TIMEOUT)
        await asyncio.wait_for(asyncio.to_thread(drive, f"http://127.0.0.1:{web.port}/"), 90)
    finally:
        await web.stop()
    assert device.temp.value() == 15.5
