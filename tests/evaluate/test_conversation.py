"""A conversation side by side becomes data: a marked turn is a preference pair
whose prompt is the conversation its chosen answer replied to, an edited answer
a supervised example; saved in the person's own files, which the Data tab reads
as the formats "preference" and "messages"."""

import pytest

from finetune.data.collected import FOLDER, MAX_RECORDS, CollectedData
from finetune.data.formats import normalise
from finetune.evaluate.conversation import Conversation, edited_examples, preference_pair
from finetune.sources.files import load_table


def _answered(conversation, user, base, trained, system=""):
    turn = conversation.start_turn(user, system)
    for side, text in (("base", base), ("trained", trained)):
        conversation.ask(turn, side)
        turn.answers[side] = text
    return turn


@pytest.fixture
def talk():
    conversation = Conversation("local", "run-1", "best")
    _answered(conversation, "Convert to ISO 8601: March 5, 2021", "March 5th", "2021-03-05", "Be brief.")
    _answered(conversation, "And March 6?", "The sixth", "2021-03-06")
    return conversation


def test_each_model_goes_on_from_its_own_answers_and_an_edit_replaces_one(talk):
    assert [m["content"] for m in talk.history("base")] == ["Convert to ISO 8601: March 5, 2021", "March 5th",
                                                            "And March 6?", "The sixth"]
    assert talk.turns[1].asked["trained"] == [
        {"role": "user", "content": "Convert to ISO 8601: March 5, 2021"},
        {"role": "assistant", "content": "2021-03-05"}, {"role": "user", "content": "And March 6?"}]
    assert talk.turns[0].asked["base"][0] == {"role": "system", "content": "Be brief."}
    talk.edit(1, "base", "2021-03-05")
    assert talk.history("base")[1]["content"] == "2021-03-05"  # the answer wanted is what it goes on from
    talk.edit(1, "base", "")
    assert talk.history("base")[1]["content"] == "March 5th"  # undone


def test_a_turn_cannot_be_marked_or_edited_without_two_different_answers(talk):
    with pytest.raises(ValueError, match="turn: 3 is not a turn of this conversation \\(1 to 2"):
        talk.mark(3, "trained")
    with pytest.raises(ValueError, match="better: 'gguf' is not one of base, trained"):
        talk.mark(1, "gguf")
    same = _answered(talk, "Say yes", "yes", "yes")
    with pytest.raises(ValueError, match="the two answers are the same"):
        talk.mark(0, "base")
    assert same.chosen is None
    with pytest.raises(ValueError, match="over the limit of 4,000"):
        talk.edit(0, "trained", "x" * 4001)
    with pytest.raises(ValueError, match="type a message first"):
        talk.start_turn("   ")
    long = Conversation("local", "run-1", "best")
    for _ in range(3):
        _answered(long, "x" * 4000, "y" * 500, "z" * 1000)
    long.start_turn("x" * 1000)  # 16,000 characters: the most a conversation may hold
    long.turns.pop()
    with pytest.raises(ValueError, match="the conversation is 16,001 characters, over the limit of 16,000"):
        long.start_turn("x" * 1001)
    with pytest.raises(ValueError, match="there is no answer yet"):
        Conversation("local", "run-1", "best").mark(0, "base")


def test_marked_and_edited_turns_are_saved_in_formats_the_data_tab_detects(talk, tmp_path):
    data = CollectedData(tmp_path, "local")
    talk.mark(2, "trained")
    data.put("pairs", talk.key(2), preference_pair(talk.turns[1]))
    talk.edit(1, "base", "2021-03-05")
    for side, example in edited_examples(talk.turns[0]).items():
        data.put("sft", f"{talk.key(1)}-{side}", example)

    assert data.path("pairs") == tmp_path / FOLDER / "local" / "pairs.jsonl"
    pairs = normalise(load_table(str(data.path("pairs"))))
    assert pairs.format == "preference" and pairs.kind == "pair"
    [pair] = pairs.examples
    assert pair.messages[-1]["content"] == "2021-03-06" and pair.rejected == "The sixth"
    assert [m["content"] for m in pair.messages[:-1]] == ["Convert to ISO 8601: March 5, 2021", "2021-03-05",
                                                          "And March 6?"]
    sft = normalise(load_table(str(data.path("sft"))))
    assert sft.format == "messages" and sft.kind == "sft"
    [example] = sft.examples
    assert example.system == "Be brief." and example.response == "2021-03-05"
    assert data.counts() == {"pairs": 1, "sft": 1}


def test_marking_a_turn_again_replaces_its_pair_and_unmarking_removes_it(talk, tmp_path):
    data = CollectedData(tmp_path, "local")
    talk.mark(1, "trained")
    data.put("pairs", talk.key(1), preference_pair(talk.turns[0]))
    talk.mark(1, "base")
    data.put("pairs", talk.key(1), preference_pair(talk.turns[0]))
    [record] = data.records("pairs")
    assert record["chosen"][0]["content"] == "March 5th" and record["id"] == talk.key(1)
    talk.mark(1, None)
    assert preference_pair(talk.turns[0]) is None
    data.put("pairs", talk.key(1), None)
    assert data.records("pairs") == [] and data.available() == {}


def test_regenerating_drops_the_last_turns_answers_mark_and_edits(talk):
    talk.mark(0, "trained")
    talk.edit(0, "base", "2021-03-06")
    redone = talk.redo_last()
    assert redone.user == "And March 6?" and redone.answers == {} and redone.chosen is None and not redone.edited
    assert len(talk.turns) == 2


def test_each_person_has_a_folder_of_their_own_and_a_full_file_is_refused(tmp_path, monkeypatch):
    mine, theirs = CollectedData(tmp_path, "a" * 64), CollectedData(tmp_path, "b" * 64)
    assert mine.folder != theirs.folder and mine.folder.parent == theirs.folder.parent == tmp_path / FOLDER
    assert CollectedData(tmp_path, "../../etc").folder.parent == tmp_path / FOLDER  # never a path of its own
    monkeypatch.setattr("finetune.data.collected.MAX_RECORDS", 2)
    mine.put("sft", "1", {"messages": []})
    mine.put("sft", "2", {"messages": []})
    mine.put("sft", "2", {"messages": []})  # a replacement is no new record
    with pytest.raises(ValueError, match="holds 2 records, the most it may"):
        mine.put("sft", "3", {"messages": []})
    assert MAX_RECORDS == 5_000
