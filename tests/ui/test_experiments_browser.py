"""The Experiments tab with many runs, in a real browser (issue 26): a page of
the newest runs, the next page, a status filter, a run picked by clicking its
row, and deleted with a second press. Run folders written as files, no training."""

import pytest
from fake_runs import make_run
from test_browser import CHROMIUM, app_page

sync_api = pytest.importorskip("playwright.sync_api")
RUNS = 30

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


def run_id(i: int) -> str:
    return f"20261207-{i:03d}"


@pytest.fixture
def page(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    for i in range(RUNS):
        make_run(runs, run_id(i), 2e-5, created_at=float(1_000 + i), status="failed" if i % 3 else "completed")
    with app_page(tiny_model_dir, runs, height=900) as opened:
        opened.get_by_role("tab", name="6 · Experiments").click()
        yield opened


def test_many_runs_are_paged_filtered_picked_from_the_table_and_deleted(page):
    expect = sync_api.expect
    table, info = page.locator("#runs-table"), page.locator("#runs-page")
    expect(info).to_contain_text("Runs 1–20 of 30, newest first · page 1 of 2", timeout=60_000)
    expect(table).to_contain_text(run_id(29))
    page.locator("#runs-older").click()
    expect(info).to_contain_text("Runs 21–30 of 30", timeout=30_000)
    expect(table).to_contain_text(run_id(0))

    page.locator("#runs-status input").click()
    page.get_by_role("option", name="completed (10)").click()
    expect(info).to_contain_text("Runs 1–10 of 10 (of 30)", timeout=30_000)

    # Picked at first: the newest three (29, 28, 27); a click on a row adds its run to them.
    picked = page.locator("#compare-runs")
    expect(picked).to_contain_text(run_id(27), timeout=30_000)
    expect(picked).not_to_contain_text(run_id(24))
    page.locator("#runs-table").get_by_text(run_id(24), exact=True).first.click()
    expect(picked).to_contain_text(run_id(24), timeout=30_000)
    expect(page.locator("#verdict")).to_contain_text("Lowest validation loss", timeout=30_000)

    page.locator("#delete-runs").click()  # the first press asks, naming the runs
    question = page.locator("#delete-runs-question")
    expect(question).to_contain_text(f"Delete 4 runs for good ({run_id(29)}, {run_id(28)}, {run_id(27)}, "
                                     f"{run_id(24)})", timeout=30_000)
    page.locator("#delete-runs-confirm").click()
    expect(info).to_contain_text("Runs 1–8 of 8 (of 26)", timeout=30_000)
    expect(table).not_to_contain_text(run_id(24))
