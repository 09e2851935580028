"""The failure-mode detectors on synthetic runs: each names its failure (with
the step) on a run built to show it, stays clear on a healthy run, says
"unknown" when there is too little to judge, and gives advice in this run's
own numbers."""

import math
import random
import time

import pytest

from finetune.config import TrainConfig
from finetune.diagnose import (
    CLEAR, DETECTORS, FOUND, LIVE, UNKNOWN, Finding, diagnose_final, diagnose_live,
)

CONFIG = TrainConfig(learning_rate=5e-5, method="full", epochs=3, warmup_ratio=0.05, weight_decay=0.0,
                     max_grad_norm=1.0, early_stopping_patience=0, validation_fraction=0.05).to_dict()
STEPS_PER_EPOCH = 20


def config(**changes):
    return {**CONFIG, **changes}


def train_step(step, loss, warmup=3, lr=5e-5):
    return {"step": step, "epoch": round(step / STEPS_PER_EPOCH, 3), "loss": loss,
            "learning_rate": lr * min(1.0, step / warmup), "grad_norm": 1.2, "tokens_per_second": 250.0,
            "time": 1764389000.0 + step}


def eval_step(step, loss):
    return {"step": step, "epoch": round(step / STEPS_PER_EPOCH, 3), "eval_loss": loss,
            "time": 1764389000.5 + step}


def wobble(step):
    """Deterministic batch noise of about 2%."""
    return 1 + 0.02 * math.sin(step * 1.7)


def history(train_loss, eval_loss=None, steps=60, eval_every=6, **step_options):
    """A logged history: a training loss every step, a validation loss every `eval_every` steps."""
    logged = []
    for step in range(1, steps + 1):
        logged.append(train_step(step, train_loss(step), **step_options))
        if eval_loss and step % eval_every == 0:
            logged.append(eval_step(step, eval_loss(step)))
    return logged


def healthy(steps=60):
    return history(lambda s: (2.0 * math.exp(-s / 25) + 0.6) * wobble(s),
                   lambda s: 2.1 * math.exp(-s / 25) + 0.7, steps=steps)


def advice(finding):
    """The advice without its sentence capital, to look for a phrase in it."""
    return finding.advice.lower()


def by_name(findings):
    return {f.name: f for f in findings}


def rows(answers, references, category="task"):
    return [{"prompt": f"Question number {i}?", "reference": ref, "category": category, "task": "t",
             "before": "I am not sure.", "after": answer,
             "before_score": None, "after_score": None} for i, (answer, ref) in enumerate(zip(answers, references))]


CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Prague", "Oslo"]
VARIED = rows([f"The capital is {c}." for c in CITIES], CITIES)
TRAIN_RESPONSES = [f"The answer to training question {i} is {i * 7} apples and pears." for i in range(20)]
PROBE_STEADY = {"prompts": 20, "before": {"exact": 0.1, "normalised": 0.2, "contains": 0.7},
                "after": {"exact": 0.1, "normalised": 0.2, "contains": 0.65},
                "perplexity_before": 12.1, "perplexity_after": 12.9}


def final(**changes):
    record = dict(history=healthy(), config=CONFIG, comparison=VARIED, probe=PROBE_STEADY,
                  train_responses=TRAIN_RESPONSES)
    record.update(changes)
    return by_name(diagnose_final(**record))


# ----------------------------------------------------------------- the whole record

def test_a_healthy_run_is_clear_on_every_detector_and_says_what_it_looked_at():
    findings = final()
    assert list(findings) == list(DETECTORS)
    for finding in findings.values():
        assert finding.status == CLEAR, finding
        assert any(ch.isdigit() for ch in finding.evidence), finding
        assert finding.advice == ""


def test_live_diagnosis_runs_only_the_detectors_that_read_the_history():
    assert [f.name for f in diagnose_live(healthy(), CONFIG)] == list(LIVE) == \
        ["divergence", "overfitting", "no_learning"]


@pytest.mark.parametrize("logged", [[], [train_step(1, 2.0)], None], ids=["empty", "one step", "none"])
def test_too_little_data_is_unknown_with_a_reason_never_a_crash(logged):
    findings = diagnose_final(logged, CONFIG, [], None, [], status="stopped")
    assert [f.status for f in findings] == [UNKNOWN] * len(DETECTORS)
    assert all(f.evidence.startswith("not enough data to judge: ") and len(f.evidence) > 30 for f in findings)


