"""Is a change bigger than the noise: the paired bootstrap and the exact test
on cases whose answer is known."""

import json
import random

import pytest

from finetune.evaluate.significance import (
    BETTER,
    NO_VERDICT,
    TOO_FEW,
    UNCHANGED,
    WORSE,
    Difference,
    paired_difference,
)


def test_identical_models_give_an_interval_around_zero():
    scores = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1]
    found = paired_difference(scores, scores)
    assert found.change == 0 and -0.1 < found.low <= 0 <= found.high < 0.1 and found.p_value == 1.0
    assert found.verdict == UNCHANGED
    assert found.sentence().startswith("no measurable change on this task: +0 points, 95% interval -")



def test_a_bootstrap_whose_differences_are_all_equal_says_no_verdict_and_why():
    smooth = [0.2, 0.7, 0.4, 0.9, 0.1]  # scores between 0 and 1: the bootstrap, with nothing to resample
    same = paired_difference(smooth, smooth)
    assert same.verdict == NO_VERDICT and (same.low, same.high) == (0, 0)
    assert same.sentence() == ("no verdict on this task: all 5 prompts scored the same before and after, so there is "
                               "no spread to tell a change from the noise (a bootstrap interval has no width)")
    assert same.numbers() == "+0 points, no interval (no spread to measure the noise with)"
    shifted = paired_difference(smooth, [s + 0.1 for s in smooth])
    assert shifted.verdict == NO_VERDICT, "a zero-width interval above zero is no proof of a gain"
    assert "every one of the 5 prompts changed by the same +10 points" in shifted.sentence()
    stored = Difference.from_dict(json.loads(json.dumps(shifted.to_dict("on the task prompts"))))
    assert stored.verdict == NO_VERDICT and stored.sentence("on the task prompts").startswith(
        "no verdict on the task prompts: every one")
    assert paired_difference([0.2, 0.3], [0.5, 0.3]).verdict != NO_VERDICT  # some spread: an interval


def test_changes_that_cancel_out_are_no_measurable_change():
    before = [1, 0] * 15
    after = [0, 1] * 15  # every prompt changed, as many gained as lost
    found = paired_difference(before, after)
    assert found.change == 0 and found.low < 0 < found.high and found.verdict == UNCHANGED
    assert found.p_value == 1.0


def test_a_known_shift_is_found_inside_its_interval():
    rng = random.Random(7)
    before = [rng.random() * 0.6 for _ in range(40)]
    after = [b + 0.2 + (0.05 if i % 2 else -0.05) for i, b in enumerate(before)]  # +0.2 give or take 0.05
    found = paired_difference(before, after)
    assert found.low < 0.2 < found.high and found.low > 0.15 and found.high < 0.25
    assert found.verdict == BETTER and found.method == "paired bootstrap"
    assert found.p_value is None  # not right/wrong scores: no exact test
    assert found.sentence().startswith("better on this task: +20 points, 95% interval +")


def test_a_known_shift_of_right_answers_is_found_inside_its_interval():
    before = [1] * 10 + [0] * 30
    after = [1] * 10 + [1] * 16 + [0] * 14  # 25% -> 65%: +40 points
    found = paired_difference(before, after)
    assert found.low < 0.4 < found.high and found.low > 0
    assert found.verdict == BETTER and found.method.startswith("Newcombe")


def test_a_drop_is_called_worse():
    found = paired_difference([1] * 12 + [0] * 8, [0] * 10 + [1] * 2 + [0] * 8)
    assert found.verdict == WORSE and found.high < 0
    assert found.sentence().startswith("worse on this task: -50 points")


def test_the_exact_test_counts_only_the_prompts_that_changed():
    before = [0] * 10 + [1] * 30
    after = [1] * 10 + [1] * 30  # ten gains, no losses
    assert paired_difference(before, after).p_value == pytest.approx(2 / 2 ** 10)


