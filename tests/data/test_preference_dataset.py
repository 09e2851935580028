"""The bundled preference pairs: the committed file is what its seeded generator
makes, the split keeps held-out facts out of training (and out of the demo's
training and the general probe), both kinds of rejected reply are there in every
split, and the lab reads it as pairs with their categories, for DPO and KTO."""

import importlib.util
import json
import re
from collections import Counter

from conftest import ROOT

from finetune.data.dataset import prepare
from finetune.train.config import TrainConfig
from finetune.train.objectives import training_units

spec = importlib.util.spec_from_file_location("make_pairs", ROOT / "assets" / "preference" / "make_pairs.py")
make_pairs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_pairs)
PAIRS = ROOT / "assets" / "preference" / "pairs.jsonl"
PROBE = ROOT / "assets" / "probe" / "general.jsonl"


def test_generator_output_is_the_committed_file():
    assert make_pairs.main(["--check"]) == 0, "run: python assets/preference/make_pairs.py"


def test_shape_splits_and_kinds():
    records = make_pairs.generate()
    counts = Counter((r["split"], r["task"]) for r in records)
    for task in ("dates", "general"):
        assert counts[("train", task)] == make_pairs.TRAIN[task]
        assert counts[("heldout", task)] == make_pairs.HELD_OUT[task]
    # Every kind of rejected reply in its share of each task, in both splits: chatty replies are not the only
    # ones that lose, so length alone does not separate chosen from rejected.
    kinds = Counter((r["split"], r["task"], r["rejected_kind"]) for r in records)
    for (split, task), count in counts.items():
        for kind, share in make_pairs.KINDS[task].items():
            assert kinds[(split, task, kind)] == round(count * share), (split, task, kind)
    for record in records:
        assert set(record) == {"prompt", "chosen", "rejected", "split", "category", "task", "rejected_kind"}
        assert record["chosen"] != record["rejected"] and record["chosen"].strip() and record["rejected"].strip()
        assert record["category"] == ("task" if record["task"] == "dates" else "general")
        if record["rejected_kind"] == "verbose":
            assert record["chosen"] in record["rejected"] and len(record["rejected"]) > 2 * len(record["chosen"])
        else:  # the right answer is nowhere in it, as a word
            assert not re.search(rf"\b{re.escape(record['chosen'])}\b", record["rejected"]), record
        if record["rejected_kind"] == "copied":  # the question's own words instead of an answer
            assert record["rejected"].lower() in record["prompt"].lower()
    assert len({(r["prompt"], r["rejected"]) for r in records}) == len(records)


def test_held_out_facts_are_never_trained_on():
    records = make_pairs.generate()
    trained = {r["prompt"] for r in records if r["split"] == "train"}
    held = [r for r in records if r["split"] == "heldout"]
    # A date in any wording: the chosen ISO date is the fact.
    train_dates = {r["chosen"] for r in records if r["split"] == "train" and r["task"] == "dates"}
    assert not train_dates & {r["chosen"] for r in held if r["task"] == "dates"}
    # A general fact in any wording: none of the ways to ask a held-out fact is a training prompt.
    asked = {q: fact for fact in make_pairs.general_facts() for q in fact["questions"]}
    for record in (r for r in held if r["task"] == "general"):
        assert not set(asked[record["prompt"]]["questions"]) & trained, record["prompt"]


def test_nothing_held_out_was_taught_by_the_demo_and_the_probe_asks_none_of_it():
    demo_dates = {d.isoformat() for d in make_pairs.demo_training_days()}
    records = make_pairs.generate()
    assert demo_dates and not demo_dates & {r["chosen"] for r in records if r["split"] == "heldout"}
    probe = [json.loads(line) for line in PROBE.read_text().splitlines() if line.strip()]
    asked = {" ".join(p["question"].lower().split()[-3:]) for p in probe}
    words = {p["answer"].lower() for p in probe if not p["answer"].isdigit()}
    for record in (r for r in records if r["task"] == "general"):
        assert " ".join(record["prompt"].lower().split()[-3:]) not in asked, record["prompt"]
        assert record["chosen"].lower() not in words, record["chosen"]


def test_the_lab_reads_pairs_with_their_split_and_categories_for_dpo_and_kto(tiny_tokenizer):
    config = TrainConfig(data=str(PAIRS), objective="dpo")
    prepared = prepare(config, tiny_tokenizer)
    assert prepared.kind == "pair"
    held = sum(make_pairs.HELD_OUT.values())
    assert len(prepared.held_out_pairs) == len(prepared.held_out) == held
    assert Counter(h.category for h in prepared.held_out) == {"task": make_pairs.HELD_OUT["dates"],
                                                              "general": make_pairs.HELD_OUT["general"]}
    assert all(h.rejected for h in prepared.held_out)  # scored against the chosen reply, leaning checked
    trained = len(prepared.train_pairs) + len(prepared.validation_pairs)
    assert trained == sum(make_pairs.TRAIN.values()) and prepared.validation_pairs  # 5% drawn for validation
    # KTO: each pair is a desirable and an undesirable reply, twice the examples of DPO.
    dpo_examples, _ = training_units(config, prepared)
    kto_examples, _ = training_units(config.replace(objective="kto"), prepared)
    assert kto_examples == 2 * dpo_examples == 2 * len(prepared.train_pairs)
