"""A run folder is portable: moved to another path (another machine), the
command line, the records reader and the Experiments table read it the same,
and none of its files holds the path it was trained under."""

import json
import shutil

import pytest
from tiny import save_tiny

from finetune.cli.main import main
from finetune.experiments import compare
from finetune.experiments.scheduler import Scheduler
from finetune.runs import records
from finetune.runs.records import LOCAL_OWNER
from finetune.runs.resume import CannotResume
from finetune.runs.run import TrainingRun
from finetune.train.config import TrainConfig

ROWS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "completion": f"2021-03-{d:02d}"} for d in range(1, 29)]


def read_back(root, capsys, report):
    """What `runs`, `compare-runs` and the records reader say about the runs under root."""
    capsys.readouterr()
    assert main(["runs", "--root", str(root)]) == 0
    listed = capsys.readouterr().out
    assert main(["compare-runs", *[str(p) for p in sorted(root.iterdir())], "--report", str(report)]) == 0
    compared = capsys.readouterr().out
    found = records.list_runs(root)
    fields = [(r.id, r.status, r.owner, r.created_at, r.data_name, r.label, r.error, r.earlier_seconds) for r in found]
    return listed, compared, fields, [r.history for r in found], compare.runs_rows(found)


def test_a_moved_run_folder_reads_the_same_and_holds_no_path(tmp_path, capsys):
    machine_a = tmp_path / "machine-a"
    model = save_tiny(machine_a / "models" / "tiny")
    data = machine_a / "data" / "dates.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("\n".join(json.dumps(r) for r in ROWS))
    config = TrainConfig(model=str(model), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=1,
                         max_steps=6, eval_steps=2, save_steps=2, held_out=2, validation_fraction=0.15,
                         max_new_tokens=8, precision="fp32", general_probe=False)
    runs_a = machine_a / "runs"
    snap = TrainingRun(config, runs_a / "r1", allow_out_of_range=True).start().wait(timeout=300)
    assert snap.status == "completed", snap.error
    before = read_back(runs_a, capsys, tmp_path / "a.html")
    assert "r1" in before[0] and "dates.jsonl" in before[0]

    runs_b = tmp_path / "machine-b" / "somewhere" / "runs"
    runs_b.parent.mkdir(parents=True)
    shutil.copytree(runs_a, runs_b)
    shutil.rmtree(machine_a)  # the first machine, its data and model are gone
    assert read_back(runs_b, capsys, tmp_path / "b.html") == before

    written = [p for p in runs_b.rglob("*") if p.is_file()]
    assert any(p.name == "trainer_state.json" for p in written) and any(p.suffix == ".json" for p in written)
    for path in written:  # the JSON files and every other file the lab wrote, checkpoints included
        if path.stat().st_size < 20_000_000:
            assert str(tmp_path).encode() not in path.read_bytes(), path

    # Resuming needs the data: gone with the first machine, it is said in one line.
    folder = runs_b / "r1"
    (folder / "run.json").write_text(json.dumps({**json.loads((folder / "run.json").read_text()),
                                                 "status": "stopped"}))
    with pytest.raises(CannotResume, match=r"^the data file dates\.jsonl is gone \(it was at ../../data/dates\.jsonl "
                                           r"from the run folder; was the folder moved\?\): put it back to resume$"):
        Scheduler(runs_b).resume("r1", LOCAL_OWNER)


def test_a_runs_files_name_its_local_data_and_model_relative_to_it(tmp_path):
    """What the lab writes instead of paths: names for people, and paths from the run folder for resuming."""
    model = save_tiny(tmp_path / "models" / "tiny")
    data = tmp_path / "dates.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS))
    config = TrainConfig(model=str(model), data=str(data), learning_rate=3e-3, batch_size=4, max_steps=2,
                         held_out=0, validation_fraction=0.0, precision="fp32", general_probe=False)
    folder = tmp_path / "runs" / "r1"
    assert TrainingRun(config, folder, allow_out_of_range=True).start().wait(timeout=300).status == "completed"
    written = json.loads((folder / "config.json").read_text())
    assert (written["data"], written["model"]) == ("dates.jsonl", "../../models/tiny")
    record = json.loads((folder / "run.json").read_text())
    assert (record["data_name"], record["data_path"]) == ("dates.jsonl", "../../dates.jsonl")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["data"] == "dates.jsonl" and summary["memory"]["estimate_text"].startswith("tiny (")
    # Read back, they are paths again: to resume, or to start the same run with --config.
    assert records.read_config(folder)["model"] == str(model) and records.read_config(folder)["data"] == str(data)
    assert records.load_settings(folder / "config.json")["data"] == str(data)
