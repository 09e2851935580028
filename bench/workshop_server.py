"""The server side of bench.workshop: the app in public mode in a subprocess,
and what the benchmark reads of it (resident memory, CPU time) from /proc.

    python -m bench.workshop_server --model tiny|default --work DIR --port N

is how bench.workshop starts it; nothing else needs to.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


def serve(model: str, runs: Path, port: int) -> None:
    """The app in public mode, in this process, until it is killed."""
    os.environ["FINETUNE_PUBLIC"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    if model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        import tiny  # the tests' in-process model builder: no download

        model = str(tiny.save_tiny(runs.parent / "tiny-model"))
    else:
        from finetune.sources import models

        model = models.DEFAULT_SPEC
    from transformers.utils import logging as hf_logging

    from ui.app import build_app, launch_options

    hf_logging.disable_progress_bar()  # thirty runs' loading bars would bury the report
    demo = build_app(default_model=model, output_root=runs, public=True)
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True, prevent_thread_lock=True,
                **launch_options(runs, public=True))
    log(f"server ready on port {port} with model {model}")
    while True:
        time.sleep(3600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, work: Path, port: int, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "FINETUNE_PUBLIC": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           **(extra_env or {})}
    command = [sys.executable, "-m", "bench.workshop_server", "--model", model, "--work", str(work),
               "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            urllib.request.urlopen(f"{url}gradio_api/info", timeout=5).read()
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


class MemoryWatch(threading.Thread):
    """The server's resident memory, sampled twice a second from /proc."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def rss(self) -> int:
        return _proc_kib(self.pid, "VmRSS") * 1024

    def hwm(self) -> int:
        return _proc_kib(self.pid, "VmHWM") * 1024

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.rss())
            self.done.wait(0.5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _proc_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The app in public mode, for bench.workshop.")
    parser.add_argument("--model", choices=("tiny", "default"), default="tiny")
    parser.add_argument("--work", type=Path, required=True, help="a folder for the runs (and the tiny model)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.model, args.work / "runs", args.port)


if __name__ == "__main__":
    main()
