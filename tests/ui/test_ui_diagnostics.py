"""What the diagnostics look like on screen, without a server: failure-mode
badges (Train and Compare), validation perplexity, the memory line and
breakdown, and the data advice; each with filled and with empty inputs."""

import json

import pytest

gr = pytest.importorskip("gradio")

from finetune.data import dataset  # noqa: E402
from finetune.data.advice import Advice  # noqa: E402
from finetune.runs.records import write_record  # noqa: E402
from finetune.runs.run import Snapshot  # noqa: E402
from finetune.sources.files import Limits  # noqa: E402
from finetune.train import config as cfg  # noqa: E402
from ui.lab import Lab  # noqa: E402
from ui.tabs import compare_tab, params_tab, train_tab  # noqa: E402
from ui.views import badges, data_views, memory_view  # noqa: E402
from ui.views.train_views import change_key, stats_markdown, status_dict, status_markdown  # noqa: E402

OVERFITTING = {"name": "overfitting", "title": "Overfitting", "status": "found",
               "evidence": "validation loss 1.92 at step 40 is 9% above its minimum of 1.76 at step 20, while the "
                           "training loss fell from 1.70 to 1.31",
               "explanation": "The model memorises the training examples instead of learning the task.",
               "advice": "turn on early stopping with patience 2, or train 1 epoch instead of 3", "step": 40}
DIVERGENCE_CLEAR = {"name": "divergence", "title": "Divergence", "status": "clear",
                    "evidence": "the loss stayed finite; largest rise 1.2x the running median", "explanation": "x",
                    "advice": "", "step": None}
NO_LEARNING_UNKNOWN = {"name": "no_learning", "title": "Not learning", "status": "unknown",
                       "evidence": "not enough data to judge: 2 logged steps, 5 needed after warmup",
                       "explanation": "y", "advice": "", "step": None}
MEMORY = {"estimate_bytes": 1.5 * 2**30, "estimate_text": "weights  0.50 GiB  1.35e8 x 4 bytes <fp32>",
          "peak_bytes": 1.25 * 2**30, "peak_kind": "CPU resident memory growth"}


# --- badges

def test_a_found_failure_is_a_card_with_its_evidence_step_and_mitigation():
    text = badges.diagnoses_html([DIVERGENCE_CLEAR, OVERFITTING, NO_LEARNING_UNKNOWN])
    assert "1 found</b> of 3 checked" in text
    card = text[text.index("diag-card found"):text.index("diag-chips")]
    assert "Overfitting" in card and "(step 40)" in card
    assert "validation loss 1.92 at step 40 is 9% above its minimum" in card
    assert "<b>Mitigation:</b> turn on early stopping with patience 2, or train 1 epoch instead of 3" in card
    # Found first, before the quiet ones, whatever the engine's order.
    assert text.index("Overfitting") < text.index("✓ Divergence")


def test_clear_checks_are_small_green_chips_and_unknown_ones_say_not_enough_data():
    text = badges.diagnoses_html([DIVERGENCE_CLEAR, NO_LEARNING_UNKNOWN])
    assert "none found</b> of 2 checked" in text and "diag-card" not in text
    assert "<span class='diag-chip clear' data-name='divergence'" in text and "✓ Divergence</span>" in text
    assert "? Not learning: not enough data to judge</span>" in text
    assert "2 logged steps, 5 needed after warmup" in text  # the reason, under "the numbers behind these checks"
    assert "not enough data to judge: not enough data to judge" not in text


def test_no_findings_yet_says_when_they_come():
    assert "appear as training logs its first steps" in badges.diagnoses_html(())
    assert "No failure-mode checks recorded" in badges.diagnoses_html(None, final=True)
    assert badges.diagnoses_html([], waiting="soon") .count("soon") == 1


def test_run_text_is_escaped_in_badges():
    evil = dict(OVERFITTING, evidence="<script>alert(1)</script>", advice="use <b>LoRA</b>", title="<i>x</i>")
    text = badges.diagnoses_html([evil, dict(DIVERGENCE_CLEAR, evidence="'><img src=x onerror=alert(1)>")])
    assert "<script>" not in text and "&lt;script&gt;" in text and "use &lt;b&gt;LoRA&lt;/b&gt;" in text
    assert "<img" not in text and "<i>x</i>" not in text


# --- validation perplexity

HISTORY = ({"step": 10, "loss": 2.5, "time": 0.0}, {"step": 20, "eval_loss": 2.3, "time": 1.0},
           {"step": 40, "loss": 1.9, "time": 2.0}, {"step": 40, "eval_loss": 2.0, "time": 3.0})


