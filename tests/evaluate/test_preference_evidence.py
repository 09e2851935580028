"""A preference run's evidence (finetune/evaluate/preference.py): on pairs never
trained on, how often the model gives the chosen reply the higher mean
log-probability per reply token, before and after training, paired with
Newcombe's interval and McNemar's exact test; the held-out answers' lean to the
rejected reply; one reading of both, said the same on every surface; nothing of
it for supervised data."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from finetune.cli.main import main
from finetune.data.dataset import HeldOutPrompt
from finetune.data.render import EncodedPair
from finetune.evaluate import preference
from finetune.evaluate.metrics import (
    CLOSER,
    MIXED,
    PREFERENCE,
    change_lines,
    comparison_rows,
    readings,
    summarise_scores,
)
from finetune.runs.measures import preference_pairs

PAIRS = [{"prompt": f"Convert to ISO 8601: {name} {d}, 2021", "chosen": f"2021-{m:02d}-{d:02d}",
          "rejected": f"{d}/{m}/2021, I think"} for d in range(1, 25) for m, name in ((3, "March"), (4, "April"))]


# --------------------------------------------------------------------------- the forward passes


@pytest.fixture(scope="module")
def tiny_model():
    import tiny

    tokenizer = tiny.build_tokenizer()
    return tiny.build_model(tokenizer, layers=1).eval(), tokenizer


def one_by_one(model, ids: list[int], count: int) -> float:
    """The mean log-probability of the last `count` tokens, from one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    return float(logprobs[-count:].mean())


def test_batched_padded_passes_give_each_reply_what_it_gets_alone(tiny_model, monkeypatch):
    model, tokenizer = tiny_model
    texts = [("Convert to ISO 8601: March 5, 2021", "2021-03-05"), ("What is the capital of France?", "Paris"),
             ("Give a synonym for happy.", "Joyful. The quick brown fox jumps over the lazy dog.")]
    sequences = [(tokenizer(p + " " + r)["input_ids"], len(tokenizer(" " + r)["input_ids"])) for p, r in texts]
    alone = [one_by_one(model, ids, count) for ids, count in sequences]
    assert preference.mean_logprobs(model, sequences) == pytest.approx(alone, abs=1e-5)
    monkeypatch.setattr(preference, "LOGITS_BUDGET", 1)  # one row per pass: the same numbers
    assert preference.mean_logprobs(model, sequences) == pytest.approx(alone, abs=1e-5)
    assert math.isnan(preference.mean_logprobs(model, [(sequences[0][0], 0)])[0])  # no reply token left


def test_a_pair_is_cut_at_max_length_keeping_its_start_as_trl_does():
    assert preference.reply_tokens([1, 2, 3], [4, 5, 6], 5) == ([1, 2, 3, 4, 5], 2)
    assert preference.reply_tokens([1, 2, 3], [4, 5, 6], None) == ([1, 2, 3, 4, 5, 6], 3)
    assert preference.reply_tokens([1, 2, 3], [4], 2) == ([1, 2], 0)


def test_the_pairs_measured_are_the_unseen_ones_with_two_replies():
    pair = lambda n: (SimpleNamespace(messages=()), EncodedPair([n], [n + 1], [n + 2]))  # noqa: E731
    unpaired = (SimpleNamespace(messages=()), EncodedPair([9], [10], []))
    prepared = SimpleNamespace(kind="pair", held_out_pairs=[pair(1), unpaired], validation_pairs=[pair(5)],
                               train_pairs=[pair(20)])
    assert [(split, encoded.prompt_ids) for split, _, encoded in preference.unseen_pairs(prepared)] == \
        [("held_out", [1]), ("validation", [5])]
    assert preference_pairs(prepared) is not None
    # Supervised data, or KTO's unpaired replies: nothing to measure, nothing measured.
    assert preference_pairs(SimpleNamespace(kind="sft")) is None
    assert preference_pairs(SimpleNamespace(kind="unpaired", held_out_pairs=[unpaired], validation_pairs=[])) is None


# --------------------------------------------------------------------------- what the record says


def record(before: list, after: list, splits=None) -> dict:
    """A preference.json of pairs whose chosen reply was (1) or was not (0) the likelier, before and after."""
    side = {1: (-1.0, -2.0), 0: (-2.0, -1.0), None: None}
    pairs = [(splits[i] if splits else "held_out", SimpleNamespace(messages=({"role": "user", "content": f"q{i}"},)),
              EncodedPair([i], [1, 2], [3])) for i in range(len(before))]
    return preference.preference_record(pairs, [side[b] for b in before], [side[a] for a in after])


def test_the_share_preferred_is_paired_pair_by_pair_with_newcombe_and_mcnemar():
    found = record([0] * 14 + [1] * 6, [1] * 18 + [0] * 2, ["held_out"] * 8 + ["validation"] * 12)
    diff = preference.preferred_difference(found)
    assert (diff.n, diff.before, diff.after) == (20, 0.3, 0.9)
    assert diff.method == "Newcombe interval, exact McNemar test" and diff.p_value < 0.01 and diff.low > 0.2
    entry = preference.scores_entry(found)
    assert entry == {"pairs": 20, "held_out_pairs": 8, "validation_pairs": 12, "before_chosen_preferred": 0.3,
                     "before_margin": -0.4, "after_chosen_preferred": 0.9, "after_margin": 0.8}
    assert found["pairs"][0]["prompt"] == "q0" and found["pairs"][0]["chosen_tokens"] == 2
    json.dumps(found, allow_nan=False)


