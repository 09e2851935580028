"""A best checkpoint that is the final model is stored once (issue 26): when the
lowest validation loss came at the last step, best/ holds the final model's
files as hard links, so the disk keeps one copy of the weights and exporting
best or final gives the same files."""

import json
import os
import zipfile

import pytest
from test_saved_dtype import bf16_base  # noqa: F401 -- a fixture: a tiny model published in bf16
from tiny_runs import RECORDS, run_to_end, tiny_config

from finetune.export.bundle import export_run
from finetune.runs import disk
from finetune.runs.outputs import RunFolder
from finetune.runs.saving import store_best_once


@pytest.fixture
def data_file(write):
    return write("dates.json", json.dumps(RECORDS))


def zipped(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_best_at_the_final_step_is_one_copy_and_exports_as_the_final_model(bf16_base, data_file,  # noqa: F811
                                                                            tmp_path):
    # A learning rate that lowers the validation loss at every step: the best is the last one.
    config = tiny_config(bf16_base, data_file, max_steps=3, eval_steps=1, held_out=1, validation_fraction=0.2,
                         general_probe=False)
    _, snap = run_to_end(config, tmp_path / "run")
    assert snap.status == "completed", snap.error
    folder = RunFolder(tmp_path / "run")
    assert folder.best()["step"] == snap.step == 3
    weights = folder.model_dir / "model.safetensors"
    assert os.path.samefile(folder.best_dir / "model.safetensors", weights), "one file on disk, two names"
    assert disk.folder_bytes(folder.root) < 1.5 * weights.stat().st_size
    best = zipped(export_run(folder.root, tmp_path / "best.zip", which="best"))
    final = zipped(export_run(folder.root, tmp_path / "final.zip", which="final"))
    assert "model.safetensors" in best and "config.json" in best
    assert {k: v for k, v in best.items() if k != "README.md"} == {k: v for k, v in final.items() if k != "README.md"}
    assert b"best checkpoint" in best["README.md"]  # the card still says which checkpoint it is


def folders(tmp_path, best_step: int, best_bytes: bytes = b"weights", twin: str = "model") -> RunFolder:
    """A run folder with its final model (or a LoRA run's adapters) and a best saved at `best_step`."""
    folder = RunFolder(tmp_path / "run")
    for name, content in ((twin, b"weights"), ("best", best_bytes)):
        (folder.root / name).mkdir(parents=True)
        (folder.root / name / "weights.safetensors").write_bytes(content)
        (folder.root / name / "tokenizer.json").write_text("{}")
    (folder.best_dir / "best.json").write_text(json.dumps({"step": best_step, "eval_loss": 1.0}))
    return folder


def linked(folder: RunFolder, twin: str = "model") -> list[str]:
    return sorted(p.name for p in folder.best_dir.iterdir()
                  if (folder.root / twin / p.name).exists() and os.path.samefile(p, folder.root / twin / p.name))


def test_an_earlier_best_keeps_its_own_files(tmp_path):
    folder = folders(tmp_path, best_step=2)
    assert store_best_once(folder, final_step=3) == 0 and linked(folder) == []


def test_only_byte_identical_files_are_shared(tmp_path):
    folder = folders(tmp_path, best_step=3, best_bytes=b"other weights")
    assert store_best_once(folder, final_step=3) == 2  # the tokenizer alone
    assert linked(folder) == ["tokenizer.json"]
    assert (folder.best_dir / "weights.safetensors").read_bytes() == b"other weights"
    assert json.loads((folder.best_dir / "best.json").read_text())["step"] == 3


def test_a_lora_runs_best_adapters_share_the_adapter_folder(tmp_path):
    folder = folders(tmp_path, best_step=5, twin="adapter")
    assert store_best_once(folder, final_step=5) > 0 and linked(folder, "adapter") == ["tokenizer.json",
                                                                                         "weights.safetensors"]


def test_where_links_fail_best_stays_a_whole_copy(tmp_path, monkeypatch):
    folder = folders(tmp_path, best_step=3)

    def no_links(*args, **kwargs):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "link", no_links)
    assert store_best_once(folder, final_step=3) == 0
    assert (folder.best_dir / "weights.safetensors").read_bytes() == b"weights" and linked(folder) == []
    assert sorted(p.name for p in folder.best_dir.iterdir()) == ["best.json", "tokenizer.json", "weights.safetensors"]
