"""python -m finetune export RUN_DIR [--which best|final] [--output ZIP]."""

import json
import shutil
import zipfile

import tiny
import torch
from safetensors.torch import load_file

from finetune.cli.main import main


def finished_run(folder, model_dir, best_dir=None):
    folder.mkdir()
    shutil.copytree(model_dir, folder / "model")
    (folder / "config.json").write_text(json.dumps({"model": str(model_dir), "method": "full"}))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 12,
                                                     "final_validation_loss": 0.97}))
    if best_dir:
        shutil.copytree(best_dir, folder / "best")
        (folder / "best" / "best.json").write_text(json.dumps({"step": 7, "eval_loss": 0.85}))
    return folder


def test_export_defaults_to_the_best_checkpoint_and_can_take_the_final(tiny_model_dir, tmp_path, capsys):
    other = tmp_path / "other"
    tokenizer = tiny.build_tokenizer()
    tiny.build_model(tokenizer, seed=5).save_pretrained(other)
    tokenizer.save_pretrained(other)
    folder = finished_run(tmp_path / "run", tiny_model_dir, best_dir=other)

    assert main(["export", str(folder)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["checkpoint"] == "best: step 7, validation loss 0.85"
    with zipfile.ZipFile(printed["output"]) as archive:
        archive.extract("model.safetensors", tmp_path / "best-zip")
    assert torch.equal(load_file(tmp_path / "best-zip" / "model.safetensors")["model.norm.weight"],
                       load_file(other / "model.safetensors")["model.norm.weight"])

    target = tmp_path / "final.zip"
    assert main(["export", str(folder), "--which", "final", "--output", str(target)]) == 0
    assert json.loads(capsys.readouterr().out) == {"output": str(target), "format": "merged",
                                                   "bytes": target.stat().st_size,
                                                   "checkpoint": "final: step 12, last validation loss 0.97"}
    assert target.is_file()


def test_export_of_a_run_without_a_best_says_so(tiny_model_dir, tmp_path, capsys):
    folder = finished_run(tmp_path / "run", tiny_model_dir)
    assert main(["export", str(folder), "--which", "best"]) == 2
    assert "kept no best checkpoint" in capsys.readouterr().err
    assert main(["export", str(folder)]) == 0  # the default falls back to the final model
    assert json.loads(capsys.readouterr().out)["checkpoint"].startswith("final: step 12")
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
