"""The export zip: a loadable model folder with its model card."""

import json
import zipfile

import pytest

from finetune.export.bundle import ExportError, export_run, model_card
from finetune.train.config import TrainConfig


def _fake_run(folder, model_dir):
    import shutil

    folder.mkdir()
    shutil.copytree(model_dir, folder / "model")
    config = {**TrainConfig(model="default", data="/tmp/gradio/abc/my data.json").to_dict(),
              "resolved": {"model": "SmolLM2-135M-Instruct (bundled)", "format": "alpaca", "template": "chat",
                           "train_examples": 90, "validation_examples": 5, "held_out_prompts": 2, "device": "cpu",
                           "precision": "bf16", "steps": 12}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "summary.json").write_text(json.dumps({
        "status": "completed", "steps": 12, "first_train_loss": 2.5, "final_train_loss": 0.75,
        "final_validation_loss": 0.9, "duration_seconds": 61.0, "hardware": "CPU",
        "scores": {"all": {"prompts": 2, "before_exact": 0.0, "after_exact": 0.5, "before_normalised": 0.0,
                           "after_normalised": 1.0}}}))
    rows = [{"prompt": f"Question {i}", "reference": f"Answer {i}", "category": "task", "before": "no idea",
             "after": f"Answer {i}"} for i in range(2)]
    (folder / "comparison.json").write_text(json.dumps(rows))
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5}\n')
    return folder


def test_export_zip_is_a_model_folder_with_a_card(tiny_model_dir, tmp_path):
    folder = _fake_run(tmp_path / "run", tiny_model_dir)
    path = export_run(folder)
    assert path == folder / "export" / "finetuned-run.zip"
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unzipped")
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "training/config.json",
            "training/metrics.jsonl", "training/summary.json", "training/comparison.json"} <= names
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "unzipped")
    card = (tmp_path / "unzipped" / "README.md").read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "my data.json" in card and "/tmp/gradio" not in card  # the file's name, not the server's temp path
    for expected in ("learning rate (peak)", "final training loss | 0.75", "final validation loss | 0.9",
                     "| all | 2 | 0% | 50% | 0% | 100% |", "Question 0", "no idea", "Answer 1"):
        assert expected in card, expected


def test_export_refuses_a_run_without_a_model(tmp_path):
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "summary.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(ExportError, match="no trained model to export \\(the run failed\\)"):
        export_run(tmp_path / "failed")
    card = model_card(tmp_path / "failed")  # a card never crashes on missing files: unknowns read n/a
    assert "| final training loss | n/a |" in card and "| learning rate (peak) | n/a |" in card


def test_the_card_puts_each_change_and_its_interval_beside_the_scores(tmp_path):
    from finetune.evaluate.significance import paired_difference

    (tmp_path / "summary.json").write_text(json.dumps({
        "status": "completed",
        "scores": {"task": {"prompts": 20, "before_normalised": 0.0, "after_normalised": 0.8},
                   "general": {"prompts": 10, "before_normalised": 1.0, "after_normalised": 0.9}},
        "changes": {"task": {"normalised": paired_difference([0] * 20, [1] * 16 + [0] * 4)
                             .to_dict("on the task prompts")},
                    "general": {"normalised": {"n": 10, "change": "damaged"}}}}))
    card = model_card(tmp_path)
    assert "change on its headline metric (95% interval) |" in card
    assert "| normalised: +80 points, 95% interval +53 to +92 |" in card
    assert next(line for line in card.splitlines() if line.startswith("| general | 10 |")).endswith("| n/a |")
    assert "- task (20 prompts), normalised 0% → 80%: better on the task prompts: +80 points, 95% interval +53 " \
           "to +92" in card
