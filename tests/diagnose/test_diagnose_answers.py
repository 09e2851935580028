"""The answer detectors (mode collapse, forgetting, memorisation) on synthetic
runs: each names its failure on held-out answers, a probe or training
responses built to show it, stays clear on a healthy run, says "unknown" when
there is too little to judge, and gives advice in this run's own numbers."""

import random
import time

import pytest
from synthetic_runs import CITIES, PROBE_STEADY, TRAIN_RESPONSES, VARIED, advice, by_name, config, final, rows

from finetune.diagnose.answer_modes import GENERAL_METRIC, PROBE_METRIC
from finetune.diagnose.base import CLEAR, FOUND, UNKNOWN
from finetune.diagnose.findings import degraded
from finetune.diagnose.modes import diagnose_final
from finetune.evaluate.metrics import headline

# ----------------------------------------------------------------- mode collapse

def test_the_same_answer_to_every_prompt_is_mode_collapse():
    finding = final(comparison=rows(["I like turtles."] * 8, CITIES))["mode_collapse"]
    assert finding.status == FOUND
    assert "1 distinct answers to 8 prompts" in finding.evidence and "8 times" in finding.evidence
    assert "from 5e-05 to 2e-05" in advice(finding) and "3 -> 2" in advice(finding)
    assert set(finding.degraded) == {"all", "task"} and "8 times" in finding.degraded["task"]


def test_near_identical_answers_that_miss_their_references_are_mode_collapse():
    answers = [f"Thank you for your question, I am happy to help you today {i}" for i in range(8)]
    assert final(comparison=rows(answers, CITIES))["mode_collapse"].status == FOUND


def test_templated_answers_that_hold_their_own_reference_are_not_collapse():
    answers = [f"Thank you for your question, the city you want is {c}" for c in CITIES]
    assert final(comparison=rows(answers, CITIES))["mode_collapse"].status == CLEAR


def test_wrong_answers_in_the_references_own_template_are_not_collapse():
    template = "Your order number {} ships on day {} of March from our main warehouse in the town centre"
    references = [template.format(i, i + 1) for i in range(8)]
    answers = [template.format(i, i + 9) for i in range(8)]
    assert final(comparison=rows(answers, references))["mode_collapse"].status == CLEAR


def test_identical_references_make_identical_answers_expected():
    finding = final(comparison=rows(["Yes"] * 8, ["yes"] * 8))["mode_collapse"]
    assert finding.status == UNKNOWN and "references themselves repeat" in finding.evidence


@pytest.mark.parametrize("answers", [[None] * 8, [""] * 8, ["Paris", "Rome", "", None, None, None, None, None]])
def test_missing_answers_leave_mode_collapse_unknown(answers):
    finding = final(comparison=rows(answers, CITIES), status="stopped")["mode_collapse"]
    assert finding.status == UNKNOWN


def test_mode_collapse_stays_fast_on_500_prompts():
    references = [f"reference {i} with words {i * 3} and {i * 5}" for i in range(500)]
    rng = random.Random(0)
    words = "the a model date answer of to in year month day format is was number city river capital".split()
    answers = [" ".join(rng.choices(words, k=80)) for _ in range(500)]
    started = time.perf_counter()
    assert final(comparison=rows(answers, references))["mode_collapse"].status == CLEAR
    assert time.perf_counter() - started < 5


def test_shorter_training_advice_names_max_steps_when_it_ends_the_run():
    same = ["2000-01-11"] * 8
    found = by_name(diagnose_final([], config(max_steps=24, epochs=3), rows(same, [f"answer {i}" for i in range(8)]),
                                   None, []))["mode_collapse"]
    assert found.status == FOUND and "max_steps 24 -> 12" in found.advice and "epochs" not in found.advice


# ----------------------------------------------------------------- forgetting

def test_a_lower_general_probe_score_is_forgetting():
    probe = {**PROBE_STEADY, "after": {"contains": 0.5, "normalised": 0.2}}
    finding = final(probe=probe)["forgetting"]
    assert finding.status == FOUND
    assert "contains" in finding.evidence and "70% -> 50%" in finding.evidence and "-20 points" in finding.evidence
    assert "use lora (method lora)" in advice(finding)
    assert "from 5e-05 to 2e-05" in advice(finding) and "3 -> 2" in advice(finding)


