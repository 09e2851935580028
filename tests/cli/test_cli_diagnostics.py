"""python -m finetune estimate and the data advice of inspect, as a user runs them."""

import json
import re
import subprocess
import sys

from conftest import DEMO_DATA, ROOT

TERMS = ("weights", "master weights", "gradients", "optimizer states", "activations", "logits and loss", "overhead")


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def gib(text, term):
    found = re.search(rf"^{re.escape(term)}\s+([\d.]+) GiB", text, re.MULTILINE)
    assert found, f"no line for {term!r} in:\n{text}"
    return float(found.group(1))


def test_estimate_with_no_model_answers_the_tutorials_7b_question():
    result = cli("estimate")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "6.74e9 parameters" in out and "batch 4 x 2048 tokens" in out and "gradient checkpointing on" in out
    # Every term is printed, and they add up to the total shown (to rounding).
    assert abs(sum(gib(out, term) for term in TERMS) - gib(out, "total")) < 0.05
    assert gib(out, "master weights") == 2 * gib(out, "weights"), "fp32 master = 2x the fp16 working copy"
    assert "Assumptions:" in out and "fp32 master copy" in out and "Without gradient checkpointing" in out


def test_estimate_from_numbers_follows_the_settings():
    full = cli("estimate", "--params", "1e9", "--layers", 16, "--hidden", 2048, "--vocab", 32000, "--batch", 4,
               "--length", 1024, "--precision", "bf16")
    lora = cli("estimate", "--params", "1e9", "--layers", 16, "--hidden", 2048, "--vocab", 32000, "--batch", 4,
               "--length", 1024, "--precision", "bf16", "--method", "lora", "--checkpointing", "true")
    assert full.returncode == lora.returncode == 0, full.stderr + lora.stderr
    assert "1.00e9 parameters" in full.stdout and "LoRA r=16" in lora.stdout
    assert gib(lora.stdout, "optimizer states") < gib(full.stdout, "optimizer states") / 50
    assert gib(lora.stdout, "total") < gib(full.stdout, "total")


def test_estimate_refuses_an_impossible_shape_in_one_line():
    result = cli("estimate", "--layers", 0, "--hidden", 4096, "--vocab", 32000)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "layers" in errors[0]


def test_inspect_gives_the_data_advice_with_counts_examples_and_advice(tiny_model_dir, write):
    rows = [{"prompt": "What is 2+2?", "completion": "4"}] * 3 + [
        {"prompt": f"Name a colour, number {i}", "completion": f"Colour number {i} is blue"} for i in range(20)]
    data = write("small.jsonl", "\n".join(json.dumps(r) for r in rows))
    result = cli("inspect", data, "--model", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    advice = {a["name"]: a for a in json.loads(result.stdout)["advice"]}
    assert advice["too_few_examples"]["count"] < 23 and "100+" in advice["too_few_examples"]["advice"]
    duplicates = advice["duplicates"]
    assert duplicates["count"] >= 1 and any("2+2" in e for e in duplicates["examples"]) and duplicates["advice"]
    assert "warning: Only" in result.stderr and "100+" in result.stderr


def test_inspect_on_the_demo_data_still_prints_its_report(tiny_model_dir):
    result = cli("inspect", DEMO_DATA, "--model", tiny_model_dir, "--max-length", 128)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["records"] == 380 and "too_few_examples" not in {a["name"] for a in report["advice"]}
    assert "prompt_diversity" in {a["name"] for a in report["advice"]}


def test_estimate_reads_a_models_config_file(tiny_model_dir):
    result = cli("estimate", "--model", tiny_model_dir / "config.json", "--batch", 2, "--length", 64)
    assert result.returncode == 0, result.stderr
    assert "config.json" in result.stdout and "batch 2 x 64 tokens" in result.stdout and "total" in result.stdout
