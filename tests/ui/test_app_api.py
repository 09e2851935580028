"""The app driven through its API with gradio_client, as a script would drive
it: the app runs in-process on a free port with a tiny model as its default,
on the demo dataset bundled in assets/ (uploaded, as a user's file would be)."""

import json
import time
import zipfile

import pytest
from app_server import running_app
from conftest import DEMO_DATA
from holds import Holds

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

REQUIRED = ("/load_dataset", "/start_training", "/training_status", "/stop_training", "/ask", "/export")
# Small and fast on the tiny model; 3e-3 is outside the recommended range, hence allow_out_of_range.
TINY_RUN = dict(source="upload", learning_rate=3e-3, batch_size=4, grad_accum=1, held_out=3, max_new_tokens=16,
                allow_out_of_range=True)


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def holds():
    return Holds()


@pytest.fixture(scope="module")
def app_url(tiny_model_dir, app_runs, holds):
    with running_app(tiny_model_dir, app_runs, holds=holds) as url:
        yield url


@pytest.fixture
def demo_file():
    return handle_file(str(DEMO_DATA))


def client(url) -> Client:
    return Client(url, verbose=False)


def allow_out_of_range(c: Client) -> None:
    """Flip the switch in this client's session so its sliders accept the tiny model's learning rate."""
    c.predict("full", True, api_name="/set_ranges")


