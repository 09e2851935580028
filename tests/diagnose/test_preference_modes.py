"""A preference run's failure modes (finetune/diagnose/preference_modes.py), on
recorded DPO runs of the tiny model that provoke each one (tests/fixtures/dpo-*.json,
made by tests/fixtures/preference_runs.py) and on hand-built histories for the
edges: each finding with its evidence, its step and a mitigation in the run's own
settings, live where the history suffices, and never on a supervised run."""

import json
import math

import pytest
from conftest import ROOT

from finetune.diagnose import findings
from finetune.diagnose.base import CLEAR, FOUND, UNKNOWN, RunFacts
from finetune.diagnose.modes import DETECTORS, LIVE, PREFERENCE_DETECTORS, PREFERENCE_LIVE, diagnose_final
from finetune.diagnose.preference_modes import (
    DRIFT_NATS,
    length_exploitation,
    likelihood_displacement,
    margin_runaway,
    no_preference_learned,
)
from finetune.evaluate.metrics import PREFERENCE
from finetune.evaluate.preference import preference_record

FIXTURES = ROOT / "tests" / "fixtures"
DPO = {"objective": "dpo", "beta": 0.1, "dpo_loss": "sigmoid", "learning_rate": 5e-6, "max_steps": 40,
       "warmup_ratio": 0.1, "method": "full"}


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def final(fixture: dict) -> dict:
    found = diagnose_final(fixture["history"], fixture["config"], fixture["comparison"], fixture.get("probe"), [],
                           status=fixture["status"], preference=fixture.get("preference"))
    return {f.name: f for f in found}


def first_found_live(fixture: dict) -> dict[str, int]:
    """The step at which each live detector first named its failure, replaying the logged history."""
    history, first = fixture["history"], {}
    for i in range(1, len(history) + 1):
        for d in findings.live(history[:i], fixture["config"]):
            if d["status"] == FOUND:
                first.setdefault(d["name"], history[i - 1]["step"])
    return first


# ----------------------------------------------------------------- the recorded runs


def test_the_healthy_run_is_clear_on_every_preference_check_live_and_at_the_end():
    fixture = recorded("dpo-healthy")
    found = final(fixture)
    for name in PREFERENCE_DETECTORS:
        assert found[name].status == CLEAR, found[name]
        assert any(ch.isdigit() for ch in found[name].evidence)
    assert "preferred the chosen reply on 0% -> 88% of 16 pairs" in found["no_preference_learned"].evidence
    assert first_found_live(fixture) == {}


def test_a_tiny_beta_and_a_high_learning_rate_run_away_and_displace_the_chosen_replies():
    fixture = recorded("dpo-runaway")  # beta 0.01, learning rate 5e-3
    found = final(fixture)
    runaway, displaced = found["margin_runaway"], found["likelihood_displacement"]
    assert runaway.status == FOUND and runaway.step == 7
    assert "254.8 nats of log-ratio from the starting model at beta 0.01" in runaway.evidence
    assert "and the answers degenerated: 4 distinct answers to 8 prompts" in runaway.evidence  # with mode collapse
    assert "use dpo_loss ipo instead of sigmoid" in runaway.advice.lower()
    assert "raise beta from 0.01 to 0.03" in runaway.advice and "from 5e-03 to 1e-03" in runaway.advice
    assert displaced.status == FOUND and "-7.4 nats (steps 31-40)" in displaced.evidence
    assert "logps/chosen -16.0 -> -21.7" in displaced.evidence
    # Both are named while it trains, by step 8 of 40.
    live = first_found_live(fixture)
    assert live["margin_runaway"] <= 8 and live["likelihood_displacement"] <= 8
    # The preference it won is not called simply better.
    assert set(runaway.degraded) == set(displaced.degraded) == {PREFERENCE}


def test_pairs_that_differ_in_one_digit_push_the_chosen_replies_down():
    fixture = recorded("dpo-displacement")
    found = final(fixture)
    displaced = found["likelihood_displacement"]
    assert displaced.status == FOUND and displaced.step == 11
    assert "-0.2 nats (steps 1-10) -> -4.0 nats (steps 31-40)" in displaced.evidence
    assert "the margin 0.036 -> 0.303" in displaced.evidence
    assert "use dpo_loss apo_zero instead of sigmoid" in displaced.advice.lower()
    assert "raise beta from 0.1 to 0.3" in displaced.advice and "from 5e-04 to 2e-04" in displaced.advice
    assert found["margin_runaway"].status == CLEAR and found["no_preference_learned"].status == CLEAR


