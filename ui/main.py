"""The web app's command line: `finetune-lab` (installed) and `python app.py` (a
checkout, a Hugging Face Space) both run main() here.

    finetune-lab --host 0.0.0.0 --port 7860 --public    # a server for a class
    finetune-lab --share                                # a share link, from a notebook or Colab

The environment still works: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT set the
defaults of --host / --port, FINETUNE_PUBLIC=1 is --public, GRADIO_SHARE=True is
--share. On a Space (SPACE_ID set) the app is in public mode and keeps its runs
and caches on the Space's persistent storage (/data) when it has some.

Standard library only at import (and ui.space, which is too): nothing here may
import huggingface_hub before HF_HOME is set, so the app is built inside main().
"""

from __future__ import annotations

import argparse
import os

from ui import space


def parse_args(argv: list[str] | None = None, environ=os.environ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(  # prog: "app.py" or "finetune-lab", as it was started
        description="Serve the fine-tuning lab's web app.",
        epilog="Environment: GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, FINETUNE_PUBLIC=1, GRADIO_SHARE=True; "
               "SPACE_ID (set by a Hugging Face Space) turns on public mode.")
    parser.add_argument("--host", default=environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)")
    parser.add_argument("--port", type=int, default=int(environ.get("GRADIO_SERVER_PORT") or 7860),
                        help="port to listen on (default: %(default)s)")
    parser.add_argument("--public", action="store_true",
                        help="public mode, as FINETUNE_PUBLIC=1: each visitor sees only their own runs, "
                             "uploads and questions are capped, tracebacks stay in the server log")
    parser.add_argument("--share", action="store_true",
                        help="also open a temporary public *.gradio.live link (needs a network); "
                             "combine with --public when strangers may use it")
    return parser.parse_args(argv)


def server_settings(args: argparse.Namespace, environ=os.environ) -> tuple[dict[str, str], dict]:
    """What the command line asks for: environment variables to set before the
    app is built (public mode, caches on persistent storage) and launch() keywords."""
    env = space.storage_env(space.persistent_storage(environ=environ), environ)
    if args.public:
        env["FINETUNE_PUBLIC"] = "1"
    # share=None lets Gradio read GRADIO_SHARE (and open a link on Colab, where localhost is unreachable).
    launch = {"server_name": args.host, "server_port": args.port, "share": True if args.share else None}
    return env, launch


def main(argv: list[str] | None = None) -> None:
    env, launch = server_settings(parse_args(argv))
    os.environ.update(env)
    from ui.app import build_app, launch_options  # after the environment is set: it is read on import and build

    build_app().launch(**launch, **launch_options())


if __name__ == "__main__":
    main()
