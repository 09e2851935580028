"""Lessons: the bundled lesson files parse and point at presets and tabs that
exist; a bad file is refused naming itself; each lesson's button sets its
preset, data and tab; each question is answered from the student's own runs
(fake run folders, no training), and says what to do when there are none."""

import json

import pytest

from finetune.data.dataset import HeldOutPrompt
from finetune.evaluate.metrics import comparison_rows, score_changes, summarise_scores
from finetune.experiments import compare as experiments
from finetune.experiments import lessons
from finetune.experiments.lessons import LessonError, load_lessons, parse_lesson
from finetune.runs.records import list_runs, write_record
from finetune.runs.sweep_records import write_sweep
from finetune.sources.files import Limits
from finetune.train import config as cfg
from finetune.train.config import TrainConfig
from finetune.train.presets import DEMO_DATA, PRESETS

gr = pytest.importorskip("gradio")

from ui import app as ui_app  # noqa: E402
from ui.lab import ASSETS, Lab  # noqa: E402
from ui.tabs import lessons_tab  # noqa: E402

FAIL_PRESETS = ("fail-diverge", "fail-overfit", "fail-collapse", "fail-forget")  # added by the diagnostics work
SECRET = "lesson-secret-7b1"


@pytest.fixture(scope="module")
def bundled():
    return {lesson.answer: lesson for lesson in load_lessons(ASSETS / "lessons", ui_app.TAB_IDS)}


# --------------------------------------------------------------------------- the files


def test_the_bundled_lessons_parse_in_order_and_name_real_presets_and_tabs(bundled):
    found = load_lessons(ASSETS / "lessons", ui_app.TAB_IDS)
    assert [lesson.answer for lesson in found] == ["memory", "before_after", "sweep", "diagnoses", "preference"]
    for lesson in found:
        assert lesson.title and lesson.explanation and lesson.question and lesson.look_at
        assert lesson.tab in ui_app.TAB_IDS
        # A fail-* preset may not exist yet (built in parallel): its button then says so.
        assert lessons.missing_presets(lesson, PRESETS) == [p for p in lesson.presets
                                                                 if p in FAIL_PRESETS and p not in PRESETS]
    assert bundled["sweep"].presets == ("lr-sweep-demo",) and bundled["sweep"].tab == "experiments"
    assert bundled["diagnoses"].presets == FAIL_PRESETS


@pytest.mark.parametrize("text, says", [
    ("title: x\n", "must start with a '---' line"),
    ("---\ntitle: x\ntab: train\nanswer: sweep\n", "no closing '---'"),
    ("---\ntitle: x\ntab: train\n---\nBody.\n## Question\nQ?\n", "lacks answer"),
    ("---\ntitle: x\ntab: train\nanswer: vibes\n---\nBody.\n## Question\nQ?\n", "answer 'vibes' is not one of"),
    ("---\ntitle: x\ntab: nowhere\nanswer: sweep\n---\nBody.\n## Question\nQ?\n", "tab 'nowhere'"),
    ("---\ntitle: x\ntab: train\nanswer: sweep\ncolour: red\n---\nBody.\n## Question\nQ?\n", "unknown key 'colour'"),
    ("---\ntitle: x\ntab: train\nanswer: sweep\n---\nBody only.\n", "add a '## Question' section"),
])
def test_a_bad_lesson_file_is_refused_naming_the_file_and_the_problem(tmp_path, text, says):
    path = tmp_path / "05-mine.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LessonError) as err:
        load_lessons(tmp_path, ui_app.TAB_IDS)
    assert "05-mine.md" in str(err.value) and says in str(err.value)


def test_an_instructor_can_add_a_lesson_without_python(tmp_path):
    (tmp_path / "10-lora.md").write_text(
        "---\ntitle: LoRA\npresets: lora\ntab: params\nanswer: before_after\n---\nAdapters are small.\n\n"
        "## What to look at\n- the trained weights\n\n## Question?\nDid LoRA help?\n", encoding="utf-8")
    lesson = parse_lesson(tmp_path / "10-lora.md", ui_app.TAB_IDS)
    assert (lesson.title, lesson.presets, lesson.question) == ("LoRA", ("lora",), "Did LoRA help?")
    assert lesson.button == "Load this lesson's settings"


