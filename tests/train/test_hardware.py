"""Devices and memory levers: which device and precision a run gets and why
(GPUs and Macs faked where the test machine has none), what a machine refuses
and how, and the decisions the levers make. Paths that need CUDA run only there."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DEMO_DATA, ROOT, KeepTrainedModel
from tiny_runs import RECORDS, run_to_end, tiny_config

from finetune.data.collate import PackingCollator
from finetune.runs.run import TrainingRun, active_run
from finetune.train import device, levers
from finetune.train.config import ConfigError, TrainConfig

NO_CUDA = "needs a CUDA GPU (the test machine has none)"
CPU = device.Hardware("cpu", "CPU (2 threads)", "fp32", reason="no GPU found")


@pytest.fixture
def data_file(write):
    return write("dates.json", json.dumps(RECORDS))


@pytest.fixture
def fake_gpus(monkeypatch):
    """Four visible CUDA GPUs without bf16 (T4-like)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"Tesla T4 #{index}")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)


def test_cuda_takes_the_local_ranks_gpu_and_says_why(fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    monkeypatch.setenv("LOCAL_RANK", "2")
    hardware = device.detect("auto")
    assert hardware.torch_device == torch.device("cuda", 2)
    assert hardware.precision == "fp16", "no bf16: fp16 with loss scaling"
    line = hardware.describe()
    assert "Tesla T4 #2" in line and "GPU 2 of 4" in line and "CUDA_VISIBLE_DEVICES=4,5,6,7" in line
    assert "loss scaling" in line and "no bf16" in line
    asked = device.detect("bf16", local_rank=0)
    assert asked.precision == "fp16" and "no bf16" in asked.note


def test_a_mac_trains_on_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    hardware = device.detect("auto")
    assert (hardware.device, hardware.precision) == ("mps", "fp32")
    assert hardware.torch_device == torch.device("mps") and "MPS" in hardware.describe()


def test_the_cpu_line_says_why():
    if torch.cuda.is_available() or device.mps_available():
        pytest.skip("describes the CPU-only case")
    line = device.detect("auto").describe()
    assert "CPU" in line and "no GPU found" in line


@pytest.mark.parametrize("changes, refused", [
    ({"optimizer": "adamw_8bit"}, "optimizer adamw_8bit: needs bitsandbytes on a CUDA GPU; this run would be on the CPU"),
    ({"method": "qlora"}, "method qlora: needs bitsandbytes on a CUDA GPU"),
    ({"weights": "bf16"}, "weights bf16 (full fine-tuning): needs bitsandbytes on a CUDA GPU"),
])
def test_the_cpu_refuses_what_needs_cuda_in_one_line(changes, refused):
    problems = device.unsupported(TrainConfig(**changes), CPU)
    assert len(problems) == 1 and problems[0].startswith(refused), problems


def test_what_any_machine_can_do_is_not_refused():
    for changes in ({}, {"method": "lora", "weights": "bf16"}, {"gradient_checkpointing": "on"}):
        assert device.unsupported(TrainConfig(**changes), CPU) == [], changes


def test_a_gpu_without_bitsandbytes_or_bf16_is_refused_saying_so(fake_gpus, monkeypatch):
    monkeypatch.setattr(device, "bitsandbytes_installed", lambda: False)
    t4 = device.detect("auto", local_rank=0)
    problems = device.unsupported(TrainConfig(method="qlora", weights="bf16"), t4)
    assert any("bitsandbytes, which is not installed" in p for p in problems)
    assert any("has no bf16" in p for p in problems)


def test_a_run_the_machine_cannot_do_is_refused_before_it_starts(tiny_model_dir, data_file, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    config = tiny_config(tiny_model_dir, data_file, method="qlora", optimizer="adamw_8bit")
    with pytest.raises(ConfigError) as refused:
        TrainingRun(config, tmp_path / "run", allow_out_of_range=True)
    lines = str(refused.value).splitlines()
    assert len(lines) == 2 and all("CUDA GPU" in line for line in lines)
    assert active_run() is None and not (tmp_path / "run").exists()


def test_the_command_line_refuses_8bit_adamw_on_the_cpu_without_a_traceback(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    result = subprocess.run([sys.executable, "-m", "finetune", "train", "--data", str(DEMO_DATA), "--optimizer",
                             "adamw_8bit", "--output", str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert "error: optimizer adamw_8bit: needs bitsandbytes on a CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr and "ImportError" not in result.stderr


def test_the_hyperparameters_summary_shows_the_same_refusal():
    if torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    from ui.tabs.params_tab import plan_summary

    text, _ = plan_summary(None, False, **{**TrainConfig().to_dict(), "method": "qlora"})
    assert "cannot run these settings" in text and "method qlora: needs bitsandbytes on a CUDA GPU" in text


# --- the levers' decisions


@pytest.mark.parametrize("setting, peak, free, on", [
    ("auto", 90, 100, True), ("auto", 50, 100, False), ("auto", 90, None, False),
    ("on", 1, 100, True), ("off", 99, 100, False),
])
def test_checkpointing_auto_turns_on_above_85_percent_of_free_memory(setting, peak, free, on):
    decision = levers.checkpointing(TrainConfig(gradient_checkpointing=setting), peak, free)
    assert decision.on is on and f"gradient checkpointing {'on' if on else 'off'}" in decision.reason


def test_auto_decides_from_the_memory_estimate_of_this_model(tiny_tokenizer):
    import tiny

    model = tiny.build_model(tiny_tokenizer)
    full = levers.estimated_peak(model, TrainConfig(), CPU)
    assert levers.estimated_peak(model, TrainConfig(optimizer="adamw_8bit"), CPU) < full
    assert levers.estimated_peak(model, TrainConfig(batch_size=4), CPU) < full
    assert full > sum(p.numel() for p in model.parameters()) * 16, "fp32 weights, gradients and two Adam states"
    assert levers.checkpointing(TrainConfig(), full, free=int(full * 1.05)).on
    assert not levers.checkpointing(TrainConfig(), full, free=full * 2).on


def test_optimizer_and_weights_map_to_the_libraries_names():
    assert levers.optimizer_name(TrainConfig()) == "adamw_torch_fused"
    assert levers.optimizer_name(TrainConfig(optimizer="adamw_8bit")) == "adamw_bnb_8bit"
    assert levers.optimizer_name(TrainConfig(weights="bf16")) == "paged_adamw_32bit", "fp32 states for bf16 weights"
    assert levers.weights_dtype(TrainConfig(weights="bf16", method="lora"), CPU) == torch.bfloat16
    assert levers.weights_dtype(TrainConfig(), CPU) == torch.float32


def test_qlora_loads_an_nf4_base_computing_in_fp16_where_there_is_no_bf16(fake_gpus):
    quantization = levers.quantization_config(TrainConfig(method="qlora"), device.detect("auto", local_rank=0))
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_compute_dtype == torch.float16
    assert levers.quantization_config(TrainConfig(method="lora"), CPU) is None


def test_checkpointing_on_trains_to_the_same_losses(tiny_model_dir, data_file, tmp_path):
    runs = {}
    for setting in ("off", "on"):
        config = tiny_config(tiny_model_dir, data_file, gradient_checkpointing=setting, max_steps=3, held_out=0,
                             precision="fp32", compile="off")
        kept = KeepTrainedModel()
        run, snap = run_to_end(config, tmp_path / setting, callbacks=(kept,))
        assert snap.status == "completed", snap.error
        assert kept.model.is_gradient_checkpointing is (setting == "on")
        assert f"gradient checkpointing {setting}" in snap.hardware, "the device line says what was chosen"
        runs[setting] = snap.logged("loss")
    assert runs["on"] == pytest.approx(runs["off"], rel=1e-5)


def test_auto_turns_checkpointing_on_when_the_run_would_not_fit(tiny_model_dir, data_file, tmp_path, monkeypatch):
    monkeypatch.setattr(levers, "free_memory", lambda hardware, model=None: 64 * 2**10)  # 64 KiB free
    kept = KeepTrainedModel()
    run, snap = run_to_end(tiny_config(tiny_model_dir, data_file, max_steps=2, held_out=0), tmp_path / "run",
                           callbacks=(kept,))
    assert snap.status == "completed", snap.error
    assert "gradient checkpointing on: the estimated peak is" in snap.hardware
    assert kept.model.is_gradient_checkpointing


# --- attention over packed rows


def test_flash_attention_where_installed_on_a_gpu_else_sdpa(fake_gpus, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flash_attn" else real(name))
    assert levers.attention_implementation(device.detect("auto", local_rank=0)) == "flash_attention_2"
    assert levers.attention_implementation(CPU) == "sdpa"


def test_varlen_batch_is_one_row_with_its_examples_boundaries():
    features = [{"input_ids": [1] * n, "labels": [-100] + [1] * (n - 1)} for n in (5, 3, 7)]
    batch = PackingCollator(pad_token_id=0, pad_to_multiple=8, varlen=True)(features)
    assert batch["input_ids"].shape == (1, 16) and "attention_mask" not in batch
    assert batch["cu_seq_lens_q"].tolist() == [0, 5, 8, 15, 16]
    assert batch["position_ids"][0].tolist() == [*range(5), *range(3), *range(7), 0]
    assert batch["max_length_q"] == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_varlen_flash_loss_matches_the_unpacked_loss_on_cuda(tiny_tokenizer):
    pytest.importorskip("flash_attn", reason="FlashAttention is not installed on this GPU machine")
    import tiny
    from test_packing import PAIRS, _features

    from finetune.train.loss import response_loss

    model = tiny.build_model(tiny_tokenizer).to("cuda", torch.bfloat16)
    features = _features(tiny_tokenizer, PAIRS)
    model.config._attn_implementation = "flash_attention_2"
    batch = PackingCollator(tiny_tokenizer.pad_token_id, varlen=True)(features)
    batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in batch.items()}
    packed = response_loss(model, batch)
    model.config._attn_implementation = "sdpa"
    unpacked = PackingCollator(tiny_tokenizer.pad_token_id, pack=False)(features)
    unpacked = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in unpacked.items()}
    reference = response_loss(model, unpacked)
    assert torch.allclose(packed.float(), reference.float(), atol=2e-2), (packed.item(), reference.item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_fp16_autocast_trains_with_the_scaler_on_fp32_master_weights(tiny_model_dir, data_file, tmp_path):
    """The classic recipe's fp16 weights fail with 'Attempting to unscale FP16 gradients';
    the engine keeps fp32 weights and the Trainer's scaler unscales their gradients."""
    config = tiny_config(tiny_model_dir, data_file, precision="fp16", max_steps=4, held_out=0)
    _, snap = run_to_end(config, tmp_path / "run")
    assert snap.status == "completed", snap.error
    assert "fp16 autocast with loss scaling" in snap.hardware


def _resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc (Linux)")
def test_released_memory_goes_back_to_the_system_between_runs():
    """What a finished run freed must leave the server's resident memory, not stay
    mapped for reuse: a workshop server holding 2.9 GB between default-model runs
    (0.6 GB once given back) serves fewer students."""
    blocks = [bytearray(64 * 1024) for _ in range(4000)]  # 250 MiB in blocks the allocator keeps in its heap
    kept = blocks[::16]  # one block in sixteen lives on, so the freed ones sit between live ones
    del blocks
    before = _resident_mib()
    device.release_memory()
    assert before - _resident_mib() > 150, "freed memory stayed resident"
    assert len(kept) == 250