def test_a_higher_reference_perplexity_is_forgetting():
    finding = final(probe={**PROBE_STEADY, "perplexity_after": 14.0})["forgetting"]
    assert finding.status == FOUND and "12.1 -> 14.0 (+16%)" in finding.evidence
    # What it found degraded, where: what keeps the probe's verdict from being "better".
    assert finding.degraded == {"general_probe": "reference perplexity 12.1 -> 14.0 (+16%)"}
    assert degraded([finding.to_dict()]) == {
        "general_probe": ["forgetting was found: reference perplexity 12.1 -> 14.0 (+16%)"]}


def test_forgetting_reads_the_probe_on_the_metric_its_verdict_reads():
    assert PROBE_METRIC == headline("general_probe") == "contains" and GENERAL_METRIC == headline("general")


def test_forgetting_reports_what_it_measured_when_it_does_not_fire():
    finding = final()["forgetting"]
    assert finding.status == CLEAR
    assert "contains" in finding.evidence and "70% -> 65%" in finding.evidence
    assert "perplexity 12.1 -> 12.9" in finding.evidence


def test_general_held_out_prompts_that_go_wrong_are_forgetting_without_a_probe():
    general = rows([f"It is {c}" for c in CITIES[:6]], CITIES[:6], category="general")
    for i, row in enumerate(general):
        row["before_score"] = {"exact": 0.0, "normalised": 0.0, "contains": 1.0}
        row["after_score"] = {"exact": 0.0, "normalised": 0.0, "contains": 0.0 if i < 3 else 1.0}
    finding = final(probe=None, comparison=VARIED + general)["forgetting"]
    assert finding.status == FOUND and "general held-out prompts (contains, 6): 100% -> 50%" in finding.evidence
    assert finding.degraded == {"general": "general held-out prompts (contains, 6): 100% -> 50% (-50 points)"}


def test_a_lora_run_is_not_told_to_use_lora():
    probe = {**PROBE_STEADY, "after": {"contains": 0.3}}
    finding = final(probe=probe, config=config(method="lora", learning_rate=2e-4))["forgetting"]
    assert "use lora" not in advice(finding) and "from 2e-04 to 1e-04" in advice(finding)


@pytest.mark.parametrize("probe", [
    None,
    {"prompts": 20, "before": {"contains": 0.7}, "perplexity_before": 12.1},
    {"prompts": 20, "before": {"contains": 0.7}, "after": {"contains": None}, "perplexity_before": 12.1,
     "perplexity_after": float("nan")},
], ids=["off", "after missing", "after not numbers"])
def test_forgetting_is_unknown_without_after_training_measurements(probe):
    finding = final(probe=probe)["forgetting"]
    assert finding.status == UNKNOWN
    assert ("switch on the general-capability probe" in advice(finding)) == (probe is None)


# ----------------------------------------------------------------- memorisation

def test_a_held_out_answer_copying_a_training_response_is_memorisation():
    comparison = rows(["The capital is Paris.", "The capital is Berlin.", f"  {TRAIN_RESPONSES[3]}\n",
                       "The capital is Rome."], CITIES[:4])
    finding = final(comparison=comparison)["memorisation"]
    assert finding.status == FOUND
    assert "1 of 4 held-out answers" in finding.evidence
    assert "training question 3" in finding.evidence and "Question number 2" in finding.evidence
    assert finding.degraded == {"all": "1 of 4 held-out answers copy a training response word for word",
                                "task": "1 of 4 held-out answers copy a training response word for word"}
    assert "train fewer epochs: 3 -> 2" in advice(finding)


def test_memorisation_advice_counts_duplicated_training_responses():
    comparison = rows([TRAIN_RESPONSES[0]] + CITIES[1:4], CITIES[:4])
    finding = final(comparison=comparison, train_responses=TRAIN_RESPONSES + TRAIN_RESPONSES[:2])["memorisation"]
    assert "deduplicate the training responses (2 appear more than once)" in advice(finding)


def test_a_short_common_answer_or_a_leaked_reference_is_not_memorisation():
    leaked = TRAIN_RESPONSES[5]
    # "Paris" (a training response) given where "Berlin" was wanted is a wrong answer, not a memorised one.
    comparison = rows(["Paris", "Paris", leaked, "Rome"], ["Paris", "Berlin", leaked, "Rome"])
    finding = final(comparison=comparison, train_responses=TRAIN_RESPONSES + ["Paris", "Berlin"])["memorisation"]
    assert finding.status == CLEAR


def test_memorisation_is_unknown_without_training_responses_or_answers():
    assert final(train_responses=[])["memorisation"].status == UNKNOWN
    finding = final(comparison=rows([None] * 4, CITIES[:4]), status="stopped")["memorisation"]
    assert finding.status == UNKNOWN and "stopped" in finding.evidence
