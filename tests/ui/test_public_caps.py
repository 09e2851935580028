"""What one request may cost a public server, whatever the client sends: text
settings and questions have length caps, max_new_tokens is a finite whole
number capped at 256, each answer has a deadline, questions queue one at a
time. Each refusal is quick and one line, through the API as a stranger would
send it (raw JSON, NaN literals included)."""

import dataclasses
import json
import time

import pytest
from app_server import free_port, raw_call

import ui.tabs.compare_tab
from finetune.evaluate.ask import QUESTION_MAX_CHARS, ask
from finetune.train import config as cfg
from ui.app import build_app, launch_options
from ui.limits import PUBLIC_ANSWER_SECONDS, PUBLIC_MAX_NEW_TOKENS

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

QUICK_S = 15  # a refusal comes before any model loads: seconds even on a busy 2-core machine


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    """A public app on a Space (SPACE_ID set), with the tiny model as its default."""
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPACE_ID", "teacher/fine-tuning-lab")
        demo = build_app(default_model=str(tiny_model_dir), output_root=runs, public=True)
    yield demo, launched(demo, runs)
    demo.close()


def launched(demo, runs) -> str:
    """Serve a public app as app.py would (its launch options); its URL."""
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(runs, public=True))
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def url(app):
    return app[1]


def refused(url: str, api_name: str, **values) -> tuple[str, float]:
    started = time.monotonic()
    stream = raw_call(url, api_name, **values)
    elapsed = time.monotonic() - started
    assert "event: error" in stream and "event: complete" not in stream, stream[:500]
    assert "Traceback" not in stream
    return stream, elapsed


def test_a_nan_max_new_tokens_is_refused_at_once(url):
    stream, elapsed = refused(url, "ask", prompt="What is 2+2?", max_new_tokens=float("nan"))
    assert "max_new_tokens: NaN is not a finite number" in stream and elapsed < QUICK_S


@pytest.mark.parametrize("value, message", [(float("inf"), "Infinity is not a finite number"),
                                            (40.5, "40.5 is not a whole number"), ("lots", '"lots" is not a number'),
                                            (0, "0 is outside this page's range"),
                                            (-1e308, "-1e+308 is outside this page's range")])
def test_other_junk_max_new_tokens_are_refused(url, value, message):
    stream, _ = refused(url, "ask", prompt="What is 2+2?", max_new_tokens=value)
    assert json.loads(stream.split("data:", 1)[1])["error"].startswith(f"max_new_tokens: {message}")


def test_a_million_character_question_is_refused_at_once(url):
    stream, elapsed = refused(url, "ask", prompt="why " * 250_000, max_new_tokens=16)
    assert f"over the limit of {QUESTION_MAX_CHARS:,}" in stream and elapsed < QUICK_S


def test_a_200000_character_system_prompt_is_refused_at_once(url):
    huge = "Be brief. " * 20_000
    stream, elapsed = refused(url, "load_dataset", source="bundled", system_prompt=huge)
    assert f"system_prompt: 200,000 characters is over the limit of {cfg.SYSTEM_PROMPT_MAX_CHARS:,}" in stream
    assert elapsed < QUICK_S
    # The same prompt cannot reach a question's rendering either.
    stream, elapsed = refused(url, "ask", prompt="Hi", max_new_tokens=16, system_prompt=huge)
    assert "system_prompt: 200,000 characters" in stream and elapsed < QUICK_S


def test_an_overlong_column_name_is_refused(url):
    stream, _ = refused(url, "load_dataset", source="bundled", format="columns", prompt_column="q" * 1000,
                        response_column="a")
    assert f"prompt_column: 1,000 characters is over the limit of {cfg.COLUMN_NAME_MAX_CHARS}" in stream