def test_a_broken_lesson_file_shows_on_the_tab_instead_of_stopping_the_app(tmp_path):
    (tmp_path / "01-bad.md").write_text("no front matter", encoding="utf-8")
    found, problem = lessons_tab.read_lessons(tmp_path, ui_app.TAB_IDS)
    assert found == [] and "01-bad.md" in problem


# --------------------------------------------------------------------------- the button


@pytest.fixture
def lab(tmp_path):
    return Lab("default", tmp_path / "runs", None, Limits())


@pytest.fixture
def targets():
    with gr.Blocks():
        settings = {f.name: gr.Textbox() for f in cfg.fields() if f.name != "data"}
        to = lessons_tab.Targets(settings, gr.Dropdown(), gr.Checkbox(), gr.Radio(), gr.Dropdown(), gr.Tabs())
    return to


def current_values():
    return {f.name: f.default for f in cfg.fields() if f.name not in ("data", *lessons_tab.fields.SOURCE_FIELDS)}


def test_the_sweep_lesson_button_loads_its_preset_and_data_and_opens_experiments(lab, bundled, targets):
    updates = lessons_tab.button_updates(lab, bundled["sweep"], None, current_values(), targets)
    preset = PRESETS["lr-sweep-demo"]
    for name in ("learning_rate", "epochs", "eval_steps", "max_length", "max_new_tokens"):
        assert updates[targets.settings[name]]["value"] == preset[name], name
    assert updates[targets.preset]["value"] == "lr-sweep-demo" and updates[targets.allow]["value"] is False
    assert updates[targets.source]["value"] == "bundled" and updates[targets.bundled]["value"] == "demo/demo.jsonl"
    assert updates[targets.settings["format"]]["value"] == "auto"  # an earlier column mapping cannot break it
    assert updates[targets.tabs].selected == "experiments"


def test_the_before_after_lesson_loads_the_quick_demo_and_opens_train(lab, bundled, targets):
    updates = lessons_tab.button_updates(lab, bundled["before_after"], None, current_values(), targets)
    assert updates[targets.settings["learning_rate"]]["value"] == PRESETS["quick-demo"]["learning_rate"]
    assert updates[targets.settings["epochs"]]["value"] == PRESETS["quick-demo"]["epochs"]
    assert updates[targets.tabs].selected == "train"


def test_a_failure_preset_loads_when_it_exists_and_says_so_clearly_when_it_does_not(lab, bundled, targets,
                                                                                     monkeypatch):
    lesson = bundled["diagnoses"]
    monkeypatch.delitem(PRESETS, "fail-collapse", raising=False)
    with pytest.raises(gr.Error) as err:
        lessons_tab.button_updates(lab, lesson, "fail-collapse", current_values(), targets)
    assert "no preset 'fail-collapse' yet" in err.value.message
    # An out-of-range preset (as the fail-* ones are on purpose) turns the allow switch on.
    monkeypatch.setitem(PRESETS, "fail-diverge", {"data": DEMO_DATA, "learning_rate": 5e-3, "epochs": 1})
    updates = lessons_tab.button_updates(lab, lesson, "fail-diverge", current_values(), targets)
    assert updates[targets.settings["learning_rate"]]["value"] == 5e-3
    assert updates[targets.allow]["value"] is True and updates[targets.tabs].selected == "train"
    with pytest.raises(gr.Error):  # not this lesson's preset
        lessons_tab.button_updates(lab, lesson, "classic", current_values(), targets)


# --------------------------------------------------------------------------- the answers


def make_run(root, run_id, *, created_at, status="completed", scores=None, diagnoses=None, memory=None,
             history=(), sweep=None, label=None, lr=2e-5):
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainConfig(learning_rate=lr).to_dict()))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / "summary.json").write_text(json.dumps({"status": status, "scores": scores or {},
                                                     "diagnoses": diagnoses or [], "memory": memory or {}}))
    write_record(folder, status=status, created_at=created_at, sweep=sweep, label=label)
    return folder


