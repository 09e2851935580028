"""`python -m finetune train --benchmarks true --judge base` on a tiny model:
the run scores the standard benchmarks before and after training and has the
base model judge the answers; the summary keeps both, the command prints one
line per benchmark and one for the judge, and a failure of either is reported
without failing the run."""

import json

import pytest

from finetune.cli.main import main
from finetune.evaluate import benchmarks
from finetune.evaluate.benchmarks import TASKS

ITEMS = 3  # per benchmark: enough to pair, fast on the tiny model


@pytest.fixture
def dates_file(write):
    rows = [{"instruction": f"Convert to ISO 8601: March {d}, 2021", "input": "", "output": f"2021-03-{d:02d}"}
            for d in range(1, 25)]
    return write("dates.json", json.dumps(rows))


def train(model_dir, data, out, *extra):
    return main(["train", "--data", str(data), "--model", str(model_dir), "--output", str(out), "--max-steps", "2",
                 "--learning-rate", "1e-3", "--allow-out-of-range", "--held-out", "3", "--max-new-tokens", "8",
                 "--batch-size", "4", "--grad-accum", "1", "--general-probe", "false", *extra])


def test_a_run_with_benchmarks_and_judge_reports_both(tiny_model_dir, dates_file, tmp_path, monkeypatch, capsys):
    scored = benchmarks.run_benchmarks

    def few_items(*args, **kwargs):
        return scored(*args, **kwargs, limit=ITEMS)

    monkeypatch.setattr(benchmarks, "run_benchmarks", few_items)
    out = tmp_path / "run"
    assert train(tiny_model_dir, dates_file, out, "--benchmarks", "true", "--judge", "base") == 0
    scores = json.loads((out / "summary.json").read_text())["scores"]
    assert set(scores["benchmarks"]) == set(TASKS)
    for entry in scores["benchmarks"].values():
        assert entry["items"] == ITEMS and entry["before"] is not None and entry["after"] is not None
        assert entry["difference"]["n"] == ITEMS and entry["sentence"]
    items = json.loads((out / "benchmarks.json").read_text())["items"]
    assert all(len(items[t]["before"]) == len(items[t]["after"]) == ITEMS for t in TASKS)
    judged = scores["judge"]
    assert judged["prompts"] == 3 and judged["wins"] + judged["ties"] + judged["losses"] == 3
    assert judged["judge_is_base"] and "prefer its own answers" in judged["sentence"]
    assert "all" in scores, "the held-out scores are still there"
    err = capsys.readouterr().err
    assert sum(line.startswith("benchmark ") for line in err.splitlines()) == len(TASKS)
    assert f"of {ITEMS} items;" in err and "judge: " in err
    # Every message the run published is printed, however quickly the next one came (the tiny model is quick).
    assert "scoring the standard benchmarks before training" in err, "the run says what it is doing"


def test_failing_benchmarks_and_judge_leave_the_run_completed(tiny_model_dir, dates_file, tmp_path, monkeypatch,
                                                              capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("no benchmark data")

    monkeypatch.setattr(benchmarks, "run_benchmarks", broken)
    missing_judge = tmp_path / "judge"
    missing_judge.mkdir()
    (missing_judge / "config.json").write_text("{}")
    (missing_judge / "model.safetensors").write_bytes(b"not weights")
    out = tmp_path / "run"
    assert train(tiny_model_dir, dates_file, out, "--benchmarks", "true", "--judge", str(missing_judge)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert "no benchmark data" in summary["scores"]["benchmarks"]["error"]
    assert summary["scores"]["judge"]["error"].startswith("the judge failed")
    err = capsys.readouterr().err
    assert "benchmarks: the standard benchmarks failed before training: RuntimeError: no benchmark data" in err
    assert "judge: the judge failed" in err


def test_an_empty_judge_is_refused_in_one_line(tiny_model_dir, dates_file, tmp_path, capsys):
    assert train(tiny_model_dir, dates_file, tmp_path / "run", "--judge", " ") == 2
    assert "judge: empty; use 'off', 'base' or a model" in capsys.readouterr().err
