"""The engine pieces the app adds: the run plan (steps and the learning-rate
curve, checked against what a real run logs), the free-text prompt rendering,
and the export zip with its model card."""

import json
import zipfile

import pytest

from finetune import plan
from finetune.ask import ask, render_question
from finetune.evaluate import generate
from finetune.config import TrainConfig, build
from finetune.export import ExportError, export_run, model_card
from finetune.run import TrainingRun

RECORDS = [{"instruction": f"Convert the date to ISO 8601: March {d}, 2021", "output": f"2021-03-{d:02d}"}
           for d in range(1, 23)]


def test_plan_matches_what_the_trainer_logs(tiny_model_dir, write, tmp_path):
    data = write("dates.json", json.dumps(RECORDS))
    # 22 examples, 2 held out, no validation: 20 train -> 5 batches of 4 -> 3 steps of 2 batches, x 2 epochs.
    config = TrainConfig(model=str(tiny_model_dir), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=2,
                         epochs=2, held_out=2, validation_fraction=0.0, warmup_ratio=0.2, max_new_tokens=4, seed=3)
    run = TrainingRun(config, tmp_path / "run", allow_out_of_range=True).start()
    snap = run.wait(timeout=300)
    assert snap.status == "completed", snap.error
    planned = plan.plan(config, snap.train_examples, snap.train_tokens)
    assert planned.steps == snap.max_steps == snap.step == 6
    assert planned.warmup_steps == 2
    logged = {h["step"]: h["learning_rate"] for h in snap.history if "loss" in h}
    assert dict(zip(planned.curve_steps, planned.curve_lr)) == pytest.approx(logged, rel=1e-6, abs=1e-12)
    assert planned.train_tokens == snap.train_tokens


def test_plan_curve_is_sampled_for_long_runs():
    config = build({"max_steps": 100_000, "warmup_ratio": 0.05}).config
    steps, rates = plan.learning_rate_curve(config, 100_000)
    assert len(steps) <= plan.MAX_CURVE_POINTS + 3
    assert steps[0] == 1 and steps[-1] == 100_000 and 5001 in steps  # the top of the warmup is kept
    assert max(rates) == pytest.approx(config.learning_rate)
    assert rates[-1] == pytest.approx(config.learning_rate * config.min_lr_ratio, rel=1e-3)


def test_free_text_prompt_uses_the_training_template(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = render_question(tokenizer, "What is the capital of France?", system_prompt="Be brief.")
    assert text.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert "Be brief." in text
    alpaca = render_question(tokenizer, "Say hi", template="alpaca")
    assert "### Instruction:\nSay hi" in alpaca and alpaca.endswith("### Response:\n")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # The answer is the model's greedy continuation of the question rendered as training renders prompts.
    expected = generate(model, tokenizer, [render_question(tokenizer, "Say hi")], max_new_tokens=4)[0]
    assert ask(model, tokenizer, "  Say hi ", max_new_tokens=4) == expected
    with pytest.raises(ValueError, match="type a question first"):
        ask(model, tokenizer, "   ", max_new_tokens=4)


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