def test_validation_perplexity_is_exp_of_the_latest_validation_loss_in_stats_and_status():
    snap = Snapshot(run_id="r", status="training", message="training", step=40, max_steps=80, history=HISTORY,
                    model="tiny")
    assert badges.validation_perplexity(HISTORY) == (40, pytest.approx(7.389, abs=1e-3))
    assert "validation perplexity 7.39 (step 40)" in status_markdown(snap)
    stats = stats_markdown(snap)
    assert "val. perplexity</div><div class='stat-value'>7.39<" in stats
    assert "val. loss</div><div class='stat-value'>2.0000<" in stats
    assert status_dict(snap)["validation_perplexity"] == pytest.approx(7.389, abs=1e-3)


def test_no_validation_yet_or_a_blown_up_loss_never_breaks_the_numbers():
    early = Snapshot(run_id="r", status="training", history=HISTORY[:1])
    assert "perplexity" not in status_markdown(early)
    assert "val. perplexity</div><div class='stat-value'>–<" in stats_markdown(early)
    assert status_dict(early)["validation_perplexity"] is None
    assert badges.perplexity_text([{"step": 3, "eval_loss": 1e6}]) == "validation perplexity ∞ (step 3)"
    assert badges.perplexity_text([{"step": 3, "eval_loss": float("nan")}]) == ""
    assert badges.perplexity_text([{"step": 3, "eval_loss": float("inf")}]) == "validation perplexity ∞ (step 3)"
    assert badges.format_perplexity(12345.6) == "12,346"


# --- the Train tab: badges follow the snapshot, redrawn when the findings change

def test_train_badges_redraw_when_the_findings_change_without_new_history():
    live = Snapshot(run_id="r", status="training", history=HISTORY, diagnoses=(DIVERGENCE_CLEAR,))
    found = Snapshot(run_id="r", status="training", history=HISTORY, diagnoses=(DIVERGENCE_CLEAR, OVERFITTING))
    assert change_key(live, False) != change_key(found, False)
    assert "live checks" in train_tab.train_diagnoses(found) and "Mitigation" in train_tab.train_diagnoses(found)
    ended = Snapshot(run_id="r", status="completed", history=HISTORY, diagnoses=(OVERFITTING,))
    assert "final checks" in train_tab.train_diagnoses(ended)
    assert "first steps" in train_tab.train_diagnoses(None)
    assert status_dict(ended)["diagnoses"][0]["advice"] == OVERFITTING["advice"]


# --- memory line

def test_memory_line_shows_the_estimate_beside_the_measured_peak():
    line = badges.memory_line(MEMORY)
    assert "estimated peak <b>1.50 GiB</b>" in line and "measured peak <b>1.25 GiB</b>" in line
    assert "(CPU resident memory growth)" in line and "the estimate is 20% above the measurement" in line
    folded = badges.memory_html(MEMORY)
    assert "&lt;fp32&gt;" in folded and "<fp32>" not in folded  # the arithmetic, escaped


def test_memory_line_with_only_an_estimate_or_nothing():
    assert "measured peak not known yet" in badges.memory_line({"estimate_bytes": 2**30})
    assert "no estimate or measurement recorded" in badges.memory_line({})
    assert "no estimate or measurement recorded" in badges.memory_line(None)
    assert "below the measurement" in badges.memory_line({"estimate_bytes": 2**30, "peak_bytes": 2 * 2**30})
    assert "details" not in badges.memory_html({})


# --- the Compare tab, from a run folder the engine left (summary.json with diagnoses and memory)

def finished_run(root, run_id="done", summary_extra=None):
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "tiny", "learning_rate": 5e-5}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in HISTORY))
    summary = {"status": "completed", "steps": 40, **(summary_extra or {})}
    (folder / "summary.json").write_text(json.dumps(summary))
    write_record(folder, status="completed", created_at=1.0)
    return folder


@pytest.fixture
def lab(tmp_path, tiny_model_dir):
    return Lab(str(tiny_model_dir), tmp_path / "runs", None, Limits())


def compare_views(lab, run_id):
    with gr.Blocks():
        tab = compare_tab.build(lab, 32)
    shown = compare_tab.show_run(lab, tab, lab.scheduler.owner(""), run_id)
    return shown[tab.diagnoses], shown[tab.memory]


def test_compare_shows_a_finished_runs_final_badges_and_memory(lab):
    finished_run(lab.output_root, summary_extra={"diagnoses": [OVERFITTING, DIVERGENCE_CLEAR], "memory": MEMORY})
    diagnoses, memory = compare_views(lab, "done")
    assert "final checks" in diagnoses and "(step 40)" in diagnoses and "patience 2" in diagnoses
    assert "measured peak <b>1.25 GiB</b>" in memory