def test_few_prompts_and_a_small_gain_are_not_called_better():
    # The example: 40% -> 55% on 20 prompts is within the noise.
    before = [1] * 8 + [0] * 12
    after = [1] * 8 + [1] * 5 + [0] * 5 + [0, 0]
    after[0:2] = [0, 0]  # two lost, five gained: 55%
    found = paired_difference(before, after)
    assert round(found.after, 2) == 0.55 and found.verdict == UNCHANGED and found.low < 0 < found.high


def test_the_interval_covers_the_true_change_about_95_times_in_100_and_rarely_cries_wolf():
    rng = random.Random(3)
    covered = called_better_without_a_change = 0
    for trial in range(300):
        before = [float(rng.random() < 0.4) for _ in range(30)]
        # true change: P(gain) = 0.6 * 0.25 = 0.15, P(loss) = 0.4 * 0.1 = 0.04 -> +0.11
        after = [float((b or rng.random() < 0.25) and not (b and rng.random() < 0.1)) for b in before]
        covered += paired_difference(before, after).low <= 0.11 <= paired_difference(before, after).high
        # no true change: gains and losses equally likely
        same = [float(rng.random() < 0.4) if rng.random() < 0.2 else b for b in before]
        called_better_without_a_change += paired_difference(before, same).verdict != UNCHANGED
    assert 0.88 <= covered / 300 <= 0.99
    assert called_better_without_a_change / 300 <= 0.07


def test_the_same_scores_give_the_same_interval_and_json():
    a, b = [0, 1, 1, 0, 1, 0, 0, 1], [1, 1, 1, 0, 1, 1, 0, 1]
    assert paired_difference(a, b) == paired_difference(a, b)
    assert json.loads(json.dumps(paired_difference(a, b).to_dict()))["verdict"] == UNCHANGED


def test_no_or_one_prompt_says_too_few_and_mismatched_lists_are_refused():
    assert paired_difference([], []).verdict == TOO_FEW
    assert json.dumps(paired_difference([], []).to_dict(), allow_nan=False)  # no NaN in a JSON file
    assert paired_difference([0], [1]).sentence() == "too few prompts to tell on this task (1)"
    with pytest.raises(ValueError, match="same items"):
        paired_difference([0, 1], [1])


def test_a_difference_read_back_from_json_says_the_same_and_names_its_prompts():
    found = paired_difference([0, 0, 1, 0] * 5, [1, 1, 1, 0] * 5)
    stored = json.loads(json.dumps(found.to_dict(where="on the task prompts")))
    assert stored["sentence"].startswith("better on the task prompts: +50 points, 95% interval +25 to +66")
    again = found.from_dict(stored)
    assert again == found and again.numbers() == "+50 points, 95% interval +25 to +66"
    empty = paired_difference([], []).to_dict()
    assert found.from_dict(json.loads(json.dumps(empty))).verdict == TOO_FEW


@pytest.mark.parametrize("damaged", [None, [], {}, {"n": "20"}, {"n": 20, "change": "big", "low": 0, "high": 1},
                                     {"n": 20, "before": 0.1, "after": 0.2, "change": None, "low": 0, "high": 1}])
def test_a_damaged_stored_difference_reads_as_unknown_never_a_crash(damaged):
    assert paired_difference([0, 1], [1, 1]).from_dict(damaged) is None


def test_right_or_wrong_scores_need_the_interval_and_the_exact_test_to_agree():
    # Seven lost, one gained of 100: Newcombe's interval is just clear of zero, the exact test is not (p = 0.07).
    before = [1] * 7 + [0] * 1 + [1] * 40 + [0] * 52
    after = [0] * 7 + [1] * 1 + [1] * 40 + [0] * 52
    found = paired_difference(before, after)
    assert found.high < 0 and found.p_value > 0.05
    assert found.verdict == UNCHANGED and found.sentence().startswith("no measurable change on this task: -6 points")
