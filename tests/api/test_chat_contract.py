"""The Chat tab's endpoints as a contract, in local and public mode, after a real
short run of the tiny model (gradio_client's default Client, as a user's script
drives it): /chat_send streams both models' answers turn by turn, the same
seed gives the same answers again (/chat_regenerate), /chat_stop ends an
answer in progress, /chat_mark and /chat_edit save a preference pair and a
supervised example in the caller's own files (formats "preference" and
"messages"), /chat_clear starts again. In public mode another person can
neither chat with the run nor reach the conversation, and the answer cap holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_contract import Call, Recorder, contract, file_lookalikes, finished, one_line
from app_server import running_app
from gradio_client import handle_file

from finetune.data.collected import FOLDER
from finetune.data.formats import normalise
from finetune.runs.records import owner_hash
from finetune.sources.files import load_table

KEY, OTHER = "chat-contract-owner-key-0123456789", "chat-contract-someone-else-012345"
# Short, with a learning rate high enough that the trained model's answers differ from the base's.
RUN = dict(source="upload", max_steps=4, batch_size=4, grad_accum=1, held_out=4, validation_fraction=0.1,
           eval_steps=2, max_new_tokens=16, general_probe=False, learning_rate=3e-3, allow_out_of_range=True)
DATES = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "completion": f"2021-03-{d:02d}"} for d in range(1, 29)]
FIRST, SECOND = "Convert to ISO 8601: March 7, 2021", "And March 8?"
SAMPLED = dict(temperature=1.0, max_new_tokens=12, seed=5)


@dataclass
class Tour:
    mode: str
    runs: Path
    run_id: str
    rec: Recorder
    streamed: list  # the outputs /chat_send sent while the first turn was answered
    stop_said: str

    @property
    def public(self) -> bool:
        return self.mode == "public"

    def value(self, label: str):
        call = self.rec.calls[label]
        if call.error is not None:
            pytest.fail(f"{call.api_name} ({label}) raised: {call.error}")
        return call.value

    def error(self, label: str) -> str:
        call = self.rec.calls[label]
        assert call.error is not None, f"{label} answered {call.value!r} instead of an error"
        return one_line(call.error)

    def data_file(self, kind: str) -> Path:
        owner = owner_hash(KEY) if self.public else "local"
        return self.runs / FOLDER / owner / {"pairs": "pairs.jsonl", "sft": "sft.jsonl"}[kind]


def text(message: dict) -> str:
    """A chat message's text as gradio_client gives it (Gradio 6: a list of text parts)."""
    content = message["content"]
    return "".join(part["text"] for part in content) if isinstance(content, list) else content


def answers(column: list[dict]) -> list[str]:
    return [text(m) for m in column if m["role"] == "assistant"]


