"""End to end: the dashboard in headless Debian Chromium against a live server."""

from __future__ import annotations

import asyncio
import os

import pytest

from katcpx.sensor import Sensor

from . import browser

pytestmark = pytest.mark.skipif(
    not os.path.exists(browser.CHROMIUM),
    reason=f"{browser.CHROMIUM} is absent: apt-get install -y chromium chromium-driver",
)

WAIT = 10.0

# Counts canvas pixels drawn in the plot's line colour (#2563eb): is anything plotted?
BLUE_PIXELS = """
const c = document.getElementById('plot');
const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < data.length; i += 4)
  if (Math.abs(data[i] - 0x25) < 30 && Math.abs(data[i + 1] - 0x63) < 30 && Math.abs(data[i + 2] - 0xeb) < 30) n++;
return n;
"""


def drive(url: str, device, loop: asyncio.AbstractEventLoop) -> None:
    """The browser side, run in a thread while the loop serves the dashboard."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def on_loop(func, *args):
        loop.call_soon_threadsafe(func, *args)

    b = browser.Browser()
    try:
        d = b.driver
        wait = WebDriverWait(d, WAIT)
        d.get(url)
        row = 'tr[data-key="thermo/temp"]'

        def cell(css):
            found = d.find_elements(By.CSS_SELECTOR, css)
            return found[0].text if found else None

        # Devices panel shows the connection state.
        wait.until(lambda d: cell('#devices li[data-device="thermo"] .badge') == "synced")
        # Live table: the initial value, then a change pushed by the device.
        wait.until(lambda d: cell(f"{row} td.value") == "20.5")
        assert cell(f"{row} td.units") == "degC"
        on_loop(device.temp.set_value, 33.25, Sensor.WARN)
        wait.until(lambda d: cell(f"{row} td.value") == "33.25")
        assert cell(f"{row} td.status") == "warn"
        assert "status-warn" in d.find_element(By.CSS_SELECTOR, row).get_attribute("class")

        # The filter narrows the table (and the subscriptions).
        box = d.find_element(By.ID, "sensor-filter")
        box.send_keys("cou")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sensors tbody tr")) == 1)
        assert cell("#sensors tbody tr td.name") == "count"
        box.clear()
        box.send_keys(" ")  # an input event with an empty filter: every row again
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sensors tbody tr")) == 4)

        # Live plot of a numeric sensor; it opens with the readings the hub kept (33.25).
        Select(d.find_element(By.ID, "plot-sensor")).select_by_value("thermo/temp")
        wait.until(lambda d: d.execute_script("return window.katcpxDashboard.plot.history") >= 1)
        for value in (30.5, 35.25, 31.75):
            on_loop(device.temp.set_value, value)
            wait.until(lambda d, v=value: cell(f"{row} td.value") == str(v))
        points = d.execute_script("return window.katcpxDashboard.plot.points.length")
        assert points >= 3
        wait.until(lambda d: d.execute_script(BLUE_PIXELS) > 50)

        # A request form built from ?help: one input per parameter.
        Select(d.find_element(By.ID, "request-device")).select_by_value("thermo")
        details = d.find_element(By.CSS_SELECTOR, 'details[data-request="set-temp"]')
        details.find_element(By.TAG_NAME, "summary").click()
        form = details.find_element(By.TAG_NAME, "form")
        field = form.find_element(By.NAME, "t")
        assert field.get_attribute("placeholder") == "float"
        field.send_keys("12.5")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        result = form.find_element(By.CSS_SELECTOR, ".result")
        wait.until(lambda d: result.text.startswith("ok 12.5"))
        assert "ok" in result.get_attribute("class").split()
        wait.until(lambda d: cell(f"{row} td.value") == "12.5")
        # A failing request shows its reason.
        field.clear()
        field.send_keys("-100")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: result.text.startswith("fail too cold"))
        assert "fail" in result.get_attribute("class").split()
        logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not logs, logs
    finally:
        b.quit()


async def test_dashboard_end_to_end(web, device):
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(
        asyncio.to_thread(drive, f"http://127.0.0.1:{web.port}/", device, loop), 90
    )
    assert device.temp.value() == 12.5
