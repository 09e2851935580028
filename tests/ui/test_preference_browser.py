"""A preference run in a real browser, as a person does it: upload pairs and see
a pair's two sides with the tokens each trains; pick DPO and see only its
settings and the run counted in pairs; train and watch its signals plotted
beside the loss; then continue from the finished run (its best checkpoint
becomes the Model setting)."""

import json
import re

import pytest
from test_browser import CHROMIUM, page  # noqa: F401  (the fixture: the app on the tiny model, in chromium)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")

PAIRS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "chosen": f"2021-03-{d:02d}",
          "rejected": f"{d}/3/2021, I think"} for d in range(1, 29)]
# The names of the traces with points in one of the Train tab's figures.
TRACES = """(id) => {
  const plot = document.querySelector(`#${id} .js-plotly-plot`);
  return plot && plot.data ? plot.data.filter(t => t.x && t.x.length).map(t => t.name) : [];
}"""


def slider(page, label: str):  # noqa: F811
    return page.get_by_role("slider", name=f"range slider for {label}")


def choose(page, label: str, value: str) -> None:  # noqa: F811
    """Pick a value of a Gradio dropdown as a person does: open it, click the option."""
    page.get_by_label(label).click()
    page.get_by_role("option", name=value, exact=True).click()


def test_a_dpo_run_from_upload_to_continue(page, tmp_path):  # noqa: F811
    expect = sync_api.expect
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(r) for r in PAIRS))
    page.get_by_label("Upload a file").check()
    page.locator("#dataset-file input[type=file]").set_input_files(str(pairs))
    expect(page.locator("#data-summary")).to_contain_text("Preference data", timeout=60_000)
    expect(page.locator("#pair-chosen")).to_be_visible()
    expect(page.locator("#pair-chosen")).to_contain_text("tokens trained as chosen")
    expect(page.locator("#pair-rejected")).to_contain_text("I think")  # the rejected reply, its own side
    expect(page.locator(".rendered-example").filter(has_text="One training example")).to_be_hidden()

    page.get_by_role("tab", name="2 · Hyperparameters").click()
    page.get_by_text("Objective: supervised or preference").click()
    expect(slider(page, "Beta")).to_be_hidden()  # supervised: no preference settings
    choose(page, "Objective", "dpo")
    expect(slider(page, "Beta")).to_be_visible()
    expect(slider(page, "Desirable weight")).to_be_hidden()  # KTO's only
    steps = page.get_by_label("Max steps")
    steps.fill("4")
    steps.press("Tab")
    expect(page.locator("#run-summary")).to_contain_text("DPO (preference pairs)", timeout=30_000)
    expect(page.locator("#run-summary")).to_contain_text("pairs)")

    page.get_by_role("tab", name="3 · Train").click()
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#run-status")).to_contain_text("completed", timeout=300_000)
    page.wait_for_function(f"() => ({TRACES})('signal-accuracy-plot').length >= 2", timeout=60_000)
    assert "margin (chosen - rejected) (training)" in page.evaluate(TRACES, "signal-rewards-plot")
    assert "preference accuracy (validation)" in page.evaluate(TRACES, "signal-accuracy-plot")

    page.get_by_role("tab", name="4 · Compare").click()
    page.locator("#compare-continue").click()
    expect(page.locator("#compare-continue-note")).to_contain_text("best checkpoint", timeout=60_000)
    page.get_by_role("tab", name="1 · Data").click()
    model = page.get_by_role("textbox", name=re.compile(r"^Model"))
    expect(model).to_have_value(re.compile(r"/best$"))
