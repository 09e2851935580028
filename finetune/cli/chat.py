"""python -m finetune chat RUN_DIR: talk with a finished run's trained model (or
its base with --base, or its GGUF through llama.cpp with --gguf), each answer
streamed to the terminal as it is generated, rendered with the run's own
template and system prompt.

From a terminal it asks for each message (Ctrl-C stops an answer, Ctrl-D ends).
Otherwise it reads one message per line and prints each answer followed by a
newline, so a script can drive it; the conversation goes on from line to line,
and a line `/clear` starts a new one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator, TextIO

from ..evaluate.sampling import SAMPLING_HELP, Sampling

CLEAR = "/clear"


def add_parser(commands) -> None:
    chat = commands.add_parser("chat", help="talk with a finished run's model, its answers streamed",
                               description=__doc__.split("\n\n")[0].replace("%", "%%"))
    chat.add_argument("run_dir", help="the run's folder (runs/<id>)")
    chat.add_argument("--which", choices=("best", "final"), default="best",
                      help="the model at the lowest validation loss, or the final one (default: best when the run "
                           "kept one)")
    who = chat.add_mutually_exclusive_group()
    who.add_argument("--base", action="store_true", help="the run's base model instead of the trained one")
    who.add_argument("--gguf", action="store_true", help="the trained model exported as an f16 GGUF file, "
                                                         "answered by llama.cpp (needs llama-cpp-python)")
    chat.add_argument("--template", choices=("auto", "chat", "alpaca"), default=None,
                      help="how the conversation is rendered (default: the run's)")
    chat.add_argument("--system-prompt", default=None, help="the system prompt (default: the run's)")
    defaults = Sampling()
    chat.add_argument("--greedy", action="store_true", help=SAMPLING_HELP["greedy"])
    for name, kind in (("temperature", float), ("top_p", float), ("max_new_tokens", int),
                       ("repetition_penalty", float), ("seed", int)):
        chat.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=getattr(defaults, name),
                          help=f"{SAMPLING_HELP[name]} (default: {getattr(defaults, name)})".replace("%", "%%"))


def run_chat(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    from ..evaluate.conversation import Conversation
    from ..export.chat_models import load_gguf, load_transformers, run_models
    from ..sources.models import ModelSource

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    folder = Path(args.run_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a run folder")
    sampling = Sampling(args.greedy, args.temperature, args.top_p, args.max_new_tokens, args.repetition_penalty,
                        args.seed).checked()
    found = run_models(folder, args.which)
    if found.which != args.which:
        print(f"{folder.name} kept no best checkpoint: chatting with its final model", file=sys.stderr)
    answerer = "gguf" if args.gguf else "base" if args.base else "trained"
    print(f"loading the {answerer} model...", file=sys.stderr)
    if answerer == "gguf":
        loaded = load_gguf(found.trained)
    else:
        source = found.base if args.base else ModelSource("local", str(found.trained), f"{folder.name} ({found.which})")
        loaded = load_transformers(source)
    template = args.template or found.template
    system = found.system_prompt if args.system_prompt is None else args.system_prompt
    interactive = stdin.isatty()
    if interactive:
        print(f"chatting with {loaded.label}: {sampling.describe()}; Ctrl-C stops an answer, Ctrl-D ends, "
              f"{CLEAR} starts again", file=sys.stderr)
    conversation = Conversation("local", folder.name, found.which)
    try:
        for message in _messages(stdin, interactive):
            if message.strip() == CLEAR:
                conversation = Conversation("local", folder.name, found.which)
                continue
            if not message.strip():
                continue
            turn = conversation.start_turn(message, system)
            turn.answers[answerer] = _answer(loaded, conversation.ask(turn, answerer), template, sampling,
                                             stdout, f"{answerer}> " if interactive else "")
    finally:
        loaded.close()
    return 0


def _messages(stdin: TextIO, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            try:
                yield input("you> ")
            except EOFError:
                print(file=sys.stderr)
                return
            continue
        line = stdin.readline()
        if not line:
            return
        yield line.rstrip("\n")


def _answer(loaded, messages: list[dict], template: str, sampling: Sampling, stdout: TextIO, prefix: str) -> str:
    """Stream one answer to `stdout` as it grows; the answer, stripped, for the conversation."""
    stdout.write(prefix)
    shown = ""
    try:
        for text in loaded.answer(messages, template, sampling):
            text = text.lstrip()  # a model's leading newlines would print as blank lines
            stdout.write(text[len(shown):])
            stdout.flush()
            shown = text
    except KeyboardInterrupt:  # Ctrl-C: this answer stops here (the stream lets the model go)
        stdout.write(" [stopped]")
    stdout.write("\n")
    stdout.flush()
    return shown.strip()
