"""Launch the app in-process on a free port, as the UI tests need it: the tiny
model as the default model and a temporary runs folder."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(default_model: Path, runs: Path):
    from ui.app import build_app, launch_options

    demo = build_app(default_model=str(default_model), output_root=runs)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(runs))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
