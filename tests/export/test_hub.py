"""Pushing a run to the Hub: the upload is laid out in the run folder first
(model, card with the Hub's metadata, loss curve, the run's files), each bad
input is one line before anything is sent, a push that fails leaves the
folder ready and no half-made repo. No test reaches the network: the Hub is
offline in tests, and HfApi is replaced where a push must succeed or fail."""

import json
import shutil

import httpx
import pytest
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError

from finetune.export import hub
from finetune.export.hub import PushError, check_repo_id, prepare_upload, push


@pytest.fixture
def run_dir(tmp_path, tiny_model_dir):
    folder = tmp_path / "20261203-run"
    shutil.copytree(tiny_model_dir, folder / "model")
    (folder / "config.json").write_text(json.dumps({
        "model": "default", "data": "tatsu-lab/alpaca", "method": "full", "learning_rate": 2e-5,
        "resolved": {"format": "alpaca", "template": "chat"}}))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 4, "final_train_loss": 1.2}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in (
        {"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.6}, {"step": 2, "eval_loss": 1.7}, {"step": 4, "loss": 1.2},
        {"step": 4, "eval_loss": 1.5})))
    (folder / "comparison.json").write_text("[]")
    return folder


class FakeHub:
    """Records what a push asks of the Hub; `fail` makes the upload answer with that HTTP status."""

    def __init__(self, monkeypatch, exists=False, fail=None):
        self.calls = []
        monkeypatch.setattr(HfApi, "repo_exists", lambda api, repo_id, **kw: self._call("repo_exists", repo_id) or exists)
        monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: self._call("create_repo", repo_id, **kw)
                            or f"https://huggingface.co/{repo_id}")
        monkeypatch.setattr(HfApi, "delete_repo", lambda api, repo_id, **kw: self._call("delete_repo", repo_id))

        def upload_folder(api, **kw):
            self._call("upload_folder", kw["repo_id"], folder_path=kw["folder_path"])
            if fail:
                request = httpx.Request("POST", "https://huggingface.co/api/models/x/commit/main")
                raise HfHubHTTPError(f"{fail} Client Error", response=httpx.Response(fail, request=request))

        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)

    def _call(self, name, repo_id, **kw):
        self.calls.append((name, repo_id, kw))

    def names(self):
        return [c[0] for c in self.calls]


@pytest.mark.parametrize("name", ["just-a-name", "a/b/c", "/name", "user/", "user/na me", "../../etc", "user/a--b"])
def test_a_repo_name_that_is_not_user_slash_name_is_one_line_and_sends_nothing(run_dir, monkeypatch, name):
    hub_calls = FakeHub(monkeypatch)
    with pytest.raises(PushError) as refused:
        push(run_dir, name, token="hf_x")
    assert "\n" not in str(refused.value) and hub_calls.calls == []


def test_no_token_anywhere_is_one_line(run_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(PushError, match="no Hugging Face token.*HF_TOKEN.*hf auth login"):
        push(run_dir, "me/model")


def test_a_run_that_never_finished_has_nothing_to_push(run_dir, monkeypatch):
    shutil.rmtree(run_dir / "model")
    hub_calls = FakeHub(monkeypatch)
    with pytest.raises(PushError, match="has no trained model to push"):
        push(run_dir, "me/model", token="hf_x")
    with pytest.raises(PushError, match="only LoRA and QLoRA runs"):
        prepare_upload(run_dir, adapter_only=True)
    assert hub_calls.calls == []


def test_offline_the_upload_is_ready_to_push_later(run_dir):
    with pytest.raises(PushError) as offline:  # tests run with HF_HUB_OFFLINE=1
        push(run_dir, "me/model", token="hf_x")
    message = str(offline.value)
    assert "\n" not in message and "ready in 20261203-run/hub" in message and "python -m finetune push" in message
    upload = run_dir / "hub"
    assert (upload / "model.safetensors").is_file() and (upload / "training" / "summary.json").is_file()
    assert (upload / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run_dir.glob(".hub.partial"))


def test_the_card_carries_the_hubs_metadata_and_the_loss_curve(run_dir):
    card = ModelCard.load(prepare_upload(run_dir, repo_id="me/model") / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.datasets == ["tatsu-lab/alpaca"] and card.data.library_name == "transformers"
    assert {"fine-tuned", "finetune-lab"} <= set(card.data.tags) and card.data.pipeline_tag == "text-generation"
    assert "![Training and validation loss](loss_curve.png)" in card.text
    assert 'AutoModelForCausalLM.from_pretrained("me/model")' in card.text


def test_a_push_creates_the_repo_and_uploads_one_folder(run_dir, monkeypatch):
    hub_calls = FakeHub(monkeypatch)
    pushed = push(run_dir, "me/model", token="hf_x", private=True)
    assert hub_calls.names() == ["repo_exists", "create_repo", "upload_folder"]
    assert hub_calls.calls[1][2]["private"] is True
    assert hub_calls.calls[2][2]["folder_path"] == run_dir / "hub"
    assert pushed.url == "https://huggingface.co/me/model" and "README.md" in pushed.files
    assert "model.safetensors" in pushed.files and "training/metrics.jsonl" in pushed.files


def test_a_refused_token_leaves_no_half_made_repo(run_dir, monkeypatch):
    hub_calls = FakeHub(monkeypatch, fail=401)
    with pytest.raises(PushError, match=r"refused the token \(401\).*ready in"):
        push(run_dir, "me/model", token="hf_bad")
    assert hub_calls.names()[-1] == "delete_repo"  # it created the repo, so it removes it


def test_a_failed_upload_to_an_existing_repo_leaves_that_repo_alone(run_dir, monkeypatch):
    hub_calls = FakeHub(monkeypatch, exists=True, fail=403)
    with pytest.raises(PushError, match=r"may not write to me/model \(403\)"):
        push(run_dir, "me/model", token="hf_read_only")
    assert "delete_repo" not in hub_calls.names()


def test_a_gguf_and_its_modelfile_can_travel_with_the_model(run_dir):
    upload = prepare_upload(run_dir, gguf="q8_0")
    assert (upload / "model-q8_0.gguf").stat().st_size > 0
    assert (upload / "Modelfile").read_text().startswith("FROM ./model-q8_0.gguf")
    assert "gguf" in ModelCard.load(upload / "README.md").data.tags


def test_the_default_models_licence_goes_on_the_card(run_dir):
    assert hub._base_license(run_dir, token="hf_x") == "apache-2.0"
    assert check_repo_id(" me/model ") == "me/model"
