"""What the API contract tests share: a gradio_client Client that keeps what
the server sent before the client downloaded any file, the check for objects
gradio_client would mistake for a file, the registry of contract tests, and
the README's API tables read as data.

The contract tests (test_api_contract.py) call every endpoint once per mode in
one "tour" (a real short run on the tiny model, held at a known step to stop,
queue, cancel and resume it), recording each call's answer by a label; each
contract test then reads the answers of its endpoint."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio_client import Client
from gradio_client import utils as client_utils

def finished(client: Client, run_id: str, owner_key: str | None = None, timeout: float = 300) -> dict:
    """The run's status once it has ended, polled as a script would (the timeout is for a broken run)."""
    key = {} if owner_key is None else {"owner_key": owner_key}
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.predict(run_id=run_id, **key, api_name="/training_status")
        if status["finished"]:
            return status
        time.sleep(0.3)
    raise AssertionError(f"{run_id} did not finish in {timeout} s")


# ------------------------------------------------------------------ contract tests, registered

CONTRACTS: dict[str, list[str]] = {}  # api_name -> the contract tests of that endpoint (filled as they are defined)


def contract(api_name: str):
    """Register a test as the contract test of `api_name`: a server endpoint with none fails the suite."""
    def register(test):
        CONTRACTS.setdefault(api_name, []).append(test.__name__)
        return test
    return register


# ------------------------------------------------------------------ what the server sent

@dataclass
class Sent:
    """One answer as the server sent it (before the client downloaded files), output by output."""
    api_name: str
    outputs: tuple
    is_file: tuple  # per output: whether its component's value is a file (gr.File), by the API info


@dataclass
class Call:
    api_name: str
    value: Any = None  # what the client returned (files downloaded, as a user's client does)
    error: BaseException | None = None


@dataclass
class Recorder:
    """Clients that keep every answer the server sent, and the tour's calls by label."""
    url: str
    sent: list[Sent] = field(default_factory=list)
    calls: dict[str, Call] = field(default_factory=dict)

    def client(self) -> Client:
        """gradio_client's default Client (it downloads files), which also keeps the raw answers."""
        c = Client(self.url, verbose=False)
        for endpoint in c.endpoints.values():
            endpoint.process_predictions = self._keeping(endpoint, endpoint.process_predictions)
        return c

    def _keeping(self, endpoint, process):
        def process_predictions(*predictions):
            kinds = tuple(t.value_is_file for t in endpoint.output_component_types)
            self.sent.append(Sent(endpoint.api_name, predictions, kinds))
            return process(*predictions)
        return process_predictions

    def call(self, label: str, c: Client, *args, api_name: str, **kwargs):
        """c.predict(...), its answer (or error) kept under `label`; None when it raised."""
        assert label not in self.calls, f"two calls labelled {label!r}"
        try:
            value = c.predict(*args, api_name=api_name, **kwargs)
        except Exception as err:  # noqa: BLE001 -- kept for the test of this endpoint to report
            self.calls[label] = Call(api_name, error=err)
            return None
        self.calls[label] = Call(api_name, value=value)
        return value

    def until_finished(self, label: str, c: Client, run_id: str, timeout: float = 300) -> dict | None:
        """Poll /training_status until the run has ended (every run does; the timeout is for a broken one)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                status = c.predict(run_id=run_id, api_name="/training_status")
            except Exception as err:  # noqa: BLE001
                self.calls[label] = Call("/training_status", error=err)
                return None
            if status.get("finished"):
                self.calls[label] = Call("/training_status", value=status)
                return status
            time.sleep(0.2)
        self.calls[label] = Call("/training_status", error=TimeoutError(f"{run_id} not finished in {timeout} s"))
        return None


# ------------------------------------------------------------------ what gradio_client takes for a file

def file_lookalikes(value, where: str = "", files_allowed: bool = False) -> list[str]:
    """Where in `value` an object sits that gradio_client would take for a file and try to
    download: a dict with a string "path" (utils.is_file_obj, what it downloads), or one with
    "url" and "meta" (a FileData). `files_allowed`: the output's component holds files (a
    File, a Chatbot's messages): a real FileData there is a file, not a mistake."""
    found = []
    if isinstance(value, dict):
        real = files_allowed and client_utils.is_file_obj_with_meta(value)
        if not real and (client_utils.is_file_obj(value) or {"url", "meta"} <= set(value)):
            found.append(where or "(the output itself)")
        for key, item in value.items():
            found += file_lookalikes(item, f"{where}[{key!r}]", files_allowed)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += file_lookalikes(item, f"{where}[{i}]", files_allowed)
    return found


