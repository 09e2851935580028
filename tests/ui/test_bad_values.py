"""Every bad value of every endpoint parameter gets one line naming the parameter
and what is allowed (ui/boundary.py), sent as a hand-written client would send it
(raw JSON: booleans, nulls, NaN, lists where text belongs), in local and public
mode. Nothing a refused call sent starts a run."""

import json
import math
import urllib.request

import pytest
from app_server import running_app

from finetune.runs.records import list_runs

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

KEY = "an-owner-key-for-bad-values-0123456789"


def junk_for(param: dict) -> list:
    """Values the parameter's declared type cannot take, and must be refused."""
    kind = str(param.get("python_type", {}).get("type", ""))
    name = param["parameter_name"]
    if name == "owner_key":
        return [12345, [KEY]]
    if kind in ("float", "int"):
        junk = [True, None, "abc", [1], float("nan")]
        return junk + ([4.5] if kind == "int" or name in WHOLE else [])
    if kind == "bool":
        return [None, 1, "yes"]
    if kind == "Literal['']":  # a dropdown that takes any text (a file's column, a run id)
        return [12345, [1], True]
    if kind.startswith("Literal["):
        return [True, 12345, "not-one-of-them"] + ([] if "''" in kind else [None])
    if kind == "filepath":
        return [True, 12345, "just text"]
    if kind == "list[str]":
        return [None, "abc", [1, 2]]
    if kind in ("str", "None | str"):
        return [12345, [1], True]
    raise AssertionError(f"{name}: no junk for type {kind!r}: teach this test the new type")


# Settings Gradio types as numbers although they only take whole values.
WHOLE = {"max_length", "held_out", "batch_size", "grad_accum", "epochs", "lora_r", "lora_alpha",
         "early_stopping_patience", "max_new_tokens"}


def good_value(param: dict):
    """A value the parameter takes: its default, else one of its type (required text, a list of ids)."""
    if param["parameter_name"] == "owner_key":
        return KEY
    if param.get("parameter_has_default"):
        return param.get("parameter_default")
    return [] if "list" in str(param.get("python_type", {}).get("type")) else "something"


def send(url: str, api_name: str, data: list) -> str:
    """POST raw JSON (NaN and all), as a hand-written client would; the event stream back."""
    body = json.dumps({"data": data}, allow_nan=True).encode()
    request = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body,
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=120).read().decode()


def error_message(stream: str) -> str | None:
    if "event: error" not in stream:
        return None
    data = stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    found = json.loads(data)
    return found.get("error") if isinstance(found, dict) else found


@pytest.mark.parametrize("public, values", [(False, None), (True, 1)], ids=["local", "public"])
def test_every_bad_value_of_every_parameter_is_named_in_one_line(tiny_model_dir, tmp_path, public, values):
    """Locally every junk value of each type; in public mode (the same checks) the first of each."""
    runs = tmp_path / "runs"
    with running_app(tiny_model_dir, runs, public=public) as url:
        api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
        unnamed, checked = [], 0
        for endpoint, info in api.items():
            params = info["parameters"]
            base = [good_value(p) for p in params]
            for index, param in enumerate(params):
                for bad in junk_for(param)[:values]:
                    data = list(base)
                    data[index] = bad
                    message = error_message(send(url, endpoint.strip("/"), data))
                    checked += 1
                    name = param["parameter_name"]
                    if not message or not message.startswith(f"{name}: ") or "\n" in message:
                        unnamed.append(f"{endpoint} {name}={json.dumps(bad, allow_nan=True)}: {message!r}")
        assert not unnamed, f"{len(unnamed)} of {checked} bad values without their one line:\n" + "\n".join(unnamed)
        assert checked > (300 if values is None else 150)
        assert list_runs(runs) == [], "a refused call started a run"


def test_the_messages_say_what_is_allowed(tiny_model_dir, tmp_path):
    """What a user reads: the parameter, the value sent, and what it may be instead."""
    with running_app(tiny_model_dir, tmp_path / "runs") as url:
        api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
        params = api["/start_training"]["parameters"]
        base = [good_value(p) for p in params]

        def refusal(**values) -> str:
            data = list(base)
            for name, value in values.items():
                data[[p["parameter_name"] for p in params].index(name)] = value
            return error_message(send(url, "start_training", data))

        assert refusal(max_steps=True) == "max_steps: true is not a number; give a whole number from 0 to 100,000"
        assert refusal(max_steps=None).startswith("max_steps: null is not a number; give a whole number from 0 to "
                                                  "100,000, or leave max_steps out to take the page's value")
        assert refusal(batch_size=4.5).startswith("batch_size: 4.5 is not a whole number; give a whole number")
        assert refusal(learning_rate=math.nan).startswith("learning_rate: NaN is not a finite number")
        high = refusal(learning_rate=3e-3)
        assert high.startswith("learning_rate: 0.003 is outside this page's range; give a number from 1e-06 to 5e-05")
        assert "allow_out_of_range=True" in high  # how to go beyond the recommended range
        assert refusal(method="adam") == 'method: "adam" is not one of "full", "lora", "qlora"'
        assert refusal(packing="yes") == 'packing: "yes" is not true or false'
        assert refusal(model=12345) == "model: 12345 is not text"
        assert refusal(model="m" * 300).startswith("model: a part of 300 bytes is longer than a file name or a hub id")
        assert refusal(file=True).startswith("file: true is not a file; upload one")
