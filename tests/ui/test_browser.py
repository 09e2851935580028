"""A real browser drives the app the way a person does: upload a file, start
training, watch the loss plot gain points, stop. Playwright with Debian's
chromium (Playwright cannot download its own browser here)."""

from contextlib import contextmanager
from pathlib import Path

import pytest
from app_server import running_app
from conftest import DEMO_DATA

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The points of the loss plot's training curve, read from the plotly figure in the page.
TRAINING_POINTS = """() => {
  const plot = document.querySelector('#loss-plot .js-plotly-plot');
  const traces = plot && plot.data ? plot.data.filter(t => t.name === 'training') : [];
  return traces.reduce((n, t) => n + t.x.length, 0);
}"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@contextmanager
def app_page(model_dir, runs, height: int = 800):
    """The app on `model_dir` with its runs in `runs`, opened in chromium; the browser closed after."""
    with running_app(model_dir, runs) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


@pytest.fixture
def page(tiny_model_dir, tmp_path):
    with app_page(tiny_model_dir, tmp_path / "runs") as opened:
        yield opened


def wait_for_points(page, more_than: int, timeout_ms: int = 120_000) -> int:
    page.wait_for_function(f"() => ({TRAINING_POINTS})() > {more_than}", timeout=timeout_ms)
    return page.evaluate(TRAINING_POINTS)


def test_upload_start_watch_the_loss_and_stop(page):
    expect = sync_api.expect
    page.get_by_label("Upload a file").check()
    page.locator("#dataset-file input[type=file]").set_input_files(str(DEMO_DATA))
    expect(page.locator("#data-summary")).to_contain_text("380 records", timeout=60_000)
    expect(page.locator("#data-summary")).to_contain_text("Alpaca")

    page.get_by_role("tab", name="2 · Hyperparameters").click()
    steps = page.get_by_label("Max steps")
    steps.fill("100000")  # long enough that the run is still training when we stop it
    steps.press("Tab")
    expect(page.locator("#run-summary")).to_contain_text("Optimizer steps: 100000", timeout=30_000)

    page.get_by_role("tab", name="3 · Train").click()
    page.get_by_role("button", name="Start training").click()
    first = wait_for_points(page, 0)
    wait_for_points(page, first)  # the live plot gains points while training runs
    expect(page.locator("#run-status")).to_contain_text("training")

    # A reloaded page re-attaches to the run: the browser keeps its owner key.
    page.reload()
    page.get_by_role("tab", name="3 · Train").click()
    expect(page.locator("#run-status")).to_contain_text("training", timeout=30_000)
    wait_for_points(page, 0)

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#run-status")).to_contain_text("stopped", timeout=120_000)
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()


# The overlaid training-loss curves on the Experiments tab: name and point count per trace.
SWEEP_CURVES = """() => {
  const plot = document.querySelector('#runs-loss .js-plotly-plot');
  return plot && plot.data ? plot.data.filter(t => t.x && t.x.length > 1).map(t => t.name) : [];
}"""


def test_the_learning_rate_exercise_draws_three_curves_and_a_verdict(page):
    """One button runs the tutorial's exercise; the three runs' losses appear on one plot,
    one curve per learning rate, and the verdict names the winner."""
    expect = sync_api.expect
    page.get_by_role("tab", name="6 · Experiments").click()
    page.locator("#lr-exercise").click()
    page.wait_for_function(f"() => ({SWEEP_CURVES})().length >= 3", timeout=600_000)
    names = page.evaluate(SWEEP_CURVES)
    assert sorted(names) == sorted(["lr=1e-05", "lr=2e-05", "lr=5e-05"]), names
    expect(page.locator("#verdict")).to_contain_text("Lowest validation loss", timeout=600_000)
    # All three finish (the server's training thread must not outlive the test).
    page.wait_for_function("() => (document.querySelector('#runs-table').innerText.match(/completed/g) || [])"
                           ".length >= 3", timeout=600_000)
