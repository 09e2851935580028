"""The Chat tab beyond its API contract (tests/api/test_chat_contract.py): what
its columns show of marks, edits and a stopped answer; the GGUF answering
beside the transformers models (or refused in one line without llama.cpp);
public mode's answer deadline; the chat data never served as a file."""

import importlib.util
import json
import threading
import urllib.error
import urllib.request

import pytest
from app_server import running_app
from gradio_client import Client
from gradio_client.exceptions import AppError
from tiny_runs import RECORDS, run_to_end, tiny_config

from finetune.data.collected import FOLDER
from finetune.evaluate.conversation import Conversation
from finetune.evaluate.sampling import Sampling
from finetune.runs.records import owner_hash
from finetune.runs.run import Identity
from ui.views.chat_views import BETTER, EDITED, EMPTY, WAITING, chat_messages, saved_line, status_line

KEY = "chat-tab-owner-key-0123456789abcd"
QUESTION = "Convert the date to ISO 8601: March 7, 2021"
QUICK = dict(temperature=1.0, max_new_tokens=8, seed=1)


def train_into(runs, model_dir):
    """A finished run of the tiny model in `runs`, owned by KEY (locally every run is the one person's).
    Trained where the app reads it: a run folder names a local base model relative to itself."""
    runs.mkdir(parents=True, exist_ok=True)
    (runs.parent / "dates.json").write_text(json.dumps(RECORDS))
    run, _ = run_to_end(tiny_config(model_dir, runs.parent / "dates.json", max_steps=3, general_probe=False),
                        runs / "20261201-000000-chat01", identity=Identity(owner=owner_hash(KEY)))
    return run.folder.root


@pytest.fixture(scope="module")
def local_url(tiny_model_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("local") / "runs"
    trained = train_into(runs, tiny_model_dir)
    with running_app(tiny_model_dir, runs, public=False) as url:
        yield url, runs, trained


def test_a_column_shows_each_answer_with_its_marks():
    talk = Conversation("local", "run-1", "best")
    turn = talk.start_turn("Hi")
    talk.ask(turn, "base")
    assert chat_messages(talk, "base")[-1]["content"] == WAITING  # asked, nothing yet
    turn.answers.update(base="", trained="Hello")
    talk.ask(turn, "trained")
    turn.notes["trained"] = "stopped"
    talk.mark(1, None)
    assert chat_messages(talk, "base")[-1]["content"] == EMPTY
    turn.answers["base"] = "Hey"
    talk.mark(1, "trained")
    talk.edit(1, "base", "Hello there")
    base, trained = chat_messages(talk, "base"), chat_messages(talk, "trained")
    assert base[0] == {"role": "user", "content": "Hi"}
    assert base[1]["content"] == f"Hello there\n\n*{EDITED}* (it said: Hey)"
    assert trained[1]["content"] == f"Hello\n\n**{BETTER}**\n\n*[stopped]*"
    assert chat_messages(talk, "gguf") == []  # the GGUF was not asked: its column stays empty
    line = status_line(talk, {"base": "tiny", "trained": "run-1 (best)"}, "chat", "", Sampling(seed=4), "trained")
    assert "Run **run-1** (best model), turn 1" in line and "seed 4" in line and "trained model is answering" in line
    assert "Nothing saved yet" in saved_line({})
    assert "**1** preference pair and **2** edited answers" in saved_line({"pairs": 1, "sft": 2}, "/x")


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (it builds llama.cpp from source; .ci/setup tries)")
def test_the_gguf_answers_beside_the_trained_model(local_url):
    url, _, trained = local_url
    base, tuned, gguf, note, _ = Client(url, verbose=False).predict(QUESTION, run_id=trained.name, gguf=True,
                                                                    **QUICK, api_name="/chat_send")
    assert [m["role"] for m in gguf] == ["user", "assistant"] and gguf[1]["content"][0]["text"] not in ("", WAITING)
    assert len(tuned) == len(base) == 2


def test_without_llama_cpp_the_gguf_is_refused_in_one_line(local_url, monkeypatch):
    monkeypatch.setattr("ui.tabs.chat_tab.gguf_available", lambda: False)  # the server runs in this process
    with pytest.raises(AppError, match="llama-cpp-python is not installed here, so no GGUF can answer"):
        Client(local_url[0], verbose=False).predict(QUESTION, gguf=True, **QUICK, api_name="/chat_send")


def test_the_chat_data_is_never_served_as_a_file(local_url):
    url, runs, trained = local_url
    client = Client(url, verbose=False)
    client.predict(QUESTION, run_id=trained.name, **QUICK, api_name="/chat_send")
    client.predict(0, "base", api_name="/chat_mark")
    pairs = runs / FOLDER / "local" / "pairs.jsonl"
    assert pairs.is_file()
    served = urllib.request.urlopen(f"{url}gradio_api/file={runs / trained.name / 'config.json'}", timeout=30)
    assert served.status == 200  # locally the runs folder is served (exported zips live there) ...
    with pytest.raises(urllib.error.HTTPError, match="403"):  # ... but never anyone's chat data
        urllib.request.urlopen(f"{url}gradio_api/file={pairs}", timeout=30)


def test_public_answers_stop_at_the_deadline_and_say_so(public_app, tiny_model_dir, monkeypatch):
    url, runs = public_app
    trained = train_into(runs, tiny_model_dir)  # the app lists a finished run it finds in its folder
    monkeypatch.setattr("ui.limits.PUBLIC_ANSWER_SECONDS", 0.001)  # the server runs in this process
    base, tuned, *_ = Client(url, verbose=False).predict(QUESTION, run_id=trained.name, owner_key=KEY,
                                                         temperature=1.0, max_new_tokens=256,
                                                         api_name="/chat_send")
    for column in (base, tuned):
        assert column[-1]["content"][0]["text"].endswith("*[cut short: answers stop after 0.001 s here]*")


def test_a_clients_cancel_lets_the_model_go_at_once(local_url):
    """gradio_client's job.cancel() closes the answer's stream, which stops the generation
    (stream_answer's halt): no thread goes on generating 4,000 tokens for nobody."""
    url, _, trained = local_url
    job = Client(url, verbose=False).submit("Tell me everything.", run_id=trained.name, max_new_tokens=4000,
                                            temperature=1.0, api_name="/chat_send")
    for base, *_ in job:
        if base and base[-1]["role"] == "assistant" and base[-1]["content"][0]["text"] != WAITING:
            break
    generating = [t for t in threading.enumerate() if t.name == "chat-answer"]
    assert generating, "the answer was still being generated when cancelled"
    job.cancel()
    for thread in generating:
        thread.join(timeout=10)  # 4,000 tokens take minutes on a CPU; the halt lands at the next token
    assert not any(t.is_alive() for t in generating)
