"""Nothing computed twice: a run's "before" measurements are kept under a key
hashed from every input, in memory and on disk, reused by the next run that
asks the same, and recomputed when any input changes."""

import json

from finetune.runs.reuse import Reused, key_of, model_fingerprint


def test_a_value_is_computed_once_per_key_then_reused_from_memory_and_from_disk(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return ["2021-03-03", "Paris"]

    store = Reused(tmp_path / ".reuse")
    key = key_of("held-out-answers", model="m:1", prompts=["a", "b"], max_new_tokens=8)
    assert store.get(key, compute) == (["2021-03-03", "Paris"], False)
    assert store.get(key, compute) == (["2021-03-03", "Paris"], True)
    assert Reused(tmp_path / ".reuse").get(key, compute) == (["2021-03-03", "Paris"], True), "from disk"
    assert len(calls) == 1
    assert json.loads((tmp_path / ".reuse" / f"{key}.json").read_text())["key"] == key


def test_any_input_changed_is_another_key():
    base = dict(model="m:1", prompts=["a", "b"], max_new_tokens=8, precision="bf16")
    keys = {key_of("held-out-answers", **base)}
    for change in ({"model": "m:2"}, {"prompts": ["a", "c"]}, {"max_new_tokens": 16}, {"precision": "fp32"}):
        keys.add(key_of("held-out-answers", **{**base, **change}))
    keys.add(key_of("probe-before", **base))
    assert len(keys) == 6


def test_a_model_is_known_by_its_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"12345678")
    first = model_fingerprint(str(tmp_path))
    assert first == model_fingerprint(str(tmp_path))
    weights.write_bytes(b"123456789")  # trained again: other weights
    assert model_fingerprint(str(tmp_path)) != first
    assert model_fingerprint("HuggingFaceTB/SmolLM2-135M-Instruct") == "hub:HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_damaged_file_is_computed_again(tmp_path):
    store = Reused(tmp_path)
    key = key_of("probe-before", model="m")
    (tmp_path / f"{key}.json").write_text("{not json")
    assert store.get(key, lambda: {"answers": ["x"]}) == ({"answers": ["x"]}, False)


def test_a_second_run_reuses_the_first_runs_before_answers_and_says_so(tiny_model_dir, write, tmp_path):
    """Same model, prompts and settings: the base answers and the probe's before are the ones
    computed by the first run, marked with their key; a changed setting in the key computes anew."""
    from tiny_runs import RECORDS, tiny_config

    from finetune.runs.run import TrainingRun

    data = write("dates.json", json.dumps(RECORDS))
    config = tiny_config(tiny_model_dir, data, max_steps=1, held_out=3, general_probe=True, precision="fp32")

    def run(name, cfg):
        snap = TrainingRun(cfg, tmp_path / "runs" / name, allow_out_of_range=True).start().wait(timeout=300)
        assert snap.status == "completed", snap.error
        folder = tmp_path / "runs" / name
        return (json.loads((folder / "comparison.json").read_text()),
                json.loads((folder / "probe.json").read_text()))

    first_rows, first_probe = run("first", config)
    assert not any("before_reused" in row for row in first_rows) and "before_reused" not in first_probe
    rows, probe = run("second", config.replace(learning_rate=1e-3))  # trains differently, asks the same
    keys = {row["before_reused"] for row in rows}
    assert len(keys) == 1 and next(iter(keys)).startswith("held-out-answers-")
    assert [r["before"] for r in rows] == [r["before"] for r in first_rows]
    assert probe["before_reused"].startswith("probe-before-")
    assert [a["before"] for a in probe["answers"]] == [a["before"] for a in first_probe["answers"]]
    assert (tmp_path / "runs" / ".reuse" / f"{next(iter(keys))}.json").is_file()
    rows, probe = run("longer", config.replace(max_new_tokens=16))  # in the key: computed again
    assert not any("before_reused" in row for row in rows) and "before_reused" not in probe
