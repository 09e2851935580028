"""Launch the app in-process on a free port, as the UI tests need it: the tiny
model as the default model and a temporary runs folder."""

from __future__ import annotations

import json
import socket
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(default_model: Path, runs: Path, public: bool | None = None, holds=None):
    """`holds`: a tests/holds.py Holds every run of the app is given, to hold one at a known step."""
    from ui.app import build_app, launch_options

    demo = build_app(default_model=str(default_model), output_root=runs, public=public,
                     run_callbacks=(holds,) if holds is not None else ())
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(runs, public=public))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def raw_call(url: str, api_name: str, **overrides) -> str:
    """POST to an endpoint as a hand-written client would (JSON NaN and Infinity
    literals, server paths in file parameters: what gradio_client never sends);
    return the event stream."""
    from gradio_client import Client

    api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
    params = api["named_endpoints"][f"/{api_name}"]["parameters"]
    data = [overrides.get(p["parameter_name"], p.get("parameter_default")) for p in params]
    body = json.dumps({"data": data}, allow_nan=True).encode()
    request = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body,
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=120).read().decode()


BOUNDARY = "lab-test-boundary"


def multipart(name: str, content: bytes) -> bytes:
    """One file as a multipart/form-data body (field "files", as a page uploads it)."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(url: str, name: str, content: bytes, timeout: float = 60) -> str:
    """Upload as a page does; returns the server path Gradio gives the file."""
    request = urllib.request.Request(f"{url}gradio_api/upload", data=multipart(name, content),
                                     headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    return json.loads(urllib.request.urlopen(request, timeout=timeout).read())[0]
