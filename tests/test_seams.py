"""The seams between engine and UI: no module writes a run's private state,
and a format, a metric or a setting is added in one place and reaches every
screen. (The engine never importing gradio is in test_layout.py.)"""

import ast
import dataclasses

import pytest
from conftest import ROOT

from finetune.data import formats
from finetune.evaluate import metrics
from finetune.sources.files import Table
from finetune.train import config as cfg

ENGINE = ROOT / "finetune"


def python_files(*folders):
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def test_nothing_outside_the_run_touches_a_runs_private_state():
    offenders = []
    for path in python_files("finetune", "ui", "bench"):
        if path == ENGINE / "runs" / "run.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and isinstance(node.value, ast.Name) and node.value.id in ("run", "job"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_a_new_format_is_one_entry(monkeypatch):
    dialogue = formats.Format("dialogue", "utterance / reply", formats.FORMATS["qa"].read,
                              columns=("utterance", "reply"))
    monkeypatch.setitem(formats.FORMATS, "dialogue", dialogue)
    table = Table("chat.csv", [{"utterance": "Hi there", "reply": "Hello!"}], ["utterance", "reply"], ["line 2"])
    assert formats.detect(table) == "dialogue"
    normalised = formats.normalise(table)
    assert normalised.format == "dialogue" and normalised.examples[0].response == "Hello!"
    assert cfg.build({"format": "dialogue"}).config.format == "dialogue"  # the setting accepts it
    from finetune.cli.main import build_parser  # and the command line offers it

    assert build_parser().parse_args(["train", "--format", "dialogue"]).format == "dialogue"


def test_a_new_metric_is_one_entry(monkeypatch):
    from finetune.export.bundle import _score_lines

    short = metrics.Metric("short", "short", "at most five words", lambda a, r: float(len(a.split()) <= 5))
    monkeypatch.setitem(metrics.METRICS, "short", short)
    assert metrics.score("Paris.", "Paris")["short"] == 1.0
    from finetune.data.dataset import HeldOutPrompt

    rows = metrics.comparison_rows([HeldOutPrompt("p", "q", "Paris")], ["I am not sure at all, sorry"], ["Paris"])
    summary = metrics.summarise_scores(rows)["all"]
    assert summary["before_short"] == 0.0 and summary["after_short"] == 1.0  # summary.json carries it
    assert "short before" in "\n".join(_score_lines({"all": summary}))  # the model card shows it
    pytest.importorskip("gradio")  # the Compare tab shows it
    from ui.tabs.compare_tab import scores_markdown

    assert "short: before → after" in scores_markdown(rows, None)


def extended_config(name, group, **meta):
    field = cfg.setting(0.0, "A setting added for this test.", group, min=0.0, max=0.3, hard_min=0.0, hard_max=1.0,
                        step=0.01, **meta)
    return dataclasses.make_dataclass("Extended", [(name, float, field)], bases=(cfg.TrainConfig,), frozen=True)


def test_a_new_setting_gets_a_flag_and_a_widget(monkeypatch, tiny_model_dir, tmp_path):
    pytest.importorskip("gradio")
    from finetune.cli.main import build_parser
    from ui.app import build_app

    monkeypatch.setattr(cfg, "TrainConfig", extended_config("label_smoothing", "optim"))
    assert build_parser().parse_args(["train", "--label-smoothing", "0.1"]).label_smoothing == "0.1"
    assert cfg.build({"label_smoothing": "0.1"}).config.label_smoothing == 0.1
    demo = build_app(default_model=str(tiny_model_dir), output_root=tmp_path)
    labels = [getattr(block, "label", None) for block in demo.blocks.values()]
    assert "Label smoothing" in labels


def test_a_setting_no_tab_shows_stops_the_app_from_building(monkeypatch, tiny_model_dir, tmp_path):
    pytest.importorskip("gradio")
    from ui.app import build_app

    monkeypatch.setattr(cfg, "TrainConfig", extended_config("dedupe_ratio", "data"))
    with pytest.raises(RuntimeError, match="settings without a place on any tab: dedupe_ratio"):
        build_app(default_model=str(tiny_model_dir), output_root=tmp_path)
