"""What users download is saved in the base model's dtype, not as the fp32
master copy: half the size for a bf16 model, and the same answers."""

import json

import pytest
import tiny
import torch
from conftest import KeepTrainedModel
from safetensors import safe_open
from tiny_runs import RECORDS, run_to_end, tiny_config

from finetune.data import dataset
from finetune.evaluate.generate import generate
from finetune.sources import models
from finetune.train import device


@pytest.fixture
def data_file(write):
    return write("dates.json", json.dumps(RECORDS))


@pytest.fixture(scope="module")
def bf16_base(tmp_path_factory):
    """A tiny model published in bf16, as SmolLM2 and most Llamas are."""
    folder = tmp_path_factory.mktemp("bf16-base")
    tokenizer = tiny.build_tokenizer()
    tiny.build_model(tokenizer).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_trained_model_is_saved_in_bf16_and_reloads_with_the_same_answers(bf16_base, data_file, tmp_path):
    config = tiny_config(bf16_base, data_file, max_steps=4, held_out=3, max_new_tokens=12)
    kept = KeepTrainedModel()
    run, snap = run_to_end(config, tmp_path / "run", callbacks=(kept,))
    assert snap.status == "completed", snap.error
    saved = tmp_path / "run" / "model" / "model.safetensors"
    with safe_open(saved, "pt") as weights:
        dtypes = {weights.get_tensor(name).dtype for name in weights.keys()}
    assert dtypes == {torch.bfloat16}
    fp32_bytes = sum(p.numel() * 4 for p in kept.model.parameters())
    assert saved.stat().st_size < 0.55 * fp32_bytes, "about half the fp32 master copy"

    source = models.resolve(str(tmp_path / "run" / "model"))
    model, tokenizer = models.load(source)
    prompts = [item.prompt for item in dataset.prepare(config, tokenizer).held_out]
    hardware = device.detect(config.precision)
    answers = generate(model, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    after = [row["after"] for row in json.loads((tmp_path / "run" / "comparison.json").read_text())]
    assert answers == after, "the saved model answers as the trained one did"
    # Not only greedy text: the model that answered after saving is the saved one, to the bit.
    trained = kept.model.state_dict()
    assert all(torch.equal(tensor, trained[name].cpu()) for name, tensor in model.state_dict().items())


def test_a_fp32_base_stays_fp32(tiny_model_dir):
    assert models.saved_dtype(models.resolve(str(tiny_model_dir))) == torch.float32


def test_the_bundled_default_is_saved_in_bf16_like_the_published_model():
    assert models.saved_dtype(models.resolve("default")) == torch.bfloat16


def test_qlora_adapters_are_merged_into_the_base_loaded_in_its_own_dtype(tiny_model_dir):
    """QLoRA saves its adapters merged into a full-precision base, not into the 4-bit copy
    it trained over; the transfer is checked here with a plain LoRA model (4-bit needs CUDA)."""
    from peft import LoraConfig, get_peft_model

    from finetune.runs.saving import merged_over_full_base

    source = models.resolve(str(tiny_model_dir))
    base, tokenizer = models.load(source)
    trained = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(3)
    for name, param in trained.named_parameters():
        if "lora_B" in name:
            param.data.normal_(std=0.05)  # adapters that change the answers (B starts at zero)
    ids = tokenizer("What is the capital of France?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = trained(ids).logits
        merged = merged_over_full_base(trained, source, torch.float32, None)
        assert not any("lora" in name for name, _ in merged.named_parameters())
        assert torch.allclose(merged(ids).logits, expected, atol=1e-5)
