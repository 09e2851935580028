"""Exporting the best checkpoint: a loadable model folder with the best's
weights (a LoRA run's adapters merged over the base in its dtype) and a card
that names the step; the final model stays the default of export_run."""

import json
import shutil
import zipfile

import pytest
import tiny
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from finetune.export.bundle import ExportError, export_run, model_card
from finetune.export.checkpoint import default_which
from finetune.train.config import TrainConfig

BEST = {"step": 7, "eval_loss": 0.8512}


def fake_run(folder, model_dir, method="full", best_dir=None):
    """A finished run of 12 steps whose best checkpoint is step 7 (when `best_dir` is given)."""
    folder.mkdir()
    shutil.copytree(model_dir, folder / "model")
    config = {**TrainConfig(model=str(model_dir), data="dates.json", method=method).to_dict(),
              "resolved": {"model": "tiny", "steps": 12}}
    (folder / "config.json").write_text(json.dumps(config))
    summary = {"status": "completed", "steps": 12, "final_validation_loss": 0.97,
               "best_checkpoint": {**BEST, "folder": "best"} if best_dir else None}
    (folder / "summary.json").write_text(json.dumps(summary))
    if best_dir:
        shutil.copytree(best_dir, folder / "best")
        (folder / "best" / "best.json").write_text(json.dumps(BEST))
    return folder


def unzip(path, where):
    with zipfile.ZipFile(path) as archive:
        archive.extractall(where)
        return set(archive.namelist())


def test_export_best_packs_the_best_weights_with_a_card_naming_the_step(tiny_model_dir, tmp_path):
    other = tmp_path / "other"
    tokenizer = tiny.build_tokenizer()
    tiny.build_model(tokenizer, seed=7).save_pretrained(other)  # weights unlike the final model's
    tokenizer.save_pretrained(other)
    folder = fake_run(tmp_path / "run", tiny_model_dir, best_dir=other)
    assert default_which(folder) == "best"

    path = export_run(folder, which="best")
    assert path.name == "finetuned-run-best.zip"
    names = unzip(path, tmp_path / "unzipped")
    assert "best.json" not in names and "training/summary.json" in names
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "unzipped")
    best = load_file(other / "model.safetensors")
    assert all(torch.equal(loaded.state_dict()[name], tensor) for name, tensor in best.items())
    card = (tmp_path / "unzipped" / "README.md").read_text()
    assert "| exported checkpoint | best: step 7, validation loss 0.8512 |" in card
    assert "**best checkpoint**" in card and "final step (12)" in card

    final = export_run(folder)  # the final model stays export_run's default
    unzip(final, tmp_path / "final")
    final_card = (tmp_path / "final" / "README.md").read_text()
    assert "| exported checkpoint | final: step 12, last validation loss 0.97 |" in final_card
    assert torch.equal(load_file(tmp_path / "final" / "model.safetensors")["model.norm.weight"],
                       load_file(tiny_model_dir / "model.safetensors")["model.norm.weight"])


def test_export_best_refuses_a_run_that_kept_none(tiny_model_dir, tmp_path):
    folder = fake_run(tmp_path / "run", tiny_model_dir)
    assert default_which(folder) == "final"
    with pytest.raises(ExportError, match="kept no best checkpoint"):
        export_run(folder, which="best")
    assert not list((tmp_path / "run").rglob("*.zip*")), "no half zip is left"


@pytest.fixture
def bf16_tiny(tmp_path):
    folder = tmp_path / "bf16-base"
    tokenizer = tiny.build_tokenizer()
    tiny.build_model(tokenizer).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_export_best_merges_lora_adapters_over_the_base_in_its_dtype(bf16_tiny, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    tokenizer = tiny.build_tokenizer()
    adapters = tmp_path / "adapters"
    base = AutoModelForCausalLM.from_pretrained(bf16_tiny, dtype=torch.float32)
    trained = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)  # adapters that change the outputs (B starts at zero)
    trained.save_pretrained(adapters)
    tokenizer.save_pretrained(adapters)
    folder = fake_run(tmp_path / "run", bf16_tiny, method="lora", best_dir=adapters)

    export_run(folder, target=tmp_path / "best.zip", which="best")
    names = unzip(tmp_path / "best.zip", tmp_path / "unzipped")
    assert "model.safetensors" in names and "adapter_config.json" not in names
    saved = load_file(tmp_path / "unzipped" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}, "merged in the base model's dtype"
    assert not list(folder.glob(".merged-*")), "the merged folder is temporary"
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "unzipped")
    assert not any("lora" in name for name, _ in merged.named_parameters())

    ids = tokenizer("What is the capital of France?", return_tensors="pt")["input_ids"]
    reference_base = AutoModelForCausalLM.from_pretrained(bf16_tiny, dtype=torch.float32)
    with torch.no_grad():
        plain = reference_base(ids).logits
        expected = PeftModel.from_pretrained(reference_base, adapters)(ids).logits
        got = merged.float()(ids).logits
    assert (expected - plain).abs().max() > 0.5, "the adapters matter"
    assert (got - expected).abs().max() < 0.1 * (expected - plain).abs().max()


def test_the_card_of_an_interrupted_run_reads_its_best_from_disk(tiny_model_dir, tmp_path):
    folder = fake_run(tmp_path / "run", tiny_model_dir, best_dir=tiny_model_dir)
    (folder / "summary.json").unlink()  # a run killed with the process has no summary
    assert "| exported checkpoint | best: step 7, validation loss 0.8512 |" in model_card(folder, "best")
