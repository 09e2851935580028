"""`python -m finetune export --format ...` and `push`: every refusal is one
`error:` line and exit status 2, and an offline push leaves its folder ready."""

import json
import shutil

import pytest

from finetune.cli.main import main


@pytest.fixture
def run_dir(tmp_path, tiny_model_dir):
    folder = tmp_path / "run-1"
    shutil.copytree(tiny_model_dir, folder / "model")
    (folder / "config.json").write_text(json.dumps({"model": "default", "data": "demo.jsonl", "method": "full"}))
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    return folder


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_export_as_gguf_prints_where_and_how_big(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "gguf-q8_0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["output"].endswith("finetuned-run-1-gguf-q8_0.zip") and printed["bytes"] > 0


@pytest.mark.parametrize("argv, says", [
    (["export", "{run}", "--format", "adapter"], "only LoRA and QLoRA runs"),
    (["push", "{run}", "--repo", "no-slash", "--token", "hf_x"], "must be USER/NAME"),
    (["push", "{run}", "--repo", "me/model", "--token", "hf_x"], "ready in run-1/hub"),
    (["push", "{run}/nothing", "--repo", "me/model"], "is not a run folder"),
])
def test_refusals_are_one_error_line(run_dir, capsys, argv, says):
    assert main([a.replace("{run}", str(run_dir)) for a in argv]) == 2
    line = _error(capsys)
    assert line.startswith("error: ") and says in line
