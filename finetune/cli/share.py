"""python -m finetune export|push: a finished run leaving the lab, as a zip in
any export format, or as a repository on the Hugging Face Hub."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..export.formats import FORMATS, GGUF_TYPES


def add_parsers(commands) -> None:
    export = commands.add_parser("export", help="pack a finished run's model as a zip with its model card")
    export.add_argument("run_dir", help="the run's folder (runs/<id>)")
    _add_which(export)
    export.add_argument("--format", dest="fmt", choices=tuple(FORMATS), default="merged",
                        help="; ".join(f"{name}: {text}" for name, text in FORMATS.items()) + " (default: merged)")
    export.add_argument("--output", "-o", default=None, help="zip path (default: RUN_DIR/export/finetuned-<id>.zip)")
    push = commands.add_parser("push", help="push a finished run to the Hugging Face Hub, with a model card")
    push.add_argument("run_dir", help="the run's folder (runs/<id>)")
    push.add_argument("--repo", required=True, help="USER/NAME: your Hub user or organisation and a model name")
    push.add_argument("--private", action="store_true", default=None,
                      help="a private repository (the default on a Hugging Face Space)")
    push.add_argument("--public", dest="private", action="store_false", help="a public repository")
    push.add_argument("--adapter-only", action="store_true", help="the LoRA adapters alone (LoRA and QLoRA runs)")
    push.add_argument("--gguf", choices=tuple(GGUF_TYPES), default=None,
                      help="also upload the model as one GGUF file of this type, with an Ollama Modelfile")
    push.add_argument("--token", default=None, help="a Hugging Face write token (default: HF_TOKEN, then the "
                                                     "cached `hf auth login`)")
    _add_which(push)


def _add_which(parser) -> None:
    parser.add_argument("--which", choices=("best", "final"), default=None,
                        help="the model at the lowest validation loss, or the final one "
                             "(default: best when the run kept one)")


def run_export(args: argparse.Namespace) -> int:
    from ..export import checkpoint
    from ..export.bundle import export_run

    folder = _run_folder(args.run_dir)
    which = args.which or checkpoint.default_which(folder)
    path = export_run(folder, args.output, which=which, fmt=args.fmt, progress=_progress)
    print(json.dumps({"output": str(path), "format": args.fmt, "bytes": path.stat().st_size,
                      "checkpoint": checkpoint.checkpoint_summary(folder, which)}))
    return 0


def run_push(args: argparse.Namespace) -> int:
    from ..export import checkpoint
    from ..export.hub import push

    folder = _run_folder(args.run_dir)
    private = bool(os.environ.get("SPACE_ID")) if args.private is None else args.private  # a Space: private
    pushed = push(folder, args.repo, token=args.token, private=private, adapter_only=args.adapter_only,
                  gguf=args.gguf, which=args.which or checkpoint.default_which(folder), progress=_progress)
    print(json.dumps({"url": pushed.url, "private": pushed.private, "files": list(pushed.files)}))
    return 0


def _run_folder(path: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a run folder")
    return folder


def _progress(text: str) -> None:
    print(text, file=sys.stderr)
