"""The best checkpoint on screen: a star and its label on the validation curve
(live from the snapshot, and after the run from summary.json), and the Export
tab's choice between the best and the final model."""

import json
import shutil
import zipfile

import pytest

gr = pytest.importorskip("gradio")

import tiny  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from finetune.runs.records import write_record  # noqa: E402
from finetune.runs.run import Snapshot  # noqa: E402
from finetune.sources.files import Limits  # noqa: E402
from ui.lab import Lab  # noqa: E402
from ui.tabs import compare_tab, export_tab, train_tab  # noqa: E402
from ui.views import plots  # noqa: E402
from ui.views.train_views import change_key, status_dict  # noqa: E402

HISTORY = ({"step": 1, "loss": 2.5, "time": 0.0}, {"step": 2, "eval_loss": 2.0, "time": 1.0},
           {"step": 4, "loss": 1.5, "time": 2.0}, {"step": 4, "eval_loss": 1.234, "time": 3.0},
           {"step": 6, "loss": 1.0, "time": 4.0}, {"step": 6, "eval_loss": 1.6, "time": 5.0})
BEST = {"step": 4, "eval_loss": 1.234}


def best_marks(figure):
    traces = [t for t in figure.data if t.name == "best"]
    labels = [a.text for a in figure.layout.annotations if a.text.startswith("best")]
    return [(t.x, t.y) for t in traces], labels


def test_the_loss_plot_marks_the_best_checkpoint_with_its_label():
    assert best_marks(plots.loss_figure(HISTORY, best=BEST)) == ([((4,), (1.234,))], ["best: step 4, 1.234"])
    assert best_marks(plots.loss_figure(HISTORY)) == ([], [])


def test_a_new_best_redraws_the_plot_and_reaches_api_clients():
    before = Snapshot(run_id="r", status="training", history=HISTORY, best_checkpoint={"step": 2, "eval_loss": 2.0})
    after = Snapshot(run_id="r", status="training", history=HISTORY, best_checkpoint=BEST)
    assert change_key(before, False) != change_key(after, False)  # published after its evaluation was logged
    assert status_dict(after)["best_checkpoint"] == BEST


@pytest.fixture
def lab(tmp_path, tiny_model_dir):
    return Lab(str(tiny_model_dir), tmp_path / "runs", None, Limits())


def finished_run(lab, tiny_model_dir, best_dir=None, status="completed"):
    folder = lab.output_root / "done"
    folder.mkdir(parents=True)
    shutil.copytree(tiny_model_dir, folder / "model")
    (folder / "config.json").write_text(json.dumps({"model": str(tiny_model_dir), "method": "full"}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in HISTORY))
    if best_dir:
        shutil.copytree(best_dir, folder / "best")
        (folder / "best" / "best.json").write_text(json.dumps(BEST))
    summary = {"status": status, "steps": 6, "error": "boom" if status == "failed" else None,
               "best_checkpoint": {**BEST, "folder": "best"} if best_dir else None}
    (folder / "summary.json").write_text(json.dumps(summary))
    write_record(folder, status=status, created_at=1.0)
    return folder


def test_after_the_run_the_train_tab_marks_the_best_from_its_summary(lab, tiny_model_dir):
    finished_run(lab, tiny_model_dir, best_dir=tiny_model_dir)
    with gr.Blocks():
        tab = train_tab.build(lab)
        compare = compare_tab.build(lab, 32)
    shown = train_tab.views(lab, tab, compare, lab.scheduler.owner(""), None, force=True)
    assert best_marks(shown[tab.loss]) == ([((4,), (1.234,))], ["best: step 4, 1.234"])


@pytest.fixture
def other_weights(tmp_path):
    folder = tmp_path / "other"
    tokenizer = tiny.build_tokenizer()
    tiny.build_model(tokenizer, seed=9).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def exported_norm(path, where):
    with zipfile.ZipFile(path) as archive:
        archive.extract("model.safetensors", where)
    return load_file(where / "model.safetensors")["model.norm.weight"]


def test_export_tab_offers_the_best_and_the_final_model(lab, tiny_model_dir, other_weights, tmp_path):
    finished_run(lab, tiny_model_dir, best_dir=other_weights)
    owner = lab.scheduler.owner("")
    path, card = export_tab.export(lab, owner)  # the default: best
    assert "best: step 4, validation loss 1.234" in card
    assert torch.equal(exported_norm(path, tmp_path / "b"), load_file(other_weights / "model.safetensors")[
        "model.norm.weight"])
    path, card = export_tab.export(lab, owner, which="final")
    assert "final: step 6" in card
    assert torch.equal(exported_norm(path, tmp_path / "f"), load_file(tiny_model_dir / "model.safetensors")[
        "model.norm.weight"])


def test_export_tab_exports_the_final_model_saying_so_when_no_best_was_kept(lab, tiny_model_dir):
    finished_run(lab, tiny_model_dir)
    path, card = export_tab.export(lab, lab.scheduler.owner(""), which="best")
    assert card.startswith("**done kept no best checkpoint") and "this is the final model" in card
    assert "final: step 6" in card


def test_a_failed_run_exports_the_best_it_kept_before_failing(lab, tiny_model_dir, other_weights):
    finished_run(lab, tiny_model_dir, best_dir=other_weights, status="failed")
    path, card = export_tab.export(lab, lab.scheduler.owner(""))
    assert "best: step 4" in card
    with pytest.raises(gr.Error, match="no final model"):
        export_tab.export(lab, lab.scheduler.owner(""), which="final")
