"""The diagnostics through the running app's API, as a script sees them: the
memory breakdown, the data advice after a load, and a finished run's
findings, memory and validation perplexity in its status. No training: the
finished run is a folder as the engine leaves it."""

import json

import pytest
from app_server import running_app
from conftest import DEMO_DATA
from test_ui_diagnostics import MEMORY, OVERFITTING, finished_run

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with running_app(tiny_model_dir, runs) as url:
        yield url, runs


def test_memory_estimate_endpoint_gives_the_breakdown_or_one_line(app, tmp_path):
    c = Client(app[0], verbose=False)
    text = c.predict(model="", batch_size=4, max_length=128, gradient_checkpointing="off",
                     api_name="/estimate_memory")
    assert "Estimated peak memory:" in text and "batch 4 x 128 tokens" in text and "Assumptions:" in text
    refused = c.predict(model=str(tmp_path), api_name="/estimate_memory")
    assert "Cannot estimate memory" in refused and "Traceback" not in refused


def test_load_and_inspect_lists_the_data_advice(app):
    out = Client(app[0], verbose=False).predict(source="upload", file=handle_file(str(DEMO_DATA)),
                                                api_name="/load_dataset")
    advice, details = out[-2], out[-1]  # the advice just before the report (after the four column pickers)
    assert "Data advice" in advice and "Prompt diversity" in advice and "count" in advice
    assert details["records"] == 380  # the report is still the last output


def test_a_finished_runs_status_carries_its_findings_memory_and_perplexity(app):
    url, runs = app
    finished_run(runs, "finished", {"diagnoses": [OVERFITTING], "memory": MEMORY})
    status = Client(url, verbose=False).predict(run_id="finished", api_name="/training_status")
    assert status["diagnoses"][0]["name"] == "overfitting" and status["diagnoses"][0]["step"] == 40
    assert status["memory"]["peak_bytes"] == MEMORY["peak_bytes"]
    assert status["validation_perplexity"] == pytest.approx(7.389, abs=1e-3)
    json.dumps(status)  # all plain JSON