def test_answers_are_capped_and_time_limited_whatever_the_client_asks(url, monkeypatch):
    asked = []

    def recording_ask(model, tokenizer, question, max_new_tokens, template, system_prompt, autocast, max_time):
        asked.append((max_new_tokens, max_time))
        return "an answer"

    monkeypatch.setattr(ui.tabs.compare_tab, "ask", recording_ask)
    # 512, the slider's top: any more and Gradio's own bounds check refuses it first.
    before, after = Client(url, verbose=False).predict(prompt="What is 2+2?", max_new_tokens=512, api_name="/ask")
    assert before == "an answer" and "No trained model yet" in after
    assert asked == [(PUBLIC_MAX_NEW_TOKENS, PUBLIC_ANSWER_SECONDS)]


def test_questions_queue_one_at_a_time(app):
    ask_event = [fn for fn in app[0].fns.values() if fn.api_name == "ask"]
    assert len(ask_event) == 1 and ask_event[0].concurrency_limit == 1


def test_the_page_says_how_to_duplicate_the_space_for_a_private_gpu(url):
    import urllib.request

    page = urllib.request.urlopen(url, timeout=30).read().decode()
    assert "https://huggingface.co/spaces/teacher/fine-tuning-lab?duplicate=true" in page
    assert f"{PUBLIC_MAX_NEW_TOKENS} tokens" in page


def test_a_generation_stops_at_its_deadline(tiny_model_dir):
    from finetune.sources import models

    model, tokenizer = models.load(models.resolve(str(tiny_model_dir)))
    started = time.monotonic()
    answer = ask(model, tokenizer, "Tell me everything.", 400, max_time=1e-6)
    assert time.monotonic() - started < QUICK_S
    assert answer.endswith("[cut short: answers stop after 1e-06 s here]")


@pytest.mark.parametrize("name", [f.name for f in cfg.fields() if type(f.default) in (int, float)])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_every_numeric_setting_refuses_non_finite_numbers_everywhere(name, value):
    # Through the front door (widgets, JSON, flags)...
    with pytest.raises(cfg.ConfigError, match=f"{name}: .* is not a finite number"):
        cfg.build({name: value}, allow_out_of_range=True)
    # ...and past it (a config made in code, as a sweep makes its runs).
    with pytest.raises(cfg.ConfigError, match=f"{name}: .* is not a finite number"):
        cfg.check(dataclasses.replace(cfg.TrainConfig(), **{name: value}), allow_out_of_range=True)


def test_text_caps_hold_on_the_command_line_too():
    with pytest.raises(cfg.ConfigError, match="system_prompt: 8,001 characters is over the limit of 8,000"):
        cfg.build({"system_prompt": "x" * 8001})
    assert cfg.build({"system_prompt": "x" * 8000}).config.system_prompt == "x" * 8000


def test_a_public_run_cannot_ask_for_longer_held_out_answers(url):
    with pytest.raises(AppError, match=f"max_new_tokens: 512 is over this public server's limit of "
                                       f"{PUBLIC_MAX_NEW_TOKENS} tokens per answer"):
        Client(url, verbose=False).predict(source="bundled", max_new_tokens=512, max_steps=1,
                                           api_name="/start_training")


def test_api_calls_without_a_session_do_not_pile_up_on_the_server(tiny_model_dir, tmp_path, monkeypatch):
    """A script polling /training_status over REST sends no session hash, so every
    call is a new Gradio session (a config copy of every block, ~380 KB here);
    the server keeps only the SESSIONS_KEPT most recent, and builds no per-event
    pandas summary of its queue (tens of ms a call once thousands of events pass)."""
    import ui.app

    monkeypatch.setattr(ui.app, "SESSIONS_KEPT", 4)
    demo = build_app(default_model=str(tiny_model_dir), output_root=tmp_path / "runs", public=True)
    url = launched(demo, tmp_path / "runs")
    try:
        for _ in range(10):
            stream = raw_call(url, "training_status", owner_key="someone-" + "k" * 24)
            assert "event: complete" in stream and "you have no runs yet" in stream
        assert len(demo.state_holder.session_data) <= 4
        assert demo._queue.cached_event_analytics_summary == {"functions": {}}  # never summarised
    finally:
        demo.close()