def test_pairs_swapped_at_random_teach_no_preference_and_the_advice_says_to_check_them():
    fixture = recorded("dpo-no-preference")
    found = final(fixture)["no_preference_learned"]
    assert found.status == FOUND and found.step == 40
    assert "validation preference accuracy 38% (step 5) -> 25% over the last 2 evaluations" in found.evidence
    assert "38% -> 38% of 16 pairs never trained on" in found.evidence
    # The training pairs were fitted, the validation ones not: a data problem, not a learning rate too low.
    assert found.advice.startswith("Check the pairs") and "raise the learning rate" not in found.advice.lower()
    assert first_found_live(fixture)["no_preference_learned"] == 15


def test_the_default_model_taught_verbose_replies_pads_its_answers_past_them():
    fixture = recorded("dpo-length")  # SmolLM2-135M-Instruct, learning rate 5e-5, chosen replies of ~27 words
    found = final(fixture)
    longer = found["length_exploitation"]
    assert longer.status == FOUND
    assert "held-out answers 8 -> 37 words on average; the chosen replies 27 words" in longer.evidence
    assert "the chosen reply is the longer in 8 of 8 pairs" in longer.evidence
    assert "use dpo_loss sigmoid_norm instead of sigmoid" in longer.advice.lower()
    assert "balance the pairs' lengths" in longer.advice and PREFERENCE in longer.degraded
    assert found["margin_runaway"].status == FOUND and "94.4 nats" in found["margin_runaway"].evidence


# ----------------------------------------------------------------- only for preference runs


def test_a_supervised_run_reads_as_before_live_and_at_the_end():
    sft = recorded("fail-overfit")
    assert sft["config"].get("objective", "sft") == "sft"
    assert [d["name"] for d in findings.live(sft["history"], sft["config"])] == list(LIVE)
    assert [d["name"] for d in findings.final(sft["history"], sft["config"], sft["comparison"])] == list(DETECTORS)
    dpo = recorded("dpo-healthy")
    assert [d["name"] for d in findings.live(dpo["history"], dpo["config"])] == [*LIVE, *PREFERENCE_LIVE]
    kto = {**DPO, "objective": "kto"}
    assert [d["name"] for d in findings.final([], kto)] == [*DETECTORS, *PREFERENCE_DETECTORS]


# ----------------------------------------------------------------- hand-built edges


def step(n: int, margin: float, chosen: float = 0.0, accuracy: float = 1.0, lr: float = 5e-6) -> dict:
    return {"step": n, "loss": 0.5, "learning_rate": lr, "rewards/margins": margin, "rewards/chosen": chosen,
            "rewards/rejected": chosen - margin, "rewards/accuracies": accuracy, "logps/chosen": -20.0 + 10 * chosen}


def test_too_few_steps_are_not_enough_to_judge_a_trend():
    history = [step(n, 0.1 * n) for n in range(1, 8)]
    for detector in (likelihood_displacement, margin_runaway):
        finding = detector(RunFacts(history, DPO))
        assert finding.status == UNKNOWN and "7 training step(s) logged" in finding.evidence


def test_a_chosen_reply_that_falls_while_nothing_is_learned_is_not_displacement():
    history = [step(n, 0.001 * n, chosen=-0.05 * n) for n in range(1, 21)]
    finding = likelihood_displacement(RunFacts(history, DPO))
    assert finding.status == CLEAR and "the margin 0.003 -> 0.018 (+0.2 nats of log-ratio)" in finding.evidence


def test_a_runaway_is_read_in_nats_whatever_the_beta():
    history = [step(n, 0.05 * n) for n in range(1, 21)]  # the margin reaches 1.0
    small_beta = margin_runaway(RunFacts(history, {**DPO, "beta": 0.01}))
    assert small_beta.status == FOUND and f"past {DRIFT_NATS:g} nats from step 11" in small_beta.evidence
    assert margin_runaway(RunFacts(history, DPO)).status == CLEAR  # 10 nats at beta 0.1
    fell_back = [step(n, 0.05 * n if n <= 15 else 0.75 - 0.1 * (n - 15)) for n in range(1, 21)]
    assert margin_runaway(RunFacts(fell_back, {**DPO, "beta": 0.01})).status == CLEAR


