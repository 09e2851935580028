"""The Chat tab in a real browser, as a person uses it after a run: two turns
sent, both columns filling with answers, the trained model's answer marked
better, and the pair found on the Data tab under the source "My chat pairs".
Playwright with Debian's chromium."""

import pytest
from test_browser import CHROMIUM, app_page
from test_chat_tab import train_into

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
ANSWERS = "#chat-{} [data-testid='bot']"


@pytest.fixture
def trained(tiny_model_dir, tmp_path):
    return train_into(tmp_path / "runs", tiny_model_dir)


@pytest.fixture
def page(tiny_model_dir, tmp_path, trained):
    with app_page(tiny_model_dir, tmp_path / "runs", height=900) as opened:
        yield opened


def send(page, message: str, turns: int) -> None:
    """Type a message and send it; wait until both models answered `turns` turns."""
    expect = sync_api.expect
    page.locator("#chat-message textarea").fill(message)
    page.locator("#chat-message textarea").press("Enter")
    for column in ("base", "trained"):
        expect(page.locator(ANSWERS.format(column))).to_have_count(turns, timeout=120_000)
    expect(page.locator("#chat-send")).to_be_enabled()
    page.wait_for_function("() => !document.querySelector('#chat-note').innerText.includes('is answering')",
                           timeout=120_000)


def test_two_turns_side_by_side_one_marked_and_the_pair_on_the_data_tab(page, trained):
    expect = sync_api.expect
    page.get_by_role("tab", name="4b · Chat").click()
    send(page, "Convert the date to ISO 8601: March 7, 2021", 1)
    send(page, "And March 8?", 2)
    for column in ("base", "trained"):  # both columns hold two answers, none of them waiting
        texts = page.locator(ANSWERS.format(column)).all_inner_texts()
        assert len(texts) == 2 and all(t.strip() and t.strip() != "…" for t in texts), texts
    expect(page.locator("#chat-note")).to_contain_text(f"Run {trained.name}")
    expect(page.locator("#chat-message textarea")).to_have_value("")  # sent: the box is empty again

    page.get_by_label("Trained", exact=True).first.check()  # which answer of the latest turn is better
    page.locator("#chat-mark").click()
    expect(page.locator("#chat-saved")).to_contain_text("1 preference pair", timeout=30_000)
    expect(page.locator(ANSWERS.format("trained")).last).to_contain_text("marked better")

    page.get_by_role("tab", name="1 · Data").click()
    page.get_by_label("My chat pairs (Chat tab)").check()
    expect(page.locator("#data-summary")).to_contain_text("pairs.jsonl (from your chats)", timeout=60_000)
    expect(page.locator("#data-summary")).to_contain_text("1 records")
    expect(page.locator("#pair-chosen")).to_contain_text("And March 8?")  # the pair's prompt, its two sides
    expect(page.locator("#pair-rejected")).to_be_visible()
