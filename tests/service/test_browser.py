"""The web pages in a real browser: Debian's chromium driven by Playwright (`make test` installs it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make browser-tools` installs it")
        pytest.skip("needs Debian's chromium (make browser-tools)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_start_a_run_from_the_form_watch_it_and_read_its_report(
    browser, served, small_input: Path, tmp_path: Path
):
    shots = Path(os.environ.get("CURATE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(served.base + "/runs")
    page.fill("#input", str(small_input))
    page.click("#start-run")
    page.wait_for_selector("#started-link")
    run_id = page.inner_text("#started-link")
    row = page.locator(f"tr[data-run='{run_id}']")
    row.wait_for()
    # Progress reaches 100% (the bar's value) when the run has succeeded.
    page.wait_for_selector(f"tr[data-run='{run_id}'][data-status='succeeded']", timeout=300_000)
    assert row.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
    assert row.locator(".pct").inner_text() == "100%"

    page.click(f"tr[data-run='{run_id}'] a[href='/runs/{run_id}']")
    page.wait_for_selector("#report-frame")
    assert page.locator("#summary [role=progressbar]").get_attribute("aria-valuenow") == "100"
    assert page.locator("#stages tbody tr").count() >= 5
    page.frame_locator("#report-frame").locator(".main-svg").first.wait_for()
    page.screenshot(path=str(shots / "run-page.png"))

    page.click("#report a[href$='/report']")
    page.wait_for_selector(".chart .main-svg")
    charts = page.locator(".chart")
    sizes = [charts.nth(i).bounding_box() for i in range(charts.count())]
    assert len(sizes) >= 10
    assert all(box and box["width"] > 100 and box["height"] > 100 for box in sizes)
    assert page.locator(".chart .main-svg").count() >= len(sizes)  # every chart div was drawn by plotly
    assert page.locator(".chart .bars .point").count() > 0  # and has bars in it
    page.screenshot(path=str(shots / "report.png"), full_page=True)

    page.goto(served.base + "/train")
    page.wait_for_selector("#loss-chart .main-svg")
    assert errors == []
    print(f"\nscreenshots: {shots}/run-page.png {shots}/report.png")
