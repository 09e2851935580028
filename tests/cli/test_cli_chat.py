"""`python -m finetune chat RUN_DIR`, driven as a script drives it: a message
per line on stdin (not a terminal), each answer printed on stdout; the
conversation goes on from line to line until `/clear`; --base talks with the
base model; refusals are one `error:` line."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT
from tiny_runs import RECORDS, run_to_end, tiny_config

from finetune.cli.main import main
from finetune.evaluate.conversation import Conversation
from finetune.evaluate.sampling import Sampling
from finetune.export.chat_models import load_transformers, run_models
from finetune.sources.models import ModelSource

QUESTION = "Convert the date to ISO 8601: March 7, 2021"
SAMPLING = ["--seed", "3", "--temperature", "1.0", "--max-new-tokens", "12"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("chat-run")
    (folder / "dates.json").write_text(json.dumps(RECORDS))
    run_to_end(tiny_config(tiny_model_dir, folder / "dates.json", max_steps=3, general_probe=False,
                           system_prompt="Answer with the date only."), folder / "run")
    return folder / "run"


def chat(run_dir, lines, *flags) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finetune", "chat", str(run_dir), *SAMPLING, *flags],
                          input="".join(line + "\n" for line in lines), capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def expected_answers(run_dir, lines, base=False) -> list[str]:
    """The same conversation through the engine in this process: what the command must print."""
    found = run_models(run_dir, "best")
    loaded = load_transformers(found.base if base else ModelSource("local", str(found.trained), "trained"))
    sampling = Sampling(temperature=1.0, max_new_tokens=12, seed=3)
    conversation, answers = Conversation("local", run_dir.name, found.which), []
    for line in lines:
        if line == "/clear":
            conversation = Conversation("local", run_dir.name, found.which)
            continue
        turn = conversation.start_turn(line, found.system_prompt)
        side = "base" if base else "trained"
        *_, text = loaded.answer(conversation.ask(turn, side), found.template, sampling)
        turn.answers[side] = text.strip()
        answers.append(text.strip())
    return answers


def test_one_message_per_line_prints_each_answer_and_the_conversation_goes_on(run_dir):
    lines = [QUESTION, "And March 8?", "/clear", QUESTION]
    done = chat(run_dir, lines)
    assert done.returncode == 0, done.stderr
    answers = expected_answers(run_dir, lines)
    assert done.stdout == "".join(answer + "\n" for answer in answers)
    assert answers[0] == answers[2]  # after /clear the same question starts the same conversation again
    assert "loading the trained model" in done.stderr


def test_base_talks_with_the_runs_base_model(run_dir):
    done = chat(run_dir, [QUESTION], "--base")
    assert done.returncode == 0, done.stderr
    base = expected_answers(run_dir, [QUESTION], base=True)
    assert done.stdout == base[0] + "\n" and base != expected_answers(run_dir, [QUESTION])


@pytest.mark.parametrize("argv, says", [
    (["chat", "{run}/nothing"], "is not a run folder"),
    (["chat", "{run}", "--temperature", "nan"], "temperature: nan is not a finite number"),
    (["chat", "{run}", "--top-p", "0"], "top_p: 0 is outside 0.05..1"),
])
def test_refusals_are_one_error_line(run_dir, capsys, argv, says):
    assert main([a.replace("{run}", str(run_dir)) for a in argv]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: ") and says in line