def test_a_finding_is_plain_data_for_json():
    finding = diagnose_live(healthy(), CONFIG)[0]
    assert isinstance(finding, Finding)
    assert finding.to_dict() == {"name": "divergence", "title": finding.title, "status": "clear",
                                 "evidence": finding.evidence, "explanation": finding.explanation,
                                 "advice": "", "step": None}


def test_a_config_object_is_read_like_its_dict():
    found = by_name(diagnose_live([train_step(1, 2.0)], TrainConfig(learning_rate=5e-5), error=
                                  "the training loss became nan at step 2; the run was halted."))
    assert "from 5e-05 to 2e-05" in found["divergence"].advice


# ----------------------------------------------------------------- divergence

def test_a_nan_loss_from_the_error_text_is_divergence_at_its_step():
    error = ("the training loss became nan at step 4; the run was halted. Lower the learning rate or check the "
             "data for broken examples")
    finding = by_name(diagnose_live(history(lambda s: 2.0, steps=3), CONFIG, error=error))["divergence"]
    assert (finding.status, finding.step) == (FOUND, 4)
    assert "nan at step 4" in finding.evidence
    assert "lower the learning rate from 5e-05 to 2e-05" in advice(finding)
    assert "raise warmup_ratio from 0.05 to 0.1" in advice(finding)
    assert "keep gradient clipping on (max_grad_norm 1)" in advice(finding)


def test_a_nonfinite_step_alone_is_divergence():
    finding = by_name(diagnose_live([], CONFIG, nonfinite_step=7))["divergence"]
    assert (finding.status, finding.step) == (FOUND, 7)
    assert "step 7" in finding.evidence


def test_a_nonfinite_validation_loss_is_named_as_such():
    error = "the validation loss became inf at step 9; the run was halted."
    finding = by_name(diagnose_live(healthy(steps=8), CONFIG, error=error))["divergence"]
    assert (finding.status, finding.step) == (FOUND, 9)
    assert finding.evidence.startswith("the validation loss became inf at step 9")


def test_an_error_about_something_else_is_not_divergence():
    finding = by_name(diagnose_live(healthy(), CONFIG, error="CUDA out of memory"))["divergence"]
    assert finding.status == CLEAR


def test_a_loss_spike_is_divergence_at_the_spike():
    logged = history(lambda s: 6.0 if s == 30 else 1.5 * wobble(s))
    finding = by_name(diagnose_live(logged, CONFIG))["divergence"]
    assert (finding.status, finding.step) == (FOUND, 30)
    assert "6.000 at step 30" in finding.evidence and "4.0x" in finding.evidence


def test_a_jump_of_a_near_zero_loss_is_noise_not_a_spike():
    logged = history(lambda s: 0.2 if s == 30 else 0.05 * wobble(s))
    assert by_name(diagnose_live(logged, CONFIG))["divergence"].status == CLEAR


def test_a_rising_loss_after_warmup_is_divergence_from_its_lowest_point():
    logged = history(lambda s: (2.0 - 0.05 * s if s <= 20 else 1.0 + 0.04 * (s - 20)) * wobble(s))
    finding = by_name(diagnose_live(logged, CONFIG))["divergence"]
    assert finding.status == FOUND
    assert 18 <= finding.step <= 22
    assert "rising" in finding.evidence and f"step {finding.step}" in finding.evidence


@pytest.mark.parametrize("rate, shown, lower", [(3e-5, "3e-05", "2e-05"), (2e-4, "2e-04", "1e-04"),
                                               (1e-6, "1e-06", "5e-07")])
def test_divergence_advice_steps_the_learning_rate_down_from_this_run(rate, shown, lower):
    finding = by_name(diagnose_live([], config(learning_rate=rate), nonfinite_step=2))["divergence"]
    assert f"from {shown} to {lower}" in advice(finding)


def test_divergence_advice_turns_clipping_back_on_when_it_was_off():
    finding = by_name(diagnose_live([], config(max_grad_norm=0.0, warmup_ratio=0.1), nonfinite_step=2))["divergence"]
    assert "turn gradient clipping back on" in advice(finding)
    assert "warmup" not in advice(finding)  # already at the top of its range


