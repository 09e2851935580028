"""Continue from a run: a finished run's best checkpoint (or final model) is the
model folder the next run starts from (a LoRA run's best adapters merged over
its base once, kept in its folder); the next run's record names its parent,
and the runs table reads the chain back."""

import json
import os
import shutil

import pytest
import tiny
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from finetune.experiments.compare import chain, runs_rows
from finetune.export.checkpoint import ExportError
from finetune.export.continuing import continue_model
from finetune.runs.records import MERGED_BEST_DIR, list_runs, load_record, parent_of, run_holding, write_record

BEST = {"step": 4, "eval_loss": 0.9}


def finished_run(folder, model_dir, best_dir=None, final=True, model_spec=None):
    """A finished run folder as a run leaves it: config.json (its model recorded relative to the folder), run.json,
    model/ and best/ (with best.json) when asked for."""
    folder.mkdir(parents=True)
    spec = model_spec or os.path.relpath(model_dir, folder)
    (folder / "config.json").write_text(json.dumps({"model": spec, "method": "full", "objective": "sft"}))
    if final:
        shutil.copytree(model_dir, folder / "model")
    if best_dir is not None:
        shutil.copytree(best_dir, folder / "best")
        (folder / "best" / "best.json").write_text(json.dumps(BEST))
    write_record(folder, status="completed")
    return folder


def test_a_full_runs_best_and_final_models_are_its_own_folders(tiny_model_dir, tmp_path):
    run = finished_run(tmp_path / "runs" / "sft", tiny_model_dir, best_dir=tiny_model_dir)
    assert continue_model(run, "best") == (run / "best", "best")
    assert continue_model(run, "final") == (run / "model", "final")
    with pytest.raises(ExportError, match="which: 'latest' is not one of best, final"):
        continue_model(run, "latest")


def test_a_run_without_a_best_continues_from_its_final_model_and_one_without_either_is_refused(tiny_model_dir,
                                                                                             tmp_path):
    no_best = finished_run(tmp_path / "no-best", tiny_model_dir)
    assert continue_model(no_best, "best") == (no_best / "model", "final")
    nothing = finished_run(tmp_path / "nothing", tiny_model_dir, final=False)
    with pytest.raises(ExportError, match="kept no best checkpoint.*no final model either"):
        continue_model(nothing, "best")
    with pytest.raises(ExportError, match="nothing has no final model"):
        continue_model(nothing, "final")


@pytest.fixture
def adapters(tiny_model_dir, tmp_path):
    """LoRA adapters over the tiny model that change its outputs, as a LoRA run's best/ holds them."""
    from peft import LoraConfig, get_peft_model

    folder = tmp_path / "adapters"
    trained = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                             LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.2)
    trained.save_pretrained(folder)
    tiny.build_tokenizer().save_pretrained(folder)
    return folder


def test_a_lora_runs_best_adapters_are_merged_once_into_its_folder(tiny_model_dir, adapters, tmp_path):
    # The base is recorded relative to the run folder, as a run records a local model: merged from there.
    run = finished_run(tmp_path / "runs" / "lora", tiny_model_dir, best_dir=adapters)
    folder, which = continue_model(run, "best")
    assert (folder, which) == (run / MERGED_BEST_DIR, "best")
    merged = AutoModelForCausalLM.from_pretrained(folder)  # a plain model folder: no adapters
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert not torch.equal(load_file(folder / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"],
                           load_file(tiny_model_dir / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"])
    assert json.loads((folder / "best.json").read_text())["step"] == BEST["step"]
    assert (run / "best" / "adapter_config.json").is_file(), "the run's own best/ is left as it was"
    made = (folder / "model.safetensors").stat().st_mtime_ns
    assert continue_model(run, "best")[0] == folder and (folder / "model.safetensors").stat().st_mtime_ns == made
    # A resumed run that kept a later best is merged again.
    (run / "best" / "best.json").write_text(json.dumps({"step": 9, "eval_loss": 0.5}))
    assert continue_model(run, "best")[0] == folder
    assert json.loads((folder / "best.json").read_text())["step"] == 9


def test_the_next_runs_record_names_its_parent_and_the_table_shows_the_chain(tiny_model_dir, tmp_path):
    root = tmp_path / "runs"
    sft = finished_run(root / "sft-run", tiny_model_dir, best_dir=tiny_model_dir)
    assert load_record(sft).parent is None
    dpo = finished_run(root / "dpo-run", tiny_model_dir, model_spec="../sft-run/best")  # as a run records it
    assert json.loads((dpo / "run.json").read_text())["parent"] == {"run_id": "sft-run", "which": "best"}
    again = finished_run(root / "dpo-again", tiny_model_dir, model_spec="../dpo-run/model")
    assert load_record(again).parent == {"run_id": "dpo-run", "which": "final"}
    records = list_runs(root)
    by_id = {r.id: r for r in records}
    assert chain(by_id["dpo-again"], by_id) == "sft-run (best) → dpo-run (final)"
    rows = {row["run"]: row for row in runs_rows(records)}
    assert rows["dpo-run"]["from"] == "sft-run (best)" and rows["sft-run"]["from"] == ""
    assert rows["dpo-again"]["model"] == "dpo-run/model"
    # A chain whose earlier runs are not listed names the parent it knows.
    assert chain(by_id["dpo-again"], {}) == "dpo-run (final)"


def test_a_model_that_is_no_runs_folder_names_no_parent(tiny_model_dir, tmp_path):
    assert parent_of(str(tiny_model_dir)) is None and parent_of("default") is None and parent_of(None) is None
    run = finished_run(tmp_path / "runs" / "sft", tiny_model_dir)
    assert parent_of(str(run / "model")) == {"run_id": "sft", "which": "final"}
    assert parent_of(str(run / "checkpoints")) is None


def test_run_holding_finds_the_run_folder_under_the_root(tiny_model_dir, tmp_path):
    root = tmp_path / "runs"
    run = finished_run(root / "sft", tiny_model_dir)
    member = finished_run(root / "sweep-1" / "lr-1", tiny_model_dir)
    (root / "sweep-1" / "sweep.json").write_text("{}")
    assert run_holding(root, run / "model") == "sft" and run_holding(root, member / "model") == "lr-1"
    assert run_holding(root, tmp_path / "elsewhere") is None and run_holding(root, root / ".uploads" / "x") is None
