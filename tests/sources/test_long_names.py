"""A model or dataset name no file system could hold (a part over 255 bytes) is
refused in one line before the file system is asked (which would raise "File name
too long"), in the engine, the command line and the scheduler; ids that are not
text get a line too."""

import subprocess
import sys

import pytest
from conftest import DEMO_DATA, ROOT

from finetune.experiments.scheduler import Scheduler
from finetune.runs.records import NoSuchRun
from finetune.sources import models
from finetune.sources.files import DataError, load_table, looks_like_path
from finetune.train import config as cfg

LONG = "x" * 300


def test_an_over_long_name_is_refused_before_the_file_system_is_asked():
    assert not looks_like_path(LONG)  # no OSError from Path.exists()
    with pytest.raises(DataError, match="not a dataset file or a hub dataset id: a part of 300 bytes is longer"):
        load_table(LONG)
    with pytest.raises(models.ModelError, match="not a model folder or a hub id: a part of 300 bytes"):
        models.resolve(f"someone/{LONG}")
    with pytest.raises(cfg.ConfigError, match="model: a part of 300 bytes is longer than a file name or a hub id"):
        cfg.build({"model": LONG})
    assert cfg.build({"model": "someone/" + "y" * 90}).config.model  # long, but a name a hub may hold


@pytest.mark.parametrize("args", [["train", "--model", LONG, "--data", str(DEMO_DATA)], ["inspect", LONG]])
def test_the_command_line_says_so_in_one_line(args):
    result = subprocess.run([sys.executable, "-m", "finetune", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "a part of 300 bytes is longer than a file name or a hub id" in lines[0]


def test_ids_and_keys_that_are_not_text_are_refused_by_name(tmp_path):
    scheduler = Scheduler(tmp_path, public=True)
    with pytest.raises(ValueError, match="owner_key: int is not text"):
        scheduler.owner(12345)
    for run_id in (12345, ["a"], None):
        with pytest.raises(NoSuchRun):
            scheduler.live(run_id, scheduler.owner("k" * 20))
        with pytest.raises(NoSuchRun):
            scheduler.record(run_id, scheduler.owner("k" * 20))
