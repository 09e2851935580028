"""The Lessons tab in a real browser: a lesson's button loads its settings and
data and switches to its tab; "Show my answer" answers from the student's runs."""

import pytest
from test_browser import CHROMIUM, page  # noqa: F401  (the fixture: the app on the tiny model, in chromium)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


def test_a_lesson_button_loads_the_sweep_settings_and_opens_experiments(page):  # noqa: F811
    expect = sync_api.expect
    expect(page.locator("#data-summary")).to_contain_text("380 records", timeout=60_000)
    page.get_by_role("tab", name="7 · Lessons").click()
    page.get_by_text("3 · Which learning rate?").click()
    page.locator("#lesson-load-03-learning-rate").click()
    # The button switches tabs: the exercise's own button is in view.
    expect(page.locator("#lr-exercise")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="2 · Hyperparameters").click()
    expect(page.get_by_label("Preset")).to_have_value("lr-sweep-demo")
    expect(page.locator("#run-summary")).to_contain_text("(1 epochs of", timeout=30_000)

    page.get_by_role("tab", name="7 · Lessons").click()
    page.locator("#lesson-answer-01-vram").click()
    expect(page.locator("#lesson-answer-text-01-vram")).to_contain_text("The tutorial's 7B exercise", timeout=30_000)
    expect(page.locator("#lesson-answer-text-01-vram")).to_contain_text("estimated peak")
