"""The preference lesson: its file parses and names the presets it loads, and its
question ("what did preference tuning change, and what did it cost?") is answered
from the student's newest preference run and the run it continued from, with
fake run folders (no training)."""

import json

from conftest import ROOT

from finetune.data.dataset import HeldOutPrompt
from finetune.evaluate import preference
from finetune.evaluate.metrics import comparison_rows, score_changes, summarise_scores
from finetune.experiments import lessons
from finetune.runs.records import list_runs, write_record
from finetune.train.config import TrainConfig
from finetune.train.presets import PRESETS


def test_the_lesson_file_parses_and_loads_the_supervised_then_the_preference_preset():
    lesson = lessons.parse_lesson(ROOT / "assets" / "lessons" / "05-preference.md")
    assert lesson.answer == "preference" and lesson.presets == ("quick-demo", "dpo-demo")
    assert not lessons.missing_presets(lesson, PRESETS)
    assert "Continue from this run" in lesson.explanation and "alignment tax" in lesson.look_at
    assert "what did preference tuning change, and what did it cost" in lesson.question.lower()


def make_run(root, run_id, created_at, summary, parent=None, **settings):
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainConfig(**settings).to_dict()))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", **summary}))
    write_record(folder, status="completed", created_at=created_at, parent=parent)
    return folder


def preference_summary(before_right: int, after_right: int, pairs: int = 40, probe_after: int = 40) -> dict:
    """A DPO run's summary.json: `pairs` unseen pairs, the chosen reply preferred on the first
    `before_right` before and `after_right` after; the probe's 45 questions, 40 right before."""
    record = {"pairs": [{"split": "held_out", "before_preferred": i < before_right, "after_preferred": i < after_right}
                        for i in range(pairs)]}
    probe = [HeldOutPrompt(f"p{i}", f"Question {i}?", f"answer{i}", "general_probe") for i in range(45)]
    probe_rows = comparison_rows(probe, [p.reference if i < 40 else "?" for i, p in enumerate(probe)],
                                 [p.reference if i < probe_after else "?" for i, p in enumerate(probe)])
    held = [HeldOutPrompt(f"q{i}", f"Convert date {i}", f"2021-03-{i + 1:02d}", "task") for i in range(16)]
    rows = comparison_rows(held, ["Sure! It is " + h.reference for h in held], [h.reference for h in held])
    scores = {**summarise_scores(rows), "general_probe": {**summarise_scores(probe_rows)["general_probe"],
                                                          "perplexity_before": 10.6, "perplexity_after": 11.2},
              "preference": preference.scores_entry(record)}
    changes = {**score_changes(rows), "general_probe": score_changes(probe_rows)["general_probe"],
               "preference": preference.preference_changes(record, rows)}
    return {"scores": scores, "changes": changes}


def test_the_answer_reads_the_preference_run_its_parent_and_the_alignment_tax(tmp_path):
    assert "No finished preference run yet" in lessons.preference_answer([])
    make_run(tmp_path, "supervised", 1, {"scores": {}})
    make_run(tmp_path, "dpo", 2, preference_summary(12, 36, probe_after=20),
             parent={"run_id": "supervised", "which": "best"}, objective="dpo", beta=0.1, learning_rate=1e-5)
    text = lessons.preference_answer(list_runs(tmp_path))
    assert "Your preference run `dpo` (DPO, beta 0.1, loss sigmoid, learning rate 1e-05) continued from the best " \
           "checkpoint of your run `supervised`" in text
    assert "preference (40 pairs), chosen preferred 30% → 90%: better on the pairs never trained on: +60 points" in text
    assert "the run learned to prefer the chosen replies" in text
    assert "general_probe (45 prompts), contains 89% → 44%: worse" in text and "That is the cost" in text
    assert "perplexity 10.6 → 11.2" in text
    assert "task (16 prompts)" in text  # the held-out answers, scored against the chosen reply


def test_a_preference_run_without_the_measure_or_from_the_base_model_says_so(tmp_path):
    make_run(tmp_path, "old-dpo", 1, {"scores": {}}, objective="dpo")
    make_run(tmp_path, "newer-sft", 2, preference_summary(10, 30))  # supervised: not the lesson's run
    text = lessons.preference_answer(list_runs(tmp_path))
    assert "`old-dpo`" in text and "started from the base model" in text
    assert "this run has no such measure in its summary.json (`changes.preference`)" in text
    assert "did not answer the general probe" in text


def test_no_measurable_change_is_called_that(tmp_path):
    make_run(tmp_path, "dpo", 1, preference_summary(20, 22, probe_after=40), objective="dpo")
    text = lessons.preference_answer(list_runs(tmp_path))
    assert "Not measurably: the interval includes zero" in text and "No cost measurable" in text


def test_the_memory_lessons_estimate_counts_a_preference_runs_second_sequence_and_reference():
    from finetune.memory.model_shape import LLAMA2_7B

    sft = lessons.settings_estimate(TrainConfig(grad_accum=1), LLAMA2_7B, "bf16", "cuda")
    dpo = lessons.settings_estimate(TrainConfig(grad_accum=1, objective="dpo", precompute_ref=False), LLAMA2_7B,
                                    "bf16", "cuda")
    assert "full, DPO, batch 8 x 512 tokens" in dpo[0]
    assert dpo[1] > sft[1] + 4 * LLAMA2_7B.parameters  # at least the fp32 reference copy more
