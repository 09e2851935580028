"""The loss-curve detectors (divergence, overfitting, no learning) on
synthetic runs: each names its failure (with the step) on a run built to show
it, stays clear on a healthy run, says "unknown" when there is too little to
judge, and gives advice in this run's own numbers."""

import math

import pytest
from synthetic_runs import CONFIG, advice, by_name, config, healthy, history, wobble

from finetune.diagnose.base import CLEAR, FOUND, UNKNOWN
from finetune.diagnose.modes import diagnose_live

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


def test_a_loss_that_climbs_through_a_long_warmup_is_divergence():
    # 20 steps, warmup over the first 10: too few after warmup for a trend, and the
    # climb 1.0 -> 8 is steady enough that no step is 3x the median before it.
    climbing = history(lambda s: min(1.0 + 0.7 * s, 8.0) * wobble(s), steps=20, warmup=10)
    found = by_name(diagnose_live(climbing, config(warmup_ratio=0.5)))["divergence"]
    assert found.status == FOUND and "of the run" in found.evidence
    # The same short, mostly-warmup run with a falling loss stays clear.
    falling = history(lambda s: (2.0 * math.exp(-s / 8) + 0.6) * wobble(s), steps=20, warmup=10)
    assert by_name(diagnose_live(falling, config(warmup_ratio=0.5)))["divergence"].status == CLEAR


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


def test_overfitting_needs_a_rise_and_a_gap_in_nats_not_only_in_ratio():
    # quick-demo's end: validation wobbling 0.033-0.043 at a training loss near 0.005.
    tiny = history(lambda s: 0.005 * wobble(s), lambda s: 0.033 if s <= 36 else 0.039 + 0.004 * math.sin(s),
                   steps=60)
    assert by_name(diagnose_live(tiny, config()))["overfitting"].status == CLEAR
    # The same shape 0.3 nats higher is a real rise.
    real = history(lambda s: 0.3 * math.exp(-s / 20) * wobble(s) + 0.005,
                   lambda s: 0.33 if s <= 36 else 0.45, steps=60)
    assert by_name(diagnose_live(real, config()))["overfitting"].status == FOUND


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


def test_a_climbing_loss_is_divergence_not_no_learning():
    climbing = history(lambda s: (1.0 + 0.3 * s) * wobble(s), steps=30, warmup=2)
    found = by_name(diagnose_live(climbing, config(learning_rate=5e-3)))
    assert found["divergence"].status == FOUND
    assert found["no_learning"].status == CLEAR and "rising, not flat" in found["no_learning"].evidence


def test_no_learning_advice_says_when_the_rate_is_already_above_the_range():
    flat = history(lambda s: 2.0 * wobble(s), steps=40, warmup=2)
    found = by_name(diagnose_live(flat, config(learning_rate=5e-3)))["no_learning"]
    assert found.status == FOUND and "already above the recommended range" in advice(found)