# ----------------------------------------------------------------- overfitting

def overfit_history():
    """Validation loss bottoms out at step 24 (epoch 1.2) and climbs 20% while training loss keeps falling."""
    return history(lambda s: 2.0 * math.exp(-s / 15) + 0.1,
                   lambda s: 1.0 + 0.02 * abs(s - 24), steps=60)


def test_a_rising_validation_loss_is_overfitting_from_its_minimum():
    finding = by_name(diagnose_live(overfit_history(), CONFIG))["overfitting"]
    assert (finding.status, finding.step) == (FOUND, 24)
    assert "1.000 at step 24" in finding.evidence and "1.720 at step 60" in finding.evidence
    assert "turn on early stopping with patience 2" in advice(finding)
    assert "train fewer epochs: 3 -> 2" in advice(finding)
    assert "raise weight_decay from 0 to 0.1" in advice(finding)


def test_overfitting_in_the_first_epoch_advises_one_epoch_and_not_early_stopping_already_on():
    logged = history(lambda s: 2.0 * math.exp(-s / 15) + 0.1, lambda s: 1.0 + 0.02 * abs(s - 12))
    finding = by_name(diagnose_live(logged, config(early_stopping_patience=3)))["overfitting"]
    assert finding.step == 12
    assert "train fewer epochs: 3 -> 1" in advice(finding)
    assert "early stopping" not in advice(finding)


def test_overfitting_with_max_steps_advises_stopping_at_the_onset():
    finding = by_name(diagnose_live(overfit_history(), config(max_steps=60)))["overfitting"]
    assert "max_steps 60 -> 24" in advice(finding)


def test_a_validation_loss_pulling_away_from_the_training_loss_is_overfitting():
    # Validation still creeps down (no rise over its minimum) while training falls to a third.
    logged = history(lambda s: 2.0 - 0.025 * s, lambda s: 2.0 - 0.002 * s)
    finding = by_name(diagnose_live(logged, CONFIG))["overfitting"]
    assert finding.status == FOUND
    # validation / training loss: 1.06x at step 6, 1.37x at step 24, 1.52x at step 30
    assert finding.step == 30
    assert f"from step {finding.step}" in finding.evidence


def test_validation_and_training_rising_together_is_not_overfitting():
    logged = history(lambda s: 1.0 + 0.02 * s, lambda s: 1.1 + 0.02 * s)
    assert by_name(diagnose_live(logged, CONFIG))["overfitting"].status == CLEAR


def test_without_a_validation_set_overfitting_is_unknown_and_says_how_to_see_it():
    finding = by_name(diagnose_live(history(lambda s: 2.0 - 0.01 * s), config(validation_fraction=0.0)))[
        "overfitting"]
    assert finding.status == UNKNOWN
    assert "validation_fraction is 0" in finding.evidence
    assert "validation_fraction" in advice(finding)


def test_before_the_first_evaluation_overfitting_is_unknown_without_advice():
    finding = by_name(diagnose_live(history(lambda s: 2.0 - 0.01 * s, steps=5), CONFIG))["overfitting"]
    assert finding.status == UNKNOWN and "yet" in finding.evidence and finding.advice == ""


def test_one_evaluation_is_not_enough_to_see_a_rise():
    logged = history(lambda s: 2.0 - 0.01 * s, lambda s: 1.9, steps=10, eval_every=6)
    finding = by_name(diagnose_live(logged, CONFIG))["overfitting"]
    assert finding.status == UNKNOWN and "step 6" in finding.evidence


# ----------------------------------------------------------------- no learning

def flat_history(loss=2.0, steps=40):
    return history(lambda s: loss * wobble(s), steps=steps)


def test_a_flat_loss_over_the_first_half_is_not_learning():
    finding = by_name(diagnose_live(flat_history(), config(learning_rate=1e-5)))["no_learning"]
    assert (finding.status, finding.step) == (FOUND, 20)
    assert "step 1 to step 20" in finding.evidence
    assert "raise the learning rate from 1e-05 to 2e-05" in advice(finding)
    assert "response tokens" in advice(finding)


