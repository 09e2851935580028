"""One story per run: the verdicts of a run never contradict each other or its
diagnoses, on any surface (summary.json, the command line, the Compare tab, the
Lessons answer, the model card), for every recorded run and every comparison
of runs; and the quick-demo run (`python -m finetune train --preset quick-demo
--benchmarks true --judge base`, recorded in tests/fixtures/quick-demo.json)
reads as one story: its answers changed form on the probe, which forgot, and
its judge, which favoured a position, says it could not judge."""

import json

import pytest
from conftest import DEMO_DATA, ROOT
from fake_runs import make_run
from one_story import contradictions, surfaces, sweep_contradictions, write_run

from finetune.runs.records import list_runs

pytest.importorskip("gradio")  # the Compare tab is one of the surfaces

FIXTURES = ROOT / "tests" / "fixtures"
RECORDED = sorted(path.stem for path in FIXTURES.glob("*.json"))


def demo_training_responses() -> list[str]:
    rows = [json.loads(line) for line in DEMO_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["output"] for r in rows if r.get("split") == "train"]


def recorded_run(name: str, root):
    fixture = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return write_run(fixture, root / name, demo_training_responses())


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_run_tells_one_story(name, tmp_path):
    folder = recorded_run(name, tmp_path)
    found = contradictions(folder)
    assert not found, "\n".join(found)


def test_the_quick_demo_run_reads_as_one_story_everywhere(tmp_path):
    folder = recorded_run("quick-demo", tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    forgetting = next(d for d in summary["diagnoses"] if d["name"] == "forgetting")
    assert forgetting["status"] == "found" and "general probe (contains, 45 prompts): 60% -> 22%" in \
        forgetting["evidence"]
    probe = summary["changes"]["general_probe"]
    # Measured alone, normalised match went up and "contains" down, each beyond the noise...
    assert probe["normalised"]["verdict"] == "better" and probe["contains"]["verdict"] == "worse"
    # ...and the probe's one reading says what happened: a change of form and a loss of knowledge.
    assert probe["reading"]["verdict"] == "changed form"
    assert probe["reading"]["sentence"].startswith(
        "the answers changed form on the general-knowledge probe: shorter answers (")
    assert "that match the reference exactly more often (2% → 20%), but contain the right answer less often " \
           "(60% → 22%: -38 points, 95% interval -53 to -19)" in probe["reading"]["sentence"]
    shown = surfaces(folder)
    said = shown["command line"]
    assert "general_probe (45 prompts), contains 60% → 22%: the answers changed form" in said
    assert "better on the general-knowledge probe" not in said
    assert probe["reading"]["sentence"] in shown["model card"]
    # The judge agreed with itself on no prompt: it measured nothing, and says so.
    judge = summary["scores"]["judge"]
    assert judge["position_consistency"] == 0.0
    line = next(line for line in said.splitlines() if line.startswith("judge: "))
    assert line.startswith("judge: the judge could not judge (no verdict): it picked the same answer in both orders "
                           "on 0 of the ")
    assert "interval" not in line and "no measurable change on this task" not in said
    for surface in ("Compare tab", "model card"):
        assert "the judge could not judge (no verdict)" in shown[surface], surface
    assert "50% to 50%" not in "".join(shown.values())


def test_the_check_finds_what_the_lab_used_to_say(tmp_path):
    """The quick-demo run as the lab summarised it before: the probe read on normalised
    match alone ("better", beside the forgetting diagnosis), and a judge's verdict
    from a win rate of 50% in an interval of zero width."""
    folder = recorded_run("quick-demo", tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    probe = summary["changes"]["general_probe"]
    summary["changes"]["general_probe"] = {"normalised": probe["normalised"],
                                           "reading": {"metric": "normalised", "sentence": "better on the probe"}}
    summary["scores"]["judge"].update(position_consistency=0.6, verdict="no clear preference")
    (folder / "summary.json").write_text(json.dumps(summary))
    found = "\n".join(contradictions(folder))
    assert "general_probe reads 'better on the general-knowledge probe: +18 points" in found
    assert "while forgetting was found: general probe (contains, 45 prompts): 60% -> 22%" in found
    assert "Forgetting reads general_probe on contains (60% -> 22%), its verdict on normalised (2% → 20%)" in found
    assert "summary.json gives the judge the verdict 'no clear preference', its reader 'no verdict'" in found


def test_runs_compared_tell_one_story(tmp_path):
    """The sweep fixtures (three learning rates whose curves are known) and the recorded
    runs compared together: the verdict calls overfit exactly the runs whose own
    overfitting check found it (quick-demo's validation loss rose 16% from a
    minimum of 0.033: 0.006 nats, noise, as its diagnosis says)."""
    sweep = tmp_path / "sweep"
    for i, lr in enumerate((1e-5, 2e-5, 5e-5)):
        make_run(sweep, f"lr{i}", lr, created_at=i + 1.0)
    found = sweep_contradictions(list_runs(sweep))
    assert not found, "\n".join(found)

    recorded = tmp_path / "recorded"
    for name in RECORDED:
        recorded_run(name, recorded)
    runs = list_runs(recorded)
    found = sweep_contradictions(runs)
    assert not found, "\n".join(found)