def wait_until_finished(c: Client, timeout: float = 240, run_id: str | None = None) -> dict:
    """Poll until the run has ended (which every run reaches; the timeout is for a broken one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = c.predict(run_id=run_id, api_name="/training_status")
        if status.get("finished"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"the run did not finish in {timeout} s: {status}")


def test_every_action_is_a_named_endpoint_and_ticks_are_hidden(app_url):
    api = client(app_url).view_api(return_format="dict", print_info=False)
    assert set(REQUIRED) <= set(api["named_endpoints"])
    assert not api["unnamed_endpoints"]
    assert not any("tick" in name or "attach" in name for name in api["named_endpoints"])


def test_upload_shows_format_split_and_lengths(app_url, demo_file):
    c = client(app_url)
    out = c.predict(source="upload", file=demo_file, api_name="/load_dataset")
    summary, details = out[0], out[-1]
    assert "demo.jsonl" in summary and "380 records" in summary
    assert details["format"] == "alpaca" and details["records"] == 380
    # The file's split column pins 30 held-out prompts; 5% of the rest is drawn for validation.
    assert details["split"] == {"train": 332, "validation": 18, "held_out": 30}
    assert details["report"]["over_max_length"] == 0
    short = c.predict(source="upload", file=demo_file, max_length=128, api_name="/load_dataset")[-1]
    assert short["report"]["over_max_length"] > 0  # the histogram's count of examples over max length
    # Truncated examples whose answer was cut off entirely have nothing left to train: dropped.
    assert short["report"]["train_dropped"] == 332 - short["split"]["train"] > 0
    rendered = out[7]  # the example with its trained span marked (after summary, format, 4 pickers, records)
    labels = {item["class_or_confidence"] for item in rendered}
    assert labels == {"trained", "prompt (masked)"}


def test_undetected_format_offers_the_column_mapping(app_url, write):
    c = client(app_url)
    rows = [f'"What is {n} + {n}?","{2 * n}",science' for n in range(40)]
    qa = handle_file(str(write("questions.csv", "Question,Best Answer,Topic\n" + "\n".join(rows) + "\n")))
    out = c.predict(source="upload", file=qa, api_name="/load_dataset")
    assert "cannot tell the format" in out[-1]["error"] and out[1]["value"] == "columns"
    assert ["Best Answer", "Best Answer"] in out[2]["choices"]  # the prompt/response pickers offer the columns
    out = c.predict(source="upload", file=qa, format="columns", prompt_column="Question",
                    response_column="Best Answer", api_name="/load_dataset")
    assert out[-1]["format"] == "columns" and out[-1]["split"]["train"] > 0


def test_bad_file_is_a_clear_error(app_url, write):
    broken = write("broken.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": oops}\n')
    with pytest.raises(AppError, match="broken.jsonl: invalid JSON on line 2"):
        client(app_url).predict(source="upload", file=handle_file(str(broken)), api_name="/load_dataset")


def test_hub_token_never_appears_in_errors(app_url):
    secret = "hf_NotARealTokenButSecret123"
    with pytest.raises(AppError) as caught:
        client(app_url).predict(source="hub", hub_dataset="nobody/no-such-dataset", hub_token=secret,
                                api_name="/load_dataset")
    assert secret not in str(caught.value)


def test_out_of_range_value_is_refused_without_the_switch(app_url, demo_file):
    with pytest.raises(AppError, match="learning_rate: 0.003 is outside this page's range; give a number from 1e-06"):
        client(app_url).predict(source="upload", file=demo_file, learning_rate=3e-3, api_name="/start_training")


def test_train_then_compare_and_export(app_url, demo_file, tmp_path):
    c = client(app_url)
    allow_out_of_range(c)
    started = c.predict(file=demo_file, max_steps=4, **TINY_RUN, api_name="/start_training")
    assert started["status"] in ("loading", "baseline", "training")
    status = wait_until_finished(c)
    assert status["status"] == "completed", status["error"]
    assert status["run_id"] == started["run_id"] and status["step"] == 4
    losses = [h["loss"] for h in status["history"] if "loss" in h]
    assert len(losses) == 4 and any("eval_loss" in h for h in status["history"])
    # A second page (a new session) re-attaches to the same run.
    assert client(app_url).predict(api_name="/training_status")["run_id"] == started["run_id"]

    # The file pins its held-out prompts: every one is answered before and after, and scored.
    rows = status["comparison"]
    assert len(rows) == 30 == status["scores"]["all"]["prompts"]
    assert all(isinstance(row["before"], str) and isinstance(row["after"], str) for row in rows)
    assert {row["category"] for row in rows} == {"task", "general"}
    # The general probe is its own row, never mixed into the held-out prompts' scores.
    assert set(status["scores"]) == {"all", "task", "general", "general_probe"}

    before, after = c.predict("What is the capital of France?", 16, api_name="/ask")
    assert before and after and "No trained model yet" not in after  # the trained model answered too

    zip_path, card = c.predict(api_name="/export")
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.md").decode()
        metrics = archive.read("training/metrics.jsonl").decode().splitlines()
    assert {"model.safetensors", "config.json", "tokenizer.json", "training/config.json",
            "training/summary.json", "training/comparison.json"} <= names
    assert len([json.loads(line) for line in metrics if '"loss"' in line]) == 4
    assert "demo.jsonl" in readme and "final training loss" in readme and "Before and after" in readme
    assert "Before and after" in card


def test_a_second_start_queues_and_runs_when_the_first_ends(app_url, app_runs, demo_file, holds):
    c = client(app_url)
    allow_out_of_range(c)
    with holds.at_step(1) as hold:  # the first run trains on step 1 until the queue has been looked at
        first = c.predict(file=demo_file, max_steps=3, **TINY_RUN, api_name="/start_training")
        second = c.predict(file=demo_file, max_steps=2, **TINY_RUN, api_name="/start_training")
        third = c.predict(file=demo_file, max_steps=2, **TINY_RUN, api_name="/start_training")
        assert first["status"] != "queued"
        assert second["status"] == "queued" and "number 1 in the queue" in second["message"]
        assert third["status"] == "queued" and "number 2 in the queue" in third["message"]
        with pytest.raises(AppError, match="at most 3"):  # a person's share of the queue, locally
            c.predict(file=demo_file, max_steps=2, **TINY_RUN, api_name="/start_training")
        cancelled = c.predict(third["run_id"], api_name="/cancel_run")
        assert cancelled["status"] == "cancelled"
        assert hold.wait().run_id == first["run_id"]
        assert c.predict(run_id=second["run_id"], api_name="/training_status")["status"] == "queued"
    done = wait_until_finished(c, run_id=second["run_id"])
    assert done["status"] == "completed" and done["step"] == 2
    runs = {r["run"]: r for r in c.predict(api_name="/list_runs")}
    assert runs[first["run_id"]]["status"] == "completed" and runs[third["run_id"]]["status"] == "cancelled"
    # First in, first out: the second run started only once the first had finished.
    first_record = json.loads((app_runs / first["run_id"] / "run.json").read_text())
    second_record = json.loads((app_runs / second["run_id"] / "run.json").read_text())
    assert second_record["started_at"] >= first_record["finished_at"]
    with pytest.raises(AppError, match="No run of yours is waiting or training"):
        c.predict(api_name="/stop_training")
