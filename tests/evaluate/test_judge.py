"""The judge: each prompt is judged in both orders, so a judge that favours a
position gives ties, never wins; a judge that reads the answers gives wins and
losses where the answers differ in quality; the counts, win rate and interval
follow; and the judge a run names is resolved like its model."""

import re
from types import SimpleNamespace

import pytest
import torch

from finetune.evaluate import judge
from finetune.evaluate.judge import LOSS, TIE, WIN, Verdict, judge_answers, judge_record, judge_source
from finetune.evaluate.significance import paired_difference
from finetune.sources.models import ModelError, ModelSource

QUESTIONS = ["What is the capital of France?", "Convert March 5, 2021 to ISO 8601.", "Give a synonym for happy.",
             "What is 2 plus 2?"]
REFERENCES = ["Paris", "2021-03-05", "Joyful", "4"]
ANSWER = re.compile(r"\[Answer A\]\n(.*?)\n\n\[Answer B\]\n(.*?)\n\nWhich answer", re.S)
REFERENCE = re.compile(r"\[Reference answer\]\n(.*?)\n\n\[Answer A\]", re.S)


class FakeJudge(torch.nn.Module):
    """A judge whose next-token distribution is decided by `prefer(a, b, reference)`,
    which returns "A" or "B", read from the prompt it is given."""

    def __init__(self, tokenizer, prefer):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a device to be on
        self.tokenizer, self.prefer, self.prompts = tokenizer, prefer, []
        self.ids = dict(zip(judge.LABELS, judge.label_ids(tokenizer)))

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], len(self.tokenizer))
        for row, ids in enumerate(input_ids):
            text = self.tokenizer.decode(ids[attention_mask[row].bool()])
            self.prompts.append(text)
            a, b = ANSWER.search(text).groups()
            logits[row, -1, self.ids[self.prefer(a, b, REFERENCE.search(text).group(1))]] = 8.0
        return SimpleNamespace(logits=logits)


def always_a(a, b, reference):
    return "A"


def the_right_one(a, b, reference):
    return "A" if a == reference else "B"


def test_a_judge_that_always_picks_the_first_answer_says_it_could_not_judge(tiny_tokenizer):
    tuned, base = ["Paris", "2021-03-05", "Joyful", "4"], ["Lyon", "March 5", "Sad", "5"]
    result = judge_answers(FakeJudge(tiny_tokenizer, always_a), tiny_tokenizer, QUESTIONS, REFERENCES, base, tuned)
    assert [v.outcome for v in result.verdicts] == [TIE] * 4
    record = judge_record(result, "fake", judge_is_base=False)
    assert (record["wins"], record["ties"], record["losses"]) == (0, 4, 0)
    assert record["position_consistency"] == 0.0 and record["verdict"] == "no verdict"
    # No win rate of 50% with an interval of zero width: the judge measured nothing.
    assert record["win_rate"] is None and record["interval"] is None and record["difference"] is None
    assert record["sentence"].startswith(
        "the judge could not judge (no verdict): it picked the same answer in both orders on 0 of the 4 prompts it "
        "was asked (position consistency 0%, under the 50% needed)")
    assert "0 wins, 4 ties, 0 losses" in record["sentence"] and "interval" not in record["sentence"]


def test_a_judge_that_does_not_answer_in_the_format_could_not_judge():
    consistent = (Verdict(0.9, 0.8),) * 12 + (Verdict(0.2, 0.4),) * 4 + (Verdict(0.9, 0.3),) * 4
    record = judge_record(judge.JudgeResult(consistent, 0.1), "fake", judge_is_base=False)
    assert record["position_consistency"] == 0.8 and record["verdict"] == "no verdict"
    assert "only 10% of its next-token probability went to the labels A and B (at least 25% needed)" in \
        record["sentence"]
    assert judge_record(judge.JudgeResult(consistent, 0.9), "fake", judge_is_base=False)["verdict"] == "better"


def test_a_judge_recorded_before_the_rule_is_read_with_it():
    # What a run recorded before "could not judge" existed: a 50% win rate in a zero-width interval.
    old = {"judge": "SmolLM2 (the base model)", "prompts": 30, "wins": 0, "ties": 30, "losses": 0,
           "identical_answers": 2, "win_rate": 0.5, "interval": [0.5, 0.5], "position_consistency": 0.0,
           "label_mass": 0.49, "caveat": "c", "sentence": "no clear preference: ... 95% interval 50% to 50%",
           "difference": paired_difference([0.5] * 30, [0.5] * 30).to_dict()}
    assert judge.judge_verdict(old) == "no verdict"
    assert judge.judge_sentence(old).startswith("the judge could not judge (no verdict): it picked the same answer "
                                                "in both orders on 0 of the 28 prompts")