def tour(url: str, runs: Path, mode: str) -> Tour:
    rec = Recorder(url)
    c, other = rec.client(), rec.client()
    dates = runs.parent / f"dates-{mode}.jsonl"
    dates.write_text("\n".join(json.dumps(r) for r in DATES))
    c.predict("full", True, api_name="/set_ranges")  # this session's sliders take the high learning rate
    started = c.predict(file=handle_file(str(dates)), owner_key=KEY, **RUN, api_name="/start_training")
    run_id = started["run_id"]
    status = finished(c, run_id, KEY)
    assert status["status"] == "completed", status["error"]
    mine = dict(run_id=run_id, owner_key=KEY)

    job = c.submit(FIRST, **mine, **SAMPLED, api_name="/chat_send")
    streamed = list(job)  # every output as it came
    rec.calls["send"] = Call("/chat_send", value=job.result())
    rec.call("send second", c, SECOND, **mine, **SAMPLED, api_name="/chat_send")
    rec.call("regenerate", c, **mine, **SAMPLED, api_name="/chat_regenerate")
    rec.call("regenerate seed 6", c, **mine, **{**SAMPLED, "seed": 6}, api_name="/chat_regenerate")
    rec.call("regenerate seed 5", c, **mine, **SAMPLED, api_name="/chat_regenerate")
    rec.call("mark", c, 1, "trained", owner_key=KEY, api_name="/chat_mark")
    rec.call("edit", c, 0, "base", "2021-03-08", owner_key=KEY, api_name="/chat_edit")
    rec.call("mark same turn", c, 1, "base", owner_key=KEY, api_name="/chat_mark")
    rec.call("mark unknown turn", c, 9, "base", owner_key=KEY, api_name="/chat_mark")
    # The Data tab offers the caller's own chat data as a source; nobody else's.
    split = dict(held_out=0, validation_fraction=0.0)
    rec.call("load my pairs", c, source="chat-pairs", owner_key=KEY, **split, api_name="/load_dataset")
    rec.call("load my edits", c, source="chat-sft", owner_key=KEY, **split, api_name="/load_dataset")
    rec.call("load their pairs", other, source="chat-pairs", owner_key=OTHER, **split, api_name="/load_dataset")
    rec.call("mark someone else's", other, 1, "base", owner_key=OTHER, api_name="/chat_mark")
    rec.call("edit someone else's", other, 1, "base", "x", owner_key=OTHER, api_name="/chat_edit")
    rec.call("send someone else's run", other, FIRST, **{**mine, "owner_key": OTHER}, api_name="/chat_send")
    rec.call("send capped", c, FIRST, **mine, **{**SAMPLED, "max_new_tokens": 1000}, api_name="/chat_send")
    rec.call("send too long", c, "x" * 4001, **mine, api_name="/chat_send")
    rec.call("send too hot", c, FIRST, **mine, temperature=3.0, api_name="/chat_send")
    rec.call("stop idle", c, owner_key=KEY, api_name="/chat_stop")

    # Stopped while it streams: the first text arrives, the stop lands long before 2,000 tokens (which
    # public mode allows here only: the server runs in this process, its cap of 256 lifted for this call).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ui.limits.PUBLIC_MAX_NEW_TOKENS", 4096)
        long = c.submit("Tell me everything.", **mine, **{**SAMPLED, "max_new_tokens": 2000}, api_name="/chat_send")
        stop_said = ""
        for output in long:
            if not stop_said and answers(output[0]) and answers(output[0])[-1] not in ("", "…"):
                stop_said = c.predict(owner_key=KEY, api_name="/chat_stop")
        rec.calls["send stopped"] = Call("/chat_send", value=long.result())
    rec.call("clear", c, api_name="/chat_clear")
    rec.call("mark after clear", c, 0, "base", owner_key=KEY, api_name="/chat_mark")
    return Tour(mode, runs, run_id, rec, streamed, stop_said)