def test_no_learning_advice_for_lora_lifts_the_rate_into_the_lora_range():
    finding = by_name(diagnose_live(flat_history(), config(method="lora", learning_rate=1e-5)))["no_learning"]
    assert "from 1e-05 to 5e-05" in advice(finding) and "lora" in advice(finding)


def test_no_learning_advice_does_not_push_full_fine_tuning_past_its_range():
    finding = by_name(diagnose_live(flat_history(), CONFIG))["no_learning"]
    assert "already the top of the recommended range" in advice(finding)


def test_a_run_still_in_warmup_is_not_judged_flat():
    logged = history(lambda s: 2.0 * wobble(s), steps=30, warmup=30)
    assert by_name(diagnose_live(logged, CONFIG))["no_learning"].status == UNKNOWN


def test_a_flat_loss_near_zero_is_a_model_that_already_knows_the_data():
    finding = by_name(diagnose_live(flat_history(loss=0.05), CONFIG))["no_learning"]
    assert finding.status == CLEAR and "already knows" in finding.evidence


# ----------------------------------------------------------------- mode collapse

def test_the_same_answer_to_every_prompt_is_mode_collapse():
    finding = final(comparison=rows(["I like turtles."] * 8, CITIES))["mode_collapse"]
    assert finding.status == FOUND
    assert "1 distinct answers to 8 prompts" in finding.evidence and "8 times" in finding.evidence
    assert "from 5e-05 to 2e-05" in advice(finding) and "3 -> 2" in advice(finding)


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


def test_a_loss_that_climbs_through_a_long_warmup_is_divergence():
    # 20 steps, warmup over the first 10: too few after warmup for a trend, and the
    # climb 1.0 -> 8 is steady enough that no step is 3x the median before it.
    climbing = history(lambda s: min(1.0 + 0.7 * s, 8.0) * wobble(s), steps=20, warmup=10)
    found = by_name(diagnose_live(climbing, config(warmup_ratio=0.5)))["divergence"]
    assert found.status == FOUND and "of the run" in found.evidence
    # The same short, mostly-warmup run with a falling loss stays clear.
    falling = history(lambda s: (2.0 * math.exp(-s / 8) + 0.6) * wobble(s), steps=20, warmup=10)
    assert by_name(diagnose_live(falling, config(warmup_ratio=0.5)))["divergence"].status == CLEAR


def test_a_climbing_loss_is_divergence_not_no_learning():
    climbing = history(lambda s: (1.0 + 0.3 * s) * wobble(s), steps=30, warmup=2)
    found = by_name(diagnose_live(climbing, config(learning_rate=5e-3)))
    assert found["divergence"].status == FOUND
    assert found["no_learning"].status == CLEAR and "rising, not flat" in found["no_learning"].evidence


def test_no_learning_advice_says_when_the_rate_is_already_above_the_range():
    flat = history(lambda s: 2.0 * wobble(s), steps=40, warmup=2)
    found = by_name(diagnose_live(flat, config(learning_rate=5e-3)))["no_learning"]
    assert found.status == FOUND and "already above the recommended range" in advice(found)


def test_overfitting_needs_a_rise_and_a_gap_in_nats_not_only_in_ratio():
    # quick-demo's end: validation wobbling 0.033-0.043 at a training loss near 0.005.
    tiny = history(lambda s: 0.005 * wobble(s), lambda s: 0.033 if s <= 36 else 0.039 + 0.004 * math.sin(s),
                   steps=60)
    assert by_name(diagnose_live(tiny, config()))["overfitting"].status == CLEAR
    # The same shape 0.3 nats higher is a real rise.
    real = history(lambda s: 0.3 * math.exp(-s / 20) * wobble(s) + 0.005,
                   lambda s: 0.33 if s <= 36 else 0.45, steps=60)
    assert by_name(diagnose_live(real, config()))["overfitting"].status == FOUND


def test_shorter_training_advice_names_max_steps_when_it_ends_the_run():
    same = ["2000-01-11"] * 8
    found = by_name(diagnose_final([], config(max_steps=24, epochs=3), rows(same, [f"answer {i}" for i in range(8)]),
                                   None, []))["mode_collapse"]
    assert found.status == FOUND and "max_steps 24 -> 12" in found.advice and "epochs" not in found.advice