def test_a_judge_that_reads_the_answers_counts_wins_and_losses(tiny_tokenizer):
    tuned = ["Paris", "2021-03-05", "Sad", "4"]  # right, right, wrong, right
    base = ["Lyon", "March 5", "Joyful", "5"]  # wrong, wrong, right, wrong
    fake = FakeJudge(tiny_tokenizer, the_right_one)
    result = judge_answers(fake, tiny_tokenizer, QUESTIONS, REFERENCES, base, tuned)
    assert [v.outcome for v in result.verdicts] == [WIN, WIN, LOSS, WIN]
    assert len(fake.prompts) == 8, "every prompt is judged in both orders"
    assert all("<|im_start|>assistant\n" in p for p in fake.prompts), "in the judge's own chat template"
    record = judge_record(result, "fake", judge_is_base=False)
    assert (record["wins"], record["ties"], record["losses"]) == (3, 0, 1)
    assert record["win_rate"] == 0.75 and record["position_consistency"] == 1.0
    low, high = record["interval"]
    assert low <= 0.75 <= high
    assert record["sentence"].startswith(("the judge prefers the tuned model", "no clear preference"))
    assert "3 wins, 0 ties, 1 losses" in record["sentence"]


def test_identical_answers_are_ties_without_asking(tiny_tokenizer):
    fake = FakeJudge(tiny_tokenizer, the_right_one)
    result = judge_answers(fake, tiny_tokenizer, QUESTIONS[:2], REFERENCES[:2], ["Paris", "x"], [" Paris ", "x"])
    assert [v.outcome for v in result.verdicts] == [TIE, TIE] and fake.prompts == []
    record = judge_record(result, "fake", judge_is_base=False)
    assert record["identical_answers"] == 2 and record["position_consistency"] is None


def test_a_large_consistent_preference_is_called_better():
    record = judge_record(judge.JudgeResult((Verdict(0.9, 0.8),) * 20, 0.9), "fake", judge_is_base=False)
    assert record["difference"]["verdict"] == "better" and record["verdict"] == "better"
    # Every prompt won: the bootstrap has no spread, so the count decides (no interval of zero width).
    assert record["sentence"].startswith("the judge prefers the tuned model: tuned answer preferred 100% (ties count "
                                         "half), 95% interval 84% to 100%")
    assert record["difference"]["sentence"] == "better as judged by fake: +50 points, 95% interval +34 to +50 " \
                                              "(exact test p = 1.9e-06)", "the judge is named, not 'this task'"
    mixed = judge_record(judge.JudgeResult((Verdict(0.9, 0.8),) * 16 + (Verdict(0.9, 0.2),) * 4, 0.9), "fake",
                         judge_is_base=False)
    assert mixed["verdict"] == "better" and mixed["difference"]["sentence"].startswith("better as judged by fake: +40")


def test_the_base_model_as_judge_states_its_bias():
    record = judge_record(judge.JudgeResult((Verdict(0.6, 0.7),), 0.5), "SmolLM2 (the base model)", True)
    assert "prefer its own answers" in record["caveat"] and "a small judge is weak" in record["sentence"]
    assert record["interval"] is None and record["sentence"].startswith("too few prompts to tell")


def test_batched_preferences_match_one_at_a_time(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(
        tiny_model_dir)
    prompts = judge.judge_prompts(tokenizer, QUESTIONS, REFERENCES, ["a", "a much longer answer here", "b", "c"],
                                  ["Paris", "x", "a fairly long second answer", "d"])
    alone = judge.preferences(model, tokenizer, prompts, batch_size=1)
    batched = judge.preferences(model, tokenizer, prompts, batch_size=4)  # left-padded to the longest
    assert [p for p, _ in batched] == pytest.approx([p for p, _ in alone], abs=1e-4)
    assert all(0 < mass <= 1 for _, mass in batched)


def test_the_judge_setting_is_resolved_like_a_model(tiny_model_dir, tmp_path):
    base = ModelSource("local", str(tiny_model_dir), "tiny")
    assert judge_source("off", base) is None
    assert judge_source("base", base) is base
    named = judge_source(str(tiny_model_dir), base)
    assert named.kind == "local" and judge.is_base(named, base)
    assert judge_source("HuggingFaceTB/SmolLM2-360M-Instruct", base).kind == "hub"  # resolved, nothing fetched
    with pytest.raises(ModelError, match="not allowed"):
        judge_source(str(tiny_model_dir), base, allowed_roots=(tmp_path / "elsewhere",))
