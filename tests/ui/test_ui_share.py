"""The Export tab's formats and its push to the Hub, without a server: a GGUF
zip, the adapters refused for a full run, and a push's outcome in one line
(offline in tests; HfApi replaced where it must succeed). In public mode the
repository is private by default and the message never names a server path."""

import json
import shutil
import time
import zipfile

import pytest

gr = pytest.importorskip("gradio")

from huggingface_hub import HfApi  # noqa: E402

from finetune.runs.records import write_record  # noqa: E402
from finetune.sources.files import Limits  # noqa: E402
from ui.lab import Lab  # noqa: E402
from ui.tabs import export_tab  # noqa: E402


def finished_run(lab, tiny_model_dir):
    folder = lab.output_root / "done"
    shutil.copytree(tiny_model_dir, folder / "model")
    (folder / "config.json").write_text(json.dumps({"model": str(tiny_model_dir), "method": "full"}))
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 1}))
    write_record(folder, status="completed", created_at=time.time())  # just ended: inside a public server's retention
    return folder


@pytest.fixture(params=[False, True], ids=["local", "public"])
def lab(request, tmp_path, tiny_model_dir):
    return Lab(str(tiny_model_dir), tmp_path / "runs", None, Limits(), public=request.param)


def visitors_run(lab, tiny_model_dir) -> str:
    """A finished run of the caller's: locally the one owner's, in public mode a visitor's."""
    folder = finished_run(lab, tiny_model_dir)
    if not lab.public:
        return lab.scheduler.owner("")
    owner = lab.scheduler.owner("visitor")
    write_record(folder, status="completed", created_at=time.time(), owner=owner)
    return owner


def test_the_zip_comes_in_the_chosen_format(lab, tiny_model_dir):
    owner = visitors_run(lab, tiny_model_dir)
    path, card = export_tab.export(lab, owner, which="final", fmt="gguf-f16")
    assert path.endswith("/finetuned-done-gguf-f16.zip")  # the same name locally and in public mode
    assert "llama-cli -m model-f16.gguf" in card and "from_pretrained" not in card  # the card's Use fits a GGUF
    with zipfile.ZipFile(path) as archive:
        assert {"model-f16.gguf", "Modelfile", "README.md"} <= set(archive.namelist())
    with pytest.raises(gr.Error, match="only LoRA and QLoRA runs"):
        export_tab.export(lab, owner, which="final", fmt="adapter")
    with pytest.raises(gr.Error, match="unknown export format"):
        export_tab.export(lab, owner, fmt="exe")


def test_a_push_says_where_it_went(lab, tiny_model_dir, monkeypatch):
    owner = visitors_run(lab, tiny_model_dir)
    monkeypatch.setattr(HfApi, "repo_exists", lambda api, repo_id, **kw: False)
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: f"https://huggingface.co/{repo_id}")
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: None)
    text = export_tab.push_run(lab, owner, None, "best", "me/model", "hf_x", True, False, "")
    assert text.startswith("Pushed to [https://huggingface.co/me/model]") and "(private," in text


def test_a_push_that_cannot_go_is_one_line_that_names_no_server_path(lab, tiny_model_dir):
    owner = visitors_run(lab, tiny_model_dir)
    with pytest.raises(gr.Error) as offline:  # tests run with the Hub off
        export_tab.push_run(lab, owner, None, "final", "me/model", "hf_x", True, False, "")
    message = str(offline.value)
    assert "switched off" in message and "\n" not in message
    if lab.public:  # locally the message says where the upload waits; a visitor is not told server paths
        assert "nothing was lost" in message and str(lab.output_root) not in message
    else:
        assert "ready in done/hub" in message
    with pytest.raises(gr.Error, match="USER/NAME"):
        export_tab.push_run(lab, owner, None, "final", "nobody", "hf_x", True, False, "")


def test_the_private_box_starts_ticked_in_public_mode(lab):
    with gr.Blocks():
        tab = export_tab.build(lab)
    assert tab.private.value is lab.public