def test_before_after_answer_reads_the_students_latest_scored_run(tmp_path):
    assert "No finished run" in lessons.before_after_answer([])
    make_run(tmp_path, "old", created_at=1, scores={"all": {"prompts": 10, "before_exact": 0.5, "after_exact": 0.5}})
    make_run(tmp_path, "new", created_at=2, scores={"all": {
        "prompts": 10, "before_exact": 0.0, "after_exact": 0.9, "before_normalised": 0.1, "after_normalised": 0.9}})
    make_run(tmp_path, "going", created_at=3, status="training")
    text = lessons.before_after_answer(list_runs(tmp_path))
    assert "0% before → 90% after" in text and "10 held-out prompts" in text and "`new`" in text
    assert "still waiting or training" in text


def scored_run(root, run_id, created_at, before_right, after_right, prompts=20, with_changes=True):
    """A finished run whose task prompts were answered right `before_right` times
    before and `after_right` times after; summary.json's changes only when `with_changes`."""
    held = [HeldOutPrompt(f"p{i}", f"Convert date {i}", f"2021-03-{i + 1:02d}", "task") for i in range(prompts)]
    rows = comparison_rows(held, [p.reference if i < before_right else "?" for i, p in enumerate(held)],
                           [p.reference if i < after_right else "?" for i, p in enumerate(held)])
    folder = make_run(root, run_id, created_at=created_at, scores=summarise_scores(rows))
    (folder / "comparison.json").write_text(json.dumps(rows))
    if with_changes:
        summary = json.loads((folder / "summary.json").read_text())
        (folder / "summary.json").write_text(json.dumps({**summary, "changes": score_changes(rows)}))
    return folder


def test_the_before_after_lesson_asks_whether_the_improvement_beats_the_noise(tmp_path, bundled):
    assert "bigger than the noise" in bundled["before_after"].question
    scored_run(tmp_path, "clear", 1, before_right=0, after_right=16)
    text = lessons.before_after_answer(list_runs(tmp_path))
    assert "exact match **0% before → 80% after**" in text and "**Bigger than the noise?**" in text
    assert "- task (20 prompts), normalised 0% → 80%: better on the task prompts: +80 points, 95% interval +5" in text
    assert "Yes: the interval leaves out zero" in text
    # A newer run, written before summaries had changes: its comparison rows answer.
    scored_run(tmp_path, "luck", 2, before_right=8, after_right=11, with_changes=False)
    text = lessons.before_after_answer(list_runs(tmp_path))
    assert "`luck`" in text and "no measurable change on the task prompts: +15 points, 95% interval " in text
    assert "Not measurably: the interval includes zero, so with 20 prompts this change could be luck" in text


def test_sweep_answer_is_the_verdict_of_the_newest_sweep_once_all_its_runs_end(tmp_path):
    assert "No sweep yet" in lessons.sweep_answer([], experiments.verdict)
    sweep = tmp_path / "sweep-1"
    write_sweep(sweep, setting="learning_rate", values=[1e-5, 5e-5])
    for i, (lr, losses) in enumerate(((1e-5, (2.0, 1.8, 1.7)), (5e-5, (1.5, 1.2, 1.4)))):
        history = [{"step": s, "loss": 3.0 - s * lr * 1e4} for s in (5, 10, 15)]
        history += [{"step": s, "eval_loss": v} for s, v in zip((5, 10, 15), losses)]
        make_run(sweep, f"m{i}", created_at=i + 1, history=history, sweep="sweep-1", label=f"lr={lr:g}", lr=lr)
    runs = list_runs(tmp_path)
    text = lessons.sweep_answer(runs, experiments.verdict)
    assert "sweep-1" in text and "Lowest validation loss: lr=5e-05" in text and "Overfit: lr=5e-05" in text
    make_run(sweep, "m2", created_at=3, status="training", sweep="sweep-1", label="lr=2e-05")
    assert "still going: 2 of 3 runs done" in lessons.sweep_answer(list_runs(tmp_path), experiments.verdict)


