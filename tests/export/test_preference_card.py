"""A preference run's card and Hub push say how it trained: the objective and the
settings it read, tagged as TRL tags the models it trains; a supervised run's
card and push are as before. No network: HfApi is replaced."""

import json
import shutil

import pytest
from huggingface_hub import HfApi, ModelCard

from finetune.export import bundle, hub
from finetune.export.hub import prepare_upload, push
from finetune.train import objectives
from finetune.train.config import TrainConfig


def run_folder(tmp_path, tiny_model_dir, **settings):
    folder = tmp_path / "20261207-run"
    shutil.copytree(tiny_model_dir, folder / "model")
    config = {**TrainConfig().to_dict(), "model": "default", "data": "me/pairs", **settings,
              "resolved": {"format": "preference", "template": "chat"}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "steps": 4, "final_train_loss": 0.4}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.69}) + "\n")
    (folder / "comparison.json").write_text("[]")
    (folder / "preference.json").write_text(json.dumps({"pairs": []}))
    return folder


def test_a_dpo_runs_card_names_its_objective_and_settings_and_is_tagged_for_trl(tmp_path, tiny_model_dir):
    folder = run_folder(tmp_path, tiny_model_dir, objective="dpo", beta=0.05, dpo_loss="ipo", precompute_ref=False)
    card = ModelCard.load(prepare_upload(folder, repo_id="me/model") / "README.md")
    assert {"dpo", "trl", "fine-tuned", "finetune-lab"} <= set(card.data.tags)
    assert "trained by DPO (preference pairs)" in card.text
    assert "| objective | DPO (preference pairs): beta 0.05, loss ipo, reference model held as a copy |" in card.text
    assert (folder / "hub" / "training" / "preference.json").is_file()  # the evidence travels with the model
    zipped = bundle.model_card(folder)  # the export zip's card carries the same tags in its front matter
    assert "- dpo\n- trl\n" in zipped.split("---")[1]


def test_a_kto_lora_runs_card_names_the_weights_and_where_its_reference_comes_from(tmp_path, tiny_model_dir):
    folder = run_folder(tmp_path, tiny_model_dir, objective="kto", method="lora", undesirable_weight=1.33)
    text = bundle.model_card(folder)
    assert "KTO (desirable / undesirable): beta 0.1, reference: the adapters switched off, desirable weight 1, " \
           "undesirable weight 1.33" in text
    assert "- kto\n- trl\n" in text


def test_a_supervised_runs_card_and_push_are_unchanged(tmp_path, tiny_model_dir, monkeypatch):
    folder = run_folder(tmp_path, tiny_model_dir)
    card = ModelCard.load(prepare_upload(folder, repo_id="me/model") / "README.md")
    assert not {"dpo", "kto", "trl"} & set(card.data.tags)
    assert "| objective | supervised fine-tuning |" in card.text and "trained by" not in card.text
    assert hub.commit_message(folder) == "Upload from the fine-tuning lab"


def test_the_hub_commit_names_the_objective(tmp_path, tiny_model_dir, monkeypatch):
    folder = run_folder(tmp_path, tiny_model_dir, objective="dpo")
    sent = {}
    monkeypatch.setattr(HfApi, "repo_exists", lambda api, repo_id, **kw: False)
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: f"https://huggingface.co/{repo_id}")
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: sent.update(kw))
    push(folder, "me/model", token="hf_x")
    assert sent["commit_message"] == ("Upload from the fine-tuning lab: DPO (preference pairs): beta 0.1, "
                                      "loss sigmoid, reference log-probabilities precomputed")


@pytest.mark.parametrize("objective, tags", [("sft", []), ("dpo", ["dpo", "trl"]), ("kto", ["kto", "trl"])])
def test_tags_follow_the_objective_from_a_config_or_its_file(objective, tags):
    assert objectives.tags(TrainConfig(objective=objective)) == tags
    assert objectives.tags(TrainConfig(objective=objective).to_dict()) == tags
    assert objectives.tags({}) == []  # a run from before objectives existed was supervised
