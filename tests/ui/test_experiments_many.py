"""The Experiments tab with a class's worth of runs (issue 26): a hundred run
folders (no training), shown newest first a page at a time, filtered by status,
data, model and text, each with the disk it uses; runs picked from the table
(the page's runs offered, never a hundred checkboxes) and compared as before;
runs deleted from the tab, one training refused. No server: the tab's parts."""

import json
import time

import pytest
from fake_runs import make_run

gr = pytest.importorskip("gradio")

from finetune.runs import disk  # noqa: E402
from finetune.sources.files import Limits  # noqa: E402
from ui.lab import Lab  # noqa: E402
from ui.tabs import experiments_tab  # noqa: E402
from ui.views import runs_table  # noqa: E402
from ui.views.runs_table import Filters  # noqa: E402

RUNS = 100
STATUSES = ("completed", "completed", "failed", "stopped", "cancelled")  # every fifth run cancelled, ...
DATA = ("dates.jsonl", "demo.jsonl", "recipes.csv", "support.jsonl")
RATES = (1e-5, 2e-5, 5e-5)


def run_id(i: int) -> str:
    return f"2026120{i // 50}-{i:03d}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A hundred runs: run i created at time i (so run 99 is the newest), its status, data and
    learning rate cycling, every tenth on another model, run 7 with 2 MB of weights."""
    lab = Lab("default", tmp_path_factory.mktemp("many") / "runs", None, Limits())
    for i in range(RUNS):
        folder = make_run(lab.output_root, run_id(i), RATES[i % 3], created_at=float(1_000 + i),
                          status=STATUSES[i % 5], data_name=DATA[i % 4], message="stopped by its owner",
                          error="out of memory: lower the batch size" if STATUSES[i % 5] == "failed" else None)
        if i % 10 == 0:
            config = json.loads((folder / "config.json").read_text())
            config["resolved"]["model"] = "Qwen2.5-0.5B-Instruct"
            (folder / "config.json").write_text(json.dumps(config))
    (lab.output_root / run_id(7) / "model").mkdir()
    (lab.output_root / run_id(7) / "model" / "model.safetensors").write_bytes(b"\0" * 2 * disk.MB)
    return lab


@pytest.fixture
def tab(lab):
    with gr.Blocks():
        return experiments_tab.build(lab)


def shown(lab, tab, chosen=None, **filters) -> dict:
    return experiments_tab.views(lab, tab, "local", chosen, filters=Filters(**filters))


def runs_of(views, tab) -> list[str]:
    return list(views[tab.table]["run"])


def test_a_hundred_runs_are_shown_newest_first_a_page_at_a_time(lab, tab):
    started = time.perf_counter()
    first = shown(lab, tab)
    seconds = time.perf_counter() - started
    assert runs_of(first, tab) == [run_id(i) for i in range(99, 79, -1)]
    assert first[tab.page_info] == "Runs 1–20 of 100, newest first · page 1 of 5"
    last = shown(lab, tab, page=5)
    assert runs_of(last, tab) == [run_id(i) for i in range(19, -1, -1)] and last[tab.page] == 5
    beyond = shown(lab, tab, page=9)
    assert beyond[tab.page] == 5 and runs_of(beyond, tab) == runs_of(last, tab), "a page past the end is the last"
    print(f"the tab drawn for {RUNS} runs in {seconds:.2f} s")


@pytest.mark.parametrize("wanted, expected", [
    (dict(status="failed"), [i for i in range(RUNS) if i % 5 == 2]),
    (dict(data="recipes.csv"), [i for i in range(RUNS) if i % 4 == 2]),
    (dict(model="Qwen2.5-0.5B-Instruct"), [i for i in range(RUNS) if i % 10 == 0]),
    (dict(status="failed", data="dates.jsonl"), [i for i in range(RUNS) if i % 5 == 2 and i % 4 == 0]),
    (dict(text="OUT OF MEMORY"), [i for i in range(RUNS) if i % 5 == 2]),  # the note, in any case
    (dict(text="-042"), [42]),  # a run's id, typed in part
    (dict(text="lr=5e-05", status="stopped"), [i for i in range(RUNS) if i % 3 == 2 and i % 5 == 3]),
])
def test_the_filters_keep_exactly_the_runs_asked_for(lab, tab, wanted, expected):
    views = shown(lab, tab, **wanted)
    newest = sorted(expected, reverse=True)
    assert runs_of(views, tab) == [run_id(i) for i in newest[:20]]
    assert views[tab.page_info].startswith(f"Runs 1–{min(len(expected), 20)} of {len(expected)} (of 100)")
    assert all(row["status"] == wanted["status"] for row in views[tab.table].to_dict("records")
               if "status" in wanted)


def test_the_filters_offer_the_values_the_runs_have_with_their_counts(lab, tab):
    views = shown(lab, tab)
    assert views[tab.status]["choices"] == [("any status", ""), ("cancelled (20)", "cancelled"),
                                            ("completed (40)", "completed"), ("failed (20)", "failed"),
                                            ("stopped (20)", "stopped")]
    assert ("Qwen2.5-0.5B-Instruct (10)", "Qwen2.5-0.5B-Instruct") in views[tab.model]["choices"]
    assert [value for _, value in views[tab.data]["choices"]] == ["", *sorted(DATA)]
    nothing = shown(lab, tab, status="training")  # a filter no run matches now stays a choice, and says so
    assert ("training (0)", "training") in nothing[tab.status]["choices"]
    assert runs_of(nothing, tab) == [] and nothing[tab.page_info] == "No run of your 100 matches these filters."


def test_each_run_shows_the_disk_it_uses(lab, tab):
    rows = {row["run"]: row for row in shown(lab, tab, text="-007")[tab.table].to_dict("records")}
    assert rows[run_id(7)][runs_table.DISK_COLUMN] == pytest.approx(2.0, abs=0.1)
    columns = list(shown(lab, tab)[tab.table].columns)
    assert columns[-2:] == [runs_table.DISK_COLUMN, "note"]


def test_runs_are_picked_from_the_page_not_from_a_hundred_checkboxes(lab, tab):
    first = shown(lab, tab)
    offered = [value for _, value in first[tab.chosen]["choices"]]
    assert offered == [run_id(i) for i in range(99, 79, -1)], "the page's runs, in the table's order"
    # A click on a row adds its run; the runs picked stay offered on any page, and are compared.
    picked = runs_table.toggled(runs_table.toggled([], run_id(96)), run_id(11))  # two completed runs, pages apart
    later = shown(lab, tab, chosen=picked, page=5)
    assert later[tab.chosen]["value"] == [run_id(96), run_id(11)]
    assert {run_id(96), run_id(11)} <= {value for _, value in later[tab.chosen]["choices"]}
    assert "Lowest validation loss" in later[tab.verdict] and len(later[tab.loss].data) == 2
    assert runs_table.toggled(picked, run_id(96)) == [run_id(11)], "a second click takes it out"


def test_runs_are_deleted_from_the_tab_and_one_training_is_refused(tmp_path):
    lab = Lab("default", tmp_path / "runs", None, Limits())
    for i, status in enumerate(("completed", "completed", "training")):
        make_run(lab.output_root, f"run-{i}", 2e-5, created_at=float(i), status=status)
    with gr.Blocks():
        tab = experiments_tab.build(lab)
    question = experiments_tab.delete_question(lab, "local", ["run-0", "run-1"])
    assert question["text"].startswith("Delete **2 runs** for good (run-0, run-1)")
    deleted = experiments_tab.delete_runs(lab, "local", ["run-0"])
    assert deleted["deleted"] == ["run-0"]
    assert runs_of(experiments_tab.views(lab, tab, "local", None), tab) == ["run-2", "run-1"]
    with pytest.raises(gr.Error, match="run run-2 is training: stop it first"):
        experiments_tab.delete_runs(lab, "local", ["run-1", "run-2"])
    with pytest.raises(gr.Error, match="Choose the runs to delete first"):
        experiments_tab.delete_question(lab, "local", [])
    assert runs_of(experiments_tab.views(lab, tab, "local", None), tab) == ["run-2", "run-1"]