def test_compare_of_a_run_without_diagnostics_says_so(lab):
    finished_run(lab.output_root, "old")
    diagnoses, memory = compare_views(lab, "old")
    assert "No failure-mode checks recorded" in diagnoses and "no estimate or measurement" in memory
    assert "appear here for the run you pick" in compare_tab.run_diagnoses(None)
    running = Snapshot(run_id="r", status="training", diagnoses=(DIVERGENCE_CLEAR,))
    assert "live checks" in compare_tab.run_diagnoses(running)


# --- the Hyperparameters tab's memory breakdown

def settings(**changes):
    values = {f.name: f.default for f in cfg.fields() if f.name not in ("model", "data")}
    return {**values, **changes}


def test_the_memory_breakdown_shows_each_term_with_its_arithmetic(lab, tiny_model_dir):
    shapes = memory_view.Shapes(lambda spec: params_tab.model_shape(lab, spec))
    text = params_tab.memory_estimate(shapes, str(tiny_model_dir), **settings(batch_size=2, max_length=128,
                                                                               gradient_checkpointing="off"))
    assert "Estimated peak memory:" in text and "<pre class='lab-breakdown'>" in text
    for term in ("weights", "gradients", "optimizer", "activations", "total", "<b>Assumptions:</b><ul"):
        assert term in text, term
    assert "batch 2 x 128 tokens" in text and " x 4 bytes" in text  # the arithmetic, not only the result
    bigger = params_tab.memory_estimate(shapes, str(tiny_model_dir), **settings(batch_size=8, max_length=128,
                                                                                 gradient_checkpointing="off"))
    assert bigger != text
    auto = params_tab.memory_estimate(shapes, "", **settings(gradient_checkpointing="auto"))  # "": the default
    assert "turns it on when this peak exceeds 85%" in auto


def test_a_model_whose_shape_cannot_be_read_gets_one_line(lab, tmp_path):
    shapes = memory_view.Shapes(lambda spec: params_tab.model_shape(lab, spec))
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    text = params_tab.memory_estimate(shapes, str(empty), **settings())
    assert text.startswith("<div class='lab-warning'>Cannot estimate memory: the shape of the model")
    assert "config.json" in text and "Traceback" not in text and text.count("\n") == 0
    refused = params_tab.memory_estimate(shapes, "default", **settings(batch_size=0))
    assert "Cannot estimate memory:" in refused and "Traceback" not in refused


def test_shapes_are_read_once_per_model():
    calls = []

    def read(spec):
        calls.append(spec)
        raise OSError("no network\nsecond line")

    shapes = memory_view.Shapes(read)
    for _ in range(3):
        with pytest.raises(ValueError, match="^no network$"):
            shapes.get("some/model")
    assert calls == ["some/model"]
    with pytest.raises(ValueError):
        shapes.get("some/model", retry=True)  # the button asks again: read again
    assert calls == ["some/model"] * 2


# --- the Data tab's advice

def test_data_advice_lists_each_finding_with_counts_examples_and_advice():
    findings = [Advice("prompt_diversity", "Prompt diversity: 0.85 distinct 3-grams", 40, (), "Varied.", "info"),
                Advice("duplicates", "3 examples repeat another example's prompt exactly", 3,
                       ("line 4: What is <b>2+2</b>? (x2)",), "Keep one copy.")]
    text = data_views.advice_html(findings)
    assert "1 warning, 1 note" in text
    assert text.index("repeat another") < text.index("Prompt diversity")  # warnings first
    assert "(warning; count 3)" in text and "Keep one copy." in text
    assert "line 4: What is &lt;b&gt;2+2&lt;/b&gt;? (x2)" in text and "<b>2+2</b>" not in text
    assert "nothing to flag" in data_views.advice_html([]) and data_views.advice_html(None) == ""


def test_data_advice_runs_on_the_prepared_split(write, tiny_tokenizer):
    rows = [{"instruction": "What is 2+2?", "output": "4"}] * 3 + [
        {"instruction": f"Name the number after {i}.", "output": f"The number after {i} is {i + 1}."}
        for i in range(30)]
    path = write("small.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    config = cfg.build({"data": str(path), "held_out": 0, "validation_fraction": 0.0}).config
    prepared = dataset.prepare(config, tiny_tokenizer)
    text = data_views.advice_view(prepared)
    assert "Only 33 training examples" in text and "100+" in text
    assert "2 examples repeat another example&#x27;s prompt exactly" in text and "What is 2+2? (x3)" in text