@pytest.fixture(scope="module")
def local_chat_app(tiny_model_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with running_app(tiny_model_dir, runs, public=False) as url:
        yield url, runs


@pytest.fixture(scope="module", params=["local", "public"])
def toured(request) -> Tour:
    url, runs = request.getfixturevalue("public_app" if request.param == "public" else "local_chat_app")
    return tour(url, runs, request.param)


@contract("/chat_send")
def test_chat_send_streams_both_models_answers_turn_by_turn(toured):
    base, trained, gguf, note, saved = toured.value("send")
    assert [text(m) for m in base if m["role"] == "user"] == [FIRST]
    assert len(answers(base)) == len(answers(trained)) == 1 and answers(trained)[0] not in ("", "…")
    assert gguf == [] and toured.run_id in note and "seed 5" in note and "Nothing saved yet" in saved
    # Partial text came before the end: the trained column grew over several outputs.
    growing = [answers(out[1])[-1] for out in toured.streamed if answers(out[1])]
    assert len(set(growing)) > 2 and growing[-1] == answers(trained)[0]
    base, trained, *_ = toured.value("send second")
    assert [text(m) for m in trained if m["role"] == "user"] == [FIRST, SECOND] and len(answers(base)) == 2
    if toured.public:  # someone else's run is no run of theirs; the answer cap holds
        assert toured.error("send someone else's run") == "no such run"
        assert "at most 256 tokens" in toured.value("send capped")[3]
    else:  # locally one person uses the app: every run is theirs
        assert toured.value("send someone else's run")[1]
        assert "at most 1000 tokens" in toured.value("send capped")[3]
    assert "over the limit of 4,000" in toured.error("send too long")
    assert toured.error("send too hot").startswith(
        "temperature: 3 is outside this page's range; give a number from 0.05 to 2")


@contract("/chat_regenerate")
def test_chat_regenerate_answers_the_last_turn_again_the_same_from_the_same_seed(toured):
    second = toured.value("send second")
    again, other_seed, back = (toured.value(label) for label in ("regenerate", "regenerate seed 6",
                                                                  "regenerate seed 5"))
    assert len(answers(again[1])) == 2  # the last turn answered again, not a new one
    assert answers(again[1]) == answers(second[1]) and answers(again[0]) == answers(second[0])
    assert answers(other_seed[1])[-1] != answers(second[1])[-1]
    assert answers(back[1]) == answers(second[1])


@contract("/chat_stop")
def test_chat_stop_ends_the_answer_in_progress(toured):
    assert toured.value("stop idle") == "Nothing of yours is answering."
    assert toured.stop_said == "Stopping at the next token…"
    base, trained, *_ = toured.value("send stopped")
    assert answers(base)[-1].endswith("*[stopped]*")
    assert len(answers(trained)) == len(answers(base)) - 1  # stopped: the trained model was never asked


@contract("/chat_mark")
def test_chat_mark_saves_a_preference_pair_the_data_tab_reads(toured):
    base, trained, saved = toured.value("mark")[:3]
    assert answers(trained)[0].endswith("**✓ marked better**") and "**1** preference pair" in saved
    assert ("Saved in" in saved) != toured.public  # no server path in public mode
    pairs = normalise(load_table(str(toured.data_file("pairs"))))
    assert pairs.format == "preference" and len(pairs.examples) == 1  # marked again: replaced, not added
    [pair] = pairs.examples
    assert [m["content"] for m in pair.messages[:-1]] == [FIRST]
    assert pair.messages[-1]["content"] == answers(base)[0]  # marked again, the base's answer is the chosen one
    assert "turn: 9 is not a turn of this conversation" in toured.error("mark unknown turn")
    assert toured.error("mark someone else's") == "No conversation yet: send a message first."
    assert toured.error("mark after clear") == "No conversation yet: send a message first."


@contract("/chat_edit")
def test_chat_edit_saves_the_answer_wanted_as_a_supervised_example(toured):
    base, trained, saved = toured.value("edit")[:3]
    assert answers(base)[-1].startswith("2021-03-08\n\n*✎ edited") and "**1** edited answer" in saved
    examples = normalise(load_table(str(toured.data_file("sft"))))
    assert examples.format == "messages" and len(examples.examples) == 1
    [example] = examples.examples
    assert [m["content"] for m in example.messages] == [FIRST, answers(base)[0], SECOND, "2021-03-08"]
    assert toured.error("edit someone else's") == "No conversation yet: send a message first."


@contract("/chat_clear")
def test_chat_clear_starts_a_new_conversation(toured):
    base, trained, gguf, note = toured.value("clear")
    assert base == trained == gguf == [] and "send a message" in note
    assert toured.data_file("pairs").is_file()  # what was saved stays


def test_the_data_tab_loads_ones_own_chat_data_only(toured):
    pairs, edits = toured.value("load my pairs"), toured.value("load my edits")
    assert pairs[-1]["format"] == "preference" and pairs[-1]["records"] == 1
    assert "pairs.jsonl (from your chats)" in pairs[0] and str(toured.runs) not in pairs[0]
    assert edits[-1]["format"] == "messages" and edits[-1]["records"] == 1
    if toured.public:  # the other person's own chat data: none
        assert toured.error("load their pairs").startswith("nothing saved from your chats yet")
    else:  # locally one person uses the app: the chat data is theirs
        assert toured.value("load their pairs")[-1]["records"] == 1


def test_no_chat_answer_holds_an_object_gradio_client_takes_for_a_file(toured):
    mistaken = [f"{sent.api_name} output {i}{where}" for sent in toured.rec.sent
                for i, output in enumerate(sent.outputs) for where in file_lookalikes(output)]
    assert not mistaken and {s.api_name for s in toured.rec.sent} >= {"/chat_send", "/chat_mark", "/chat_clear"}