def test_a_kto_run_is_advised_on_its_own_settings():
    history = [step(n, 0.1 * n, chosen=-0.02 * n) for n in range(1, 21)]
    finding = likelihood_displacement(RunFacts(history, {**DPO, "objective": "kto", "desirable_weight": 1.0}))
    assert finding.status == FOUND and finding.advice.startswith("Raise desirable_weight from 1 to 1.3")
    assert "dpo_loss" not in finding.advice


def rows(before_words: int, after_words: int, chosen_words: int, rejected_words: int, n: int = 6) -> list[dict]:
    text = lambda count: " ".join(["word"] * count)  # noqa: E731
    return [{"prompt": f"q{i}", "reference": text(chosen_words), "rejected": text(rejected_words),
             "before": text(before_words), "after": text(after_words)} for i in range(n)]


def test_answers_that_outgrow_the_chosen_replies_are_length_exploitation():
    finding = length_exploitation(RunFacts([], DPO, rows(20, 45, 25, 8)))
    assert finding.status == FOUND and "held-out answers 20 -> 45 words on average" in finding.evidence
    assert "the chosen reply is the longer in 6 of 6 pairs" in finding.evidence
    assert "use dpo_loss sigmoid_norm instead of sigmoid" in finding.advice.lower()
    assert "balance the pairs' lengths" in finding.advice and PREFERENCE in finding.degraded
    assert length_exploitation(RunFacts([], DPO, rows(44, 45, 25, 8))).status == CLEAR  # long before training too
    assert length_exploitation(RunFacts([], DPO, rows(20, 45, 40, 8))).status == CLEAR  # as long as the chosen
    assert length_exploitation(RunFacts([], DPO, rows(20, 45, 25, 8, n=3))).status == UNKNOWN


def unseen(before: list[int], after: list[int]) -> dict:
    from types import SimpleNamespace

    from finetune.data.render import EncodedPair

    side = {1: (-1.0, -2.0), 0: (-2.0, -1.0)}
    pairs = [("held_out", SimpleNamespace(messages=()), EncodedPair([i], [1], [2])) for i in range(len(before))]
    return preference_record(pairs, [side[b] for b in before], [side[a] for a in after])


def evaluations(accuracies: list[float]) -> list[dict]:
    history = [step(n, 0.5, accuracy=0.5) for n in range(1, 41)]
    return history + [{"step": 10 * (i + 1), "eval_loss": 0.6, "eval_rewards/accuracies": a}
                      for i, a in enumerate(accuracies)]


def test_no_preference_learned_reads_the_validation_accuracy_and_the_unseen_pairs():
    at_chance = no_preference_learned(RunFacts(evaluations([0.4, 0.5, 0.5, 0.55]), DPO))
    assert at_chance.status == FOUND and at_chance.step == 40
    assert at_chance.advice.startswith("Raise the learning rate from 5e-06 to 1e-05")  # nor the training pairs fitted
    # The unseen pairs measured the preference learned, with an interval: that decides.
    learned = unseen([0] * 12, [1] * 12)
    assert no_preference_learned(RunFacts(evaluations([0.4, 0.5, 0.5, 0.55]), DPO, preference=learned)).status == CLEAR
    # KTO logs no validation accuracy: the unseen pairs alone, which did not move.
    flat = no_preference_learned(RunFacts([], {**DPO, "objective": "kto"}, preference=unseen([0] * 12, [0] * 12)))
    assert flat.status == FOUND and "0% -> 0% of 12 pairs never trained on" in flat.evidence
    # Separated against the start (accuracy 100%) but no likelier than the rejected reply on its own: said, not found.
    separated = no_preference_learned(RunFacts(evaluations([1.0] * 4), DPO, preference=unseen([0] * 12, [0] * 12)))
    assert separated.status == CLEAR and "no more often the likelier per token" in separated.evidence
    nothing = no_preference_learned(RunFacts(evaluations([0.5]), DPO))
    assert nothing.status == UNKNOWN and "1 evaluation(s)" in nothing.evidence


def test_a_detector_never_crashes_on_a_damaged_record():
    broken = RunFacts([{"step": "x"}, None, {"step": 3, "rewards/margins": math.nan}], DPO,
                      comparison=[None, {"after": 3}], preference={"pairs": [None, {"before_preferred": "yes"}]})
    for detector in PREFERENCE_DETECTORS.values():
        assert detector(broken).status == UNKNOWN