def test_a_tie_is_no_preference_and_a_damaged_record_reads_too_few():
    assert preference.preferred((-1.0, -1.0)) is False and preference.preferred((math.nan, -1.0)) is None
    assert preference.preferred_difference({"pairs": "damaged"}).n == 0
    entry = preference.preference_changes({}, [])
    assert readings({PREFERENCE: entry})[PREFERENCE].sentence.startswith("too few prompts to tell")


def leaning_rows(before: list[int], after: list[int]) -> list[dict]:
    """Held-out rows of preference data whose answers are the chosen (0) or the rejected (1) reply."""
    prompts = [HeldOutPrompt(f"p{i}", f"q{i}", "2021-03-05", "task", rejected="5/3/2021, I think")
               for i in range(len(before))]
    reply = {0: "2021-03-05", 1: "5/3/2021, I think"}
    return comparison_rows(prompts, [reply[v] for v in before], [reply[v] for v in after])


def test_each_held_out_answer_says_whether_it_leans_to_the_rejected_reply():
    rows = leaning_rows([1, 1, 0, 0], [0, 0, 0, 1])
    assert [r[f"before_{CLOSER}"] for r in rows] == [True, True, False, False]
    assert rows[0]["rejected"] == "5/3/2021, I think"
    assert summarise_scores(rows)["all"][f"after_{CLOSER}"] == 0.25
    supervised = comparison_rows([HeldOutPrompt("p", "q", "Paris", "task")], ["Paris"], ["Rome"])
    assert CLOSER not in str(supervised) and f"before_{CLOSER}" not in summarise_scores(supervised)["all"]


def test_one_reading_states_the_preference_and_the_answers_lean_with_their_intervals():
    # 14 pairs gained, 2 lost, 4 preferred both times; 6 answers moved from the rejected reply to the chosen one.
    entry = preference.preference_changes(record([0] * 14 + [1] * 6, [1] * 18 + [0] * 2),
                                          leaning_rows([1] * 6, [0] * 6))
    reading = readings({PREFERENCE: entry})[PREFERENCE]
    assert entry["reading"]["sentence"] == reading.sentence and reading.verdict == "better"
    assert reading.line() == (
        "preference (20 pairs), chosen preferred 30% → 90%: better on the pairs never trained on: +60 points, 95% "
        "interval +24 to +80 (exact test p = 0.0042); held-out answers closer to the rejected reply than to the "
        "chosen one (ROUGE-L): 100% → 0% of 6, -100 points, 95% interval -100 to -45 (exact test p = 0.031)")
    assert entry[CLOSER]["verdict"] == "away from the rejected replies"
    assert change_lines({PREFERENCE: entry}, {PREFERENCE: preference.scores_entry(record([0] * 20, [1] * 20))}) == \
        [reading.line()]


def test_a_preference_won_while_the_answers_moved_to_the_rejected_reply_is_mixed():
    entry = preference.preference_changes(record([0] * 20, [1] * 20), leaning_rows([0] * 10, [1] * 10))
    reading = readings({PREFERENCE: entry})[PREFERENCE]
    assert reading.verdict == MIXED and entry[CLOSER]["verdict"] == "toward the rejected replies"
    assert reading.sentence.startswith("mixed on the pairs never trained on: chosen preferred better by +100 points")
    assert "but more held-out answers are closer to the rejected reply than to the chosen one (ROUGE-L): 0% → 100% " \
           "of 10" in reading.sentence
    degraded = preference.preference_changes(record([0] * 20, [1] * 20), [], ["length exploitation was found: x"])
    assert readings({PREFERENCE: degraded})[PREFERENCE].sentence.endswith("but length exploitation was found: x")


# --------------------------------------------------------------------------- a run


@pytest.fixture
def pairs_file(write):
    return write("pairs.jsonl", "\n".join(json.dumps(p) for p in PAIRS))


def test_a_dpo_run_measures_the_tokens_trl_trains_and_says_one_story(tiny_model_dir, pairs_file, tmp_path, capsys):
    from one_story import contradictions

    out = tmp_path / "dpo"
    code = main(["train", "--data", str(pairs_file), "--model", str(tiny_model_dir), "--objective", "dpo",
                 "--max-steps", "6", "--learning-rate", "1e-3", "--allow-out-of-range", "--held-out", "6",
                 "--validation-fraction", "0.2", "--batch-size", "4", "--grad-accum", "1", "--eval-steps", "3",
                 "--max-new-tokens", "8", "--general-probe", "false", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    found = json.loads((out / "preference.json").read_text())
    validation = [p for p in found["pairs"] if p["split"] == "validation"]
    assert len(found["pairs"]) == 6 + len(validation) and validation
    # The last evaluation is of the final model: TRL's own summed log-probabilities of the
    # validation pairs are the measured means times their reply tokens, to the last digit.
    last = [m for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "eval_loss" in m][-1]
    assert last["step"] == 6
    for side in ("chosen", "rejected"):
        summed = sum(p["after"][side] * p[f"{side}_tokens"] for p in validation) / len(validation)
        assert summed == pytest.approx(last[f"eval_logps/{side}"], rel=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scores"][PREFERENCE]["pairs"] == len(found["pairs"])
    change = summary["changes"][PREFERENCE]
    assert change["chosen_preferred"]["method"] == "Newcombe interval, exact McNemar test"
    line = readings(summary["changes"])[PREFERENCE].line()
    assert line.startswith(f"preference ({len(found['pairs'])} pairs), chosen preferred ") and line in err
    comparison = json.loads((out / "comparison.json").read_text())
    assert all(isinstance(r[f"after_{CLOSER}"], bool) and r["rejected"] for r in comparison)
    assert not contradictions(out), contradictions(out)
