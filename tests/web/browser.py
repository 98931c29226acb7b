"""Headless Debian Chromium through selenium and the system chromedriver (no downloads).

Also a script: ``python -m tests.web.browser URL OUT.png [FILTER [PLOT [REQUEST [SECONDS]]]]``
saves a screenshot of a running dashboard (how ``docs/web-dashboard.png`` is made).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def missing() -> str | None:
    """Why the browser tests cannot run, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is absent (apt-get install -y chromium chromium-driver)"
    if not os.path.exists(CHROMEDRIVER):
        return f"{CHROMEDRIVER} is absent (apt-get install -y chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


class Browser:
    """A fresh headless Chromium with its own profile directory, removed on quit."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="katcpx-web-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        # Explicit paths: Selenium Manager never looks for (or downloads) a browser.
        self.driver: Any = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def screenshot(
    url: str,
    out: str,
    filter_text: str = "",
    plot: str = "",
    request: str = "",
    settle: float = 8.0,
) -> None:
    """Open the dashboard at `url`; filter, plot, open a request form; save a PNG."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = Browser(1500, 1200)
    try:
        d = browser.driver
        d.get(url)
        wait = WebDriverWait(d, 15)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sensors tbody tr"))
        if filter_text:
            d.find_element(By.ID, "sensor-filter").send_keys(filter_text)
        if plot:
            wait.until(
                lambda d: d.find_elements(By.CSS_SELECTOR, f"#plot-sensor option[value='{plot}']")
            )
            Select(d.find_element(By.ID, "plot-sensor")).select_by_value(plot)
        if request:
            wait.until(
                lambda d: d.find_elements(By.CSS_SELECTOR, f"details[data-request='{request}']")
            )
            det = d.find_element(By.CSS_SELECTOR, f"details[data-request='{request}']")
            d.execute_script("arguments[0].open = true; arguments[0].scrollIntoView()", det)
        time.sleep(settle)  # let the plot fill: this is a picture, not a test
        d.save_screenshot(out)
    finally:
        browser.quit()


if __name__ == "__main__":
    args = sys.argv[1:]
    screenshot(*args[:5], *[float(a) for a in args[5:6]])