def test_diagnoses_answer_names_what_was_found_or_says_to_run_a_failure_preset(tmp_path):
    assert "run a fail-* preset first" in lessons.diagnoses_answer([])
    make_run(tmp_path, "plain", created_at=1)
    assert "run a fail-* preset first" in lessons.diagnoses_answer(list_runs(tmp_path))
    make_run(tmp_path, "diverged", created_at=2, diagnoses=[
        {"name": "divergence", "title": "Divergence", "status": "FOUND",
         "evidence": "loss 9.1 at step 12, 4x the median", "explanation": "x", "advice": "lower the learning rate from 5e-3 to 5e-5", "step": 12},
        {"name": "overfitting", "title": "Overfitting", "status": "CLEAR", "evidence": "", "explanation": "x",
         "advice": ""}])
    text = lessons.diagnoses_answer(list_runs(tmp_path))
    assert "**Divergence**: loss 9.1 at step 12" in text and "lower the learning rate from 5e-3 to 5e-5" in text
    assert "Overfitting" not in text
    make_run(tmp_path, "healthy", created_at=3, diagnoses=[
        {"name": "divergence", "title": "Divergence", "status": "CLEAR", "evidence": "", "explanation": "x",
         "advice": ""}])
    assert "no failure found (checked: Divergence)" in lessons.diagnoses_answer(list_runs(tmp_path))


def test_memory_answer_puts_the_students_estimate_and_measured_peak_beside_the_tutorials(tmp_path, lab,
                                                                                         tiny_model_dir):
    tutorial = 100 * 2**30
    assert "Train a run to see its measured peak" in lessons.memory_answer([], tutorial, None)
    make_run(tmp_path, "r", created_at=1, memory={"estimate_bytes": 2 * 2**30, "peak_bytes": 2**30,
                                                  "peak_kind": "CPU resident growth"})
    text = lessons.memory_answer(list_runs(tmp_path), tutorial, ("tiny, full", 2**29))
    assert "**100.0 GiB**" in text and "**0.50 GiB** estimated peak, 200× less" in text
    assert "measured a peak of **1.00 GiB** against an estimate of 2.00 GiB (50% of it)" in text
    # From the app: the student's own settings on the tiny model, and the tutorial's 7B total.
    values = {**current_values(), "model": str(tiny_model_dir)}
    answer = lessons_tab.lesson_answer(lab, lessons_tab.lessons.parse_lesson(ASSETS / "lessons" / "01-vram.md"),
                                       "local", values)
    assert "The tutorial's 7B exercise" in answer and f"batch {values['batch_size']} x" in answer


def test_show_my_answer_reads_only_the_callers_runs_in_public_mode(tmp_path, bundled):
    public = Lab("default", tmp_path / "runs", None, Limits(), public=True)
    mine, theirs = public.scheduler.owner("a" * 24), public.scheduler.owner("b" * 24)
    for owner, run_id, after in ((mine, "mine", 0.8), (theirs, "theirs", 0.3)):
        folder = make_run(tmp_path / "runs", run_id, created_at=1 if owner == mine else 2,
                          scores={"all": {"prompts": 10, "before_exact": 0.0, "after_exact": after}})
        write_record(folder, status="completed", owner=owner, created_at=1 if owner == mine else 2)
    text = lessons_tab.lesson_answer(public, bundled["before_after"], mine, current_values())
    assert "`mine`" in text and "80% after" in text and "theirs" not in text
    assert "No finished run" in lessons_tab.lesson_answer(public, bundled["before_after"],
                                                          public.scheduler.owner("c" * 24), current_values())


def test_the_tab_ids_lessons_may_name_are_the_apps_tabs(tiny_model_dir, tmp_path):
    demo = ui_app.build_app(default_model=str(tiny_model_dir), output_root=tmp_path / "runs", public=False)
    tabs = [block.id for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert tuple(tabs) == ui_app.TAB_IDS