# ------------------------------------------------------------------ the README's API tables

API_SECTION = re.compile(r"^### API\n(.*?)^## ", re.S | re.M)


def api_section(readme: str) -> str:
    found = API_SECTION.search(readme)
    assert found, "README.md has no '### API' section followed by a '## ' heading"
    return found.group(1)


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in `text`: its rows (header first, the --- line left out), as cells."""
    found, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def without_parentheses(text: str) -> str:
    """The text with every (parenthesised remark) taken out, nested ones included."""
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


NAME_OR_GROUP = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`|\*([^*]+)\*")


def parameter_items(cell: str) -> list[tuple[str, str]]:
    """A cell's parameters in order: ("name", x) for a backticked `x`, ("group", g) for an
    italic *g*; anything in parentheses is a remark (allowed values, defaults) and not read."""
    return [("name", name) if name else ("group", group.strip())
            for name, group in NAME_OR_GROUP.findall(without_parentheses(cell))]


REQUIRED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)` \(required\b")


@dataclass
class ApiTable:
    rows: dict[str, list[tuple[str, str]]]  # api_name -> its inputs cell, read
    inputs: dict[str, str]  # api_name -> its inputs cell, as written
    outputs: dict[str, str]  # api_name -> its outputs cell, as written
    groups: dict[str, list[tuple[str, str]]]  # group -> its parameters cell, read

    def parameters(self, api_name: str) -> list[str]:
        return self.expand(self.rows[api_name])

    def required(self, api_name: str) -> list[str]:
        """The parameters the row marks `name` (required...): those with no default."""
        return REQUIRED.findall(self.inputs[api_name])

    def expand(self, items, seen=()) -> list[str]:
        names = []
        for kind, value in items:
            if kind == "name":
                names.append(value)
                continue
            assert value in self.groups, f"the group *{value}* is used but not defined in the groups table"
            assert value not in seen, f"the group *{value}* contains itself"
            names += self.expand(self.groups[value], (*seen, value))
        return names


def read_api_table(readme: str) -> ApiTable:
    """The endpoints table (header `api_name | inputs | outputs`) and the groups table
    (header `group | parameters`) of the README's API section."""
    endpoints = groups = None
    for table in tables(api_section(readme)):
        header = [h.lower() for h in table[0]]
        if header[0] == "api_name":
            endpoints = table[1:]
        elif header[0] == "group":
            groups = table[1:]
    assert endpoints, "the API section has no table whose first column is api_name"
    rows, inputs, outputs = {}, {}, {}
    for cells in endpoints:
        name = cells[0].strip("`")
        assert name not in rows, f"{name} has two rows"
        rows[name], inputs[name], outputs[name] = parameter_items(cells[1]), cells[1], cells[2]
    defined = {}
    for cells in groups or []:
        found = parameter_items(cells[0])
        assert len(found) == 1 and found[0][0] == "group", f"a group's name is written *like this*: {cells[0]!r}"
        defined[found[0][1]] = parameter_items(cells[1])
    return ApiTable(rows, inputs, outputs, defined)


def readme_example(readme: str) -> str:
    """The API section's ```python block."""
    found = re.search(r"```python\n(.*?)```", api_section(readme), re.S)
    assert found, "the API section has no ```python example"
    return found.group(1)


def server_parameters(api: dict) -> dict[str, list[str]]:
    """Client.view_api(return_format="dict")'s named endpoints -> their parameter names, in order."""
    return {name: [p["parameter_name"] for p in info["parameters"]] for name, info in api["named_endpoints"].items()}


def server_required(api: dict) -> dict[str, list[str]]:
    """The parameters each endpoint has no default for (gradio_client refuses a call without them)."""
    return {name: [p["parameter_name"] for p in info["parameters"] if not p.get("parameter_has_default")]
            for name, info in api["named_endpoints"].items()}


def one_line(err: BaseException | None) -> str:
    text = str(err or "")
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    return text


def demo_path() -> Path:
    return Path(__file__).resolve().parents[2] / "assets" / "demo" / "demo.jsonl"
