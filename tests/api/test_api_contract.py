"""The API as a contract (issue 24): every named endpoint the server lists is
called through gradio_client's default Client (files downloaded, as a user's
client does), in local and in public mode, and its answer holds the fields
README.md's "### API" section documents; no answer holds an object
gradio_client would take for a file; the README's table lists each endpoint's
parameters in the server's order; its Python example runs as written.

One app per mode (the tiny model as its default), toured once: the bundled demo
data uploaded with handle_file, one real short run held at step 2 (its status
read, a second person's run queued behind it and cancelled, the run stopped),
then resumed to its end; the finished run asked, exported and pushed; a sweep
of two short runs compared; the runs listed. Each contract test reads the
tour's answers for its endpoint."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_contract import (
    CONTRACTS,
    Recorder,
    contract,
    demo_path,
    file_lookalikes,
    one_line,
    parameter_items,
    read_api_table,
    readme_example,
    server_parameters,
    server_required,
)
import test_chat_contract  # noqa: F401  (its @contract tests count when this file runs alone)
from app_server import running_app
from gradio_client import handle_file

README = Path(__file__).resolve().parents[2] / "README.md"
# The real run: short, in the recommended ranges (no switch needed), no general probe.
RUN = dict(max_steps=4, max_new_tokens=16, general_probe=False)
SWEEP = dict(setting="learning_rate", values="2e-5, 5e-5", max_steps=2, max_new_tokens=16, general_probe=False)
OTHER_KEY = "contract-test-another-person"  # an owner key (16 characters or more) a second client passes
HELD_AT = 2


@dataclass
class App:
    """One mode's app: where it serves, where its runs go, and its API info as a client reads it."""
    mode: str
    url: str
    runs: Path

    def server(self) -> dict:
        return Recorder(self.url).client().view_api(return_format="dict", print_info=False)


@dataclass
class Toured:
    """One mode's app and every answer its tour got."""
    app: App
    rec: Recorder
    run_id: str | None  # the real run's
    server: dict  # Client.view_api(return_format="dict")

    @property
    def public(self) -> bool:
        return self.app.mode == "public"

    @property
    def runs(self) -> Path:
        return self.app.runs

    def value(self, label: str):
        """The answer kept under `label`; a call that raised fails the test with its error."""
        assert label in self.rec.calls, f"the tour made no call {label!r} (an earlier step failed?)"
        call = self.rec.calls[label]
        if call.error is not None:
            pytest.fail(f"{call.api_name} ({label}) raised: {type(call.error).__name__}: {call.error}")
        return call.value

    def error(self, label: str) -> str:
        """The one-line error the call under `label` was answered with."""
        assert label in self.rec.calls, f"the tour made no call {label!r}"
        call = self.rec.calls[label]
        assert call.error is not None, f"{call.api_name} ({label}) answered {call.value!r} instead of an error"
        return one_line(call.error)


def tour(app: App, holds) -> Toured:
    """Call every endpoint, as a user's script would, keeping each answer by label."""
    rec = Recorder(app.url)
    c = rec.client()
    server = c.view_api(return_format="dict", print_info=False)
    data = dict(source="upload", file=handle_file(str(demo_path())))

    rec.call("load_dataset", c, **data, api_name="/load_dataset")
    rec.call("apply_preset", c, preset="lora", allow_out_of_range=False, api_name="/apply_preset")
    rec.call("set_ranges", c, "full", False, api_name="/set_ranges")
    rec.call("set_ranges allowed", c, "full", True, api_name="/set_ranges")
    rec.call("set_ranges back", c, "full", False, api_name="/set_ranges")  # this session's sliders as they were
    rec.call("estimate_memory", c, api_name="/estimate_memory")
    rec.call("plan_run", c, api_name="/plan_run")

    other = rec.client()  # a second person (their own session and owner key)
    with holds.at_step(HELD_AT) as hold:
        started = rec.call("start_training", c, **data, **RUN, api_name="/start_training")
        run_id = started["run_id"] if started else None
        if started:
            hold.wait()
            rec.call("training_status held", c, run_id=run_id, api_name="/training_status")
            rec.call("delete_runs training", c, [run_id], api_name="/delete_runs")
            queued = rec.call("start_training queued", other, **data, **RUN, owner_key=OTHER_KEY,
                              api_name="/start_training")
            rec.call("training_status someone else's", other, run_id=run_id, owner_key=OTHER_KEY,
                     api_name="/training_status")
            if queued:
                rec.call("cancel_run", other, queued["run_id"], owner_key=OTHER_KEY, api_name="/cancel_run")
            rec.call("stop_training", c, run_id=run_id, api_name="/stop_training")
    if started:
        rec.until_finished("training_status stopped", c, run_id)
        rec.call("stop_training ended", c, run_id=run_id, api_name="/stop_training")
        rec.call("resume_run", c, run_id=run_id, api_name="/resume_run")
        rec.until_finished("training_status completed", c, run_id)
        rec.call("resume_run completed", c, run_id=run_id, api_name="/resume_run")
        rec.call("continue_from", c, run_id=run_id, which="best", api_name="/continue_from")
        rec.call("continue_from someone else's", other, run_id=run_id, owner_key=OTHER_KEY,
                 api_name="/continue_from")
    rec.call("training_status unknown", c, run_id="not-a-run-of-yours", api_name="/training_status")

    rec.call("ask", c, "What is the capital of France?", 16, run_id=run_id, api_name="/ask")
    chat = dict(run_id=run_id, max_new_tokens=8)  # the edit comes before the mark, so the two answers differ
    rec.call("chat_send", c, "What is the capital of France?", **chat, api_name="/chat_send")
    rec.call("chat_regenerate", c, **chat, api_name="/chat_regenerate")
    rec.call("chat_edit", c, 0, "base", "Paris.", api_name="/chat_edit")
    rec.call("chat_mark", c, 0, "trained", api_name="/chat_mark")
    rec.call("chat_stop", c, api_name="/chat_stop")
    rec.call("chat_clear", c, api_name="/chat_clear")
    rec.call("export", c, run_id=run_id, api_name="/export")
    rec.call("export final adapter", c, run_id=run_id, which="final", fmt="adapter", api_name="/export")
    rec.call("push_to_hub offline", c, run_id=run_id, repo="someone/tiny-model", token="hf_NotARealToken",
             api_name="/push_to_hub")
    rec.call("push_to_hub bad repo", c, run_id=run_id, repo="no-slash", token="hf_NotARealToken",
             api_name="/push_to_hub")
    with pytest.MonkeyPatch.context() as mp:  # a Hub that takes the upload (the server runs in this process)
        from huggingface_hub import HfApi

        mp.setattr(HfApi, "repo_exists", lambda api, repo_id, **kw: False)
        mp.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: f"https://huggingface.co/{repo_id}")
        mp.setattr(HfApi, "upload_folder", lambda api, **kw: None)
        rec.call("push_to_hub", c, run_id=run_id, repo="someone/tiny-model", token="hf_NotARealToken",
                 api_name="/push_to_hub")

    sweep = rec.call("start_sweep", c, **SWEEP, **data, api_name="/start_sweep")
    for i, member in enumerate(sweep["runs"] if sweep else []):
        rec.until_finished(f"training_status sweep {i}", c, member["run_id"])
    ids = [member["run_id"] for member in sweep["runs"]] if sweep else []
    rec.call("compare_runs", c, ids, api_name="/compare_runs")
    rec.call("compare_runs one", c, [run_id], api_name="/compare_runs")
    rec.call("list_runs", c, api_name="/list_runs")
    rec.call("list_runs someone else's", other, owner_key=OTHER_KEY, api_name="/list_runs")
    if app.mode == "public":  # locally every run is everyone's: this would delete the run the tests read
        rec.call("delete_runs someone else's", other, [run_id], owner_key=OTHER_KEY, api_name="/delete_runs")
    if started and queued:
        rec.call("delete_runs", other, [queued["run_id"]], owner_key=OTHER_KEY, api_name="/delete_runs")
        rec.call("list_runs after delete_runs", other, owner_key=OTHER_KEY, api_name="/list_runs")
    return Toured(app, rec, run_id, server)


@pytest.fixture(scope="module")
def local_app(tiny_model_dir, tmp_path_factory, holds):
    runs = tmp_path_factory.mktemp("runs")
    with running_app(tiny_model_dir, runs, public=False, holds=holds) as url:
        yield url, runs


@pytest.fixture(scope="module", params=["local", "public"])
def app(request) -> App:
    """Each mode's app (public_app: tests/conftest.py), one per mode for the module."""
    return App(request.param, *request.getfixturevalue(f"{request.param}_app"))


@pytest.fixture(scope="module")
def api(app, holds) -> Toured:
    """The mode's app, toured once: every endpoint called, each answer kept."""
    return tour(app, holds)


def parameters(api: Toured, api_name: str) -> list[str]:
    return server_parameters(api.server)[api_name]


def documented_fields(api_name: str) -> set[str]:
    """The top-level fields README's table gives for an endpoint's JSON answer: its
    backticked names outside parentheses (inside them: values, nested fields, remarks)."""
    cell = read_api_table(README.read_text(encoding="utf-8")).outputs[api_name]
    return {value for kind, value in parameter_items(cell) if kind == "name"}


def logged_steps(status: dict, key: str = "loss") -> list[int]:
    return [h["step"] for h in status["history"] if key in h]


# ------------------------------------------------------------------ the Data and Hyperparameters tabs

@contract("/load_dataset")
def test_load_dataset(api):
    out = api.value("load_dataset")
    assert len(out) == 11  # summary, format, 4 column pickers, records, example, histogram, advice, details
    summary, fmt, *pickers, records, example, histogram, advice, details = out
    assert "demo.jsonl" in summary and "380 records" in summary
    assert "detected: alpaca" in fmt["label"]
    columns = ["instruction", "input", "output", "split", "category", "task"]
    assert all([c, c] in picker["choices"] for picker in pickers for c in columns)
    assert records["value"]["headers"] == columns and 0 < len(records["value"]["data"]) <= 50
    assert {item["class_or_confidence"] for item in example} == {"trained", "prompt (masked)"}
    assert histogram["type"] == "plotly" and isinstance(histogram["plot"], str)
    assert "Data advice" in advice
    assert {"source", "format", "template", "columns", "records", "split", "report", "notices",
            "train_tokens"} <= set(details)
    assert details["format"] == "alpaca" and details["records"] == 380 and details["columns"] == columns
    # The file's split column pins 30 held-out prompts; 5% of the rest is drawn for validation.
    assert details["split"] == {"train": 332, "validation": 18, "held_out": 30}


@contract("/apply_preset")
def test_apply_preset(api):
    from finetune.train.presets import PRESETS

    names = parameters(api, "/apply_preset")
    assert names[:2] == ["preset", "allow_out_of_range"]
    settings = names[2:]  # the run settings: each comes back, in order, then the preset's note
    out = api.value("apply_preset")
    assert len(out) == len(settings) + 1
    values = dict(zip(settings, out))
    for name, value in PRESETS["lora"].items():
        if name in values:
            assert values[name]["value"] == value, name
    assert all({"minimum", "maximum", "info"} <= set(values[n]) for n in parameters(api, "/set_ranges")[2:])
    assert "LoRA" in out[-1]["info"]


@contract("/set_ranges")
def test_set_ranges(api):
    from finetune.train import config as cfg

    numeric = parameters(api, "/set_ranges")[2:]
    recommended, allowed = api.value("set_ranges"), api.value("set_ranges allowed")
    assert len(recommended) == len(allowed) == len(numeric)
    for name, inside, outside in zip(numeric, recommended, allowed):
        meta = cfg.field_by_name(name).metadata
        assert {"value", "minimum", "maximum", "info"} <= set(inside), name
        if "hard_min" in meta:  # with the switch, the hard limits; without, the recommended range inside them
            assert (outside["minimum"], outside["maximum"]) == (meta["hard_min"], meta["hard_max"]), name
            assert meta["hard_min"] <= inside["minimum"] <= inside["maximum"] <= meta["hard_max"], name
    rate = numeric.index("learning_rate")
    assert allowed[rate]["maximum"] > recommended[rate]["maximum"]
    assert api.value("set_ranges back") == recommended  # the session's sliders as they were


@contract("/estimate_memory")
def test_estimate_memory(api):
    html = api.value("estimate_memory")
    assert "Estimated peak memory:" in html and "GiB" in html
    for term in ("weights", "gradients", "optimizer states", "activations", "logits and loss", "overhead"):
        assert term in html, term


@contract("/plan_run")
def test_plan_run(api):
    summary, curve = api.value("plan_run")
    for line in ("Optimizer steps:", "Warmup:", "Examples per step:", "Tokens per epoch:", "Device:", "Method:"):
        assert line in summary, line  # this session loaded the demo data first: the steps are known
    assert curve["type"] == "plotly" and "learning" in curve["plot"].lower()


# ------------------------------------------------------------------ the Train tab

@contract("/start_training")
def test_start_training(api):
    started, queued = api.value("start_training"), api.value("start_training queued")
    assert started["status"] in ("loading", "baseline", "training") and not started["finished"]
    assert started["max_steps"] == RUN["max_steps"] and started["run_id"] == api.run_id
    assert set(started) == documented_fields("/training_status")  # the same run status
    # Another person's start while the run trains waits in the queue, saying where.
    assert queued["status"] == "queued" and not queued["finished"] and queued["run_id"] != api.run_id
    assert "number 1 in the queue" in queued["message"]


@contract("/training_status")
def test_training_status(api):
    held = api.value("training_status held")
    assert held["status"] == "training" and not held["finished"] and 1 <= held["step"] <= HELD_AT
    done = api.value("training_status completed")
    assert set(done) == documented_fields("/training_status")
    assert done["run_id"] == api.run_id and done["status"] == "completed" and done["finished"]
    assert done["step"] == done["max_steps"] == RUN["max_steps"] and done["error"] is None
    assert logged_steps(done) == [1, 2, 3, 4], "one curve: no step twice, none missing"
    assert logged_steps(done, "eval_loss") and all("learning_rate" in h for h in done["history"] if "loss" in h)
    assert done["last_train_loss"] == [h["loss"] for h in done["history"] if "loss" in h][-1]
    rows = done["comparison"]
    assert len(rows) == 30 and {row["category"] for row in rows} == {"task", "general"}
    assert all(isinstance(row["before"], str) and isinstance(row["after"], str) for row in rows)
    assert {"prompt", "reference", "before_score", "after_score"} <= set(rows[0])
    assert set(done["scores"]) == {"all", "task", "general"}  # general_probe off: no probe row
    assert done["scores"]["all"]["prompts"] == 30 and "after_normalised" in done["scores"]["all"]
    assert done["diagnoses"] and all({"name", "status", "evidence", "step"} <= set(d) for d in done["diagnoses"])
    assert "estimate_bytes" in done["memory"]
    # Where the best model is, never as a "path" (gradio_client would download it, and fail).
    assert set(done["best_checkpoint"]) == {"step", "eval_loss"}
    assert api.error("training_status unknown") == "no such run"
    if api.public:  # a person sees only their own runs
        assert api.error("training_status someone else's") == "no such run"
    else:  # locally one person uses the app: every run is theirs
        assert api.value("training_status someone else's")["run_id"] == api.run_id


@contract("/stop_training")
def test_stop_training(api):
    stopping = api.value("stop_training")
    assert stopping["run_id"] == api.run_id and stopping["stop_requested"] is True and not stopping["finished"]
    stopped = api.value("training_status stopped")
    assert stopped["status"] == "stopped" and stopped["step"] == HELD_AT  # the stop lands on the held step
    assert api.error("stop_training ended") == "No run of yours is waiting or training."


@contract("/cancel_run")
def test_cancel_run(api):
    cancelled = api.value("cancel_run")
    assert cancelled["run_id"] == api.value("start_training queued")["run_id"]
    assert cancelled["status"] == "cancelled" and cancelled["finished"]


@contract("/resume_run")
def test_resume_run(api):
    resumed = api.value("resume_run")
    assert resumed["run_id"] == api.run_id and not resumed["finished"]
    assert resumed["status"] in ("queued", "loading", "baseline", "training")
    done = api.value("training_status completed")  # the same run, gone on from step 2 to its end
    assert done["run_id"] == api.run_id and done["status"] == "completed" and logged_steps(done) == [1, 2, 3, 4]
    assert "is completed: only a stopped or interrupted run" in api.error("resume_run completed")


# ------------------------------------------------------------------ the Compare and Export tabs

@contract("/continue_from")
def test_continue_from(api):
    """A preference run continued from this one end to end: tests/api/test_continue_from.py."""
    found = api.value("continue_from")
    assert set(found) == {"model", "parent", "message"}
    assert found["parent"] == {"run_id": api.run_id, "which": "best"}
    assert found["model"].endswith(f"{api.run_id}/best") and api.run_id in found["message"]
    if api.public:  # only one's own runs
        assert api.error("continue_from someone else's") == "no such run"
    else:  # locally one person uses the app: every run is theirs
        assert api.value("continue_from someone else's")["parent"] == found["parent"]


@contract("/ask")
def test_ask(api):
    before, after = api.value("ask")
    assert isinstance(before, str) and before and isinstance(after, str) and after
    assert "No trained model yet" not in after  # the run's trained model answered


@contract("/export")
def test_export(api):
    zip_path, card = api.value("export")
    assert Path(zip_path).is_file() and zip_path.endswith(f"{api.run_id}-best.zip")  # downloaded by the client
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "training/summary.json",
            "training/metrics.jsonl", "training/comparison.json"} <= names
    assert "best checkpoint" in card and "demo.jsonl" in card
    served = next(s.outputs[0]["path"] for s in api.rec.sent if s.api_name == "/export")
    if api.public:  # a visitor's zip is served from a folder of its own, never from the runs folder
        assert not Path(served).resolve().is_relative_to(api.runs.resolve())
    assert "has no adapters to export" in api.error("export final adapter")


@contract("/push_to_hub")
def test_push_to_hub(api):
    offline = api.error("push_to_hub offline")  # the tests' Hub is off: the answer without a network
    assert offline.startswith("the Hub is switched off here")
    laid_out = api.runs / api.run_id / "hub"
    assert (laid_out / "README.md").is_file() and (laid_out / "model.safetensors").is_file()
    if api.public:  # a visitor learns the upload is kept, not where the server keeps it
        assert "nothing was lost" in offline and str(api.runs) not in offline
    else:
        assert f"the upload is ready in {api.run_id}/hub" in offline and "python -m finetune push" in offline
    assert "USER/NAME" in api.error("push_to_hub bad repo")
    pushed = api.value("push_to_hub")  # a Hub that takes it (faked in-process)
    kind = "private" if api.public else "public"  # private by default on a public deployment
    assert re.fullmatch(rf"Pushed to \[https://huggingface.co/someone/tiny-model\]\(\S+\) \({kind}, \d+ files\)\.",
                        pushed), pushed


# ------------------------------------------------------------------ the Experiments tab

@contract("/start_sweep")
def test_start_sweep(api):
    sweep = api.value("start_sweep")
    assert set(sweep) == {"sweep_id", "setting", "values", "runs"} and sweep["sweep_id"].startswith("sweep-")
    assert sweep["setting"] == "learning_rate" and sweep["values"] == [2e-5, 5e-5]
    assert [r["label"] for r in sweep["runs"]] == ["lr=2e-05", "lr=5e-05"]
    assert all(set(r) == {"run_id", "label", "status"} for r in sweep["runs"])
    for i, member in enumerate(sweep["runs"]):
        done = api.value(f"training_status sweep {i}")
        assert done["run_id"] == member["run_id"] and done["status"] == "completed" and done["step"] == 2
        assert done["label"] == member["label"]


@contract("/compare_runs")
def test_compare_runs(api):
    from finetune.experiments.compare import VERSUS_BEST

    ids = [r["run_id"] for r in api.value("start_sweep")["runs"]]
    found = api.value("compare_runs")
    assert set(found) == {"rows", "verdict", "settings_diff", "figures"}
    assert [row["run"] for row in found["rows"]] == ids and all(VERSUS_BEST in row for row in found["rows"])
    verdict = found["verdict"]
    assert {"text", "metric", "lowest", "lowest_margin", "held_out", "fastest", "fastest_without_overfitting",
            "overfit"} <= set(verdict)
    assert verdict["text"] and verdict["lowest"]["run"] in ids
    assert found["settings_diff"]  # the learning rates differ
    assert set(found["figures"]) == {"loss", "eval_loss", "learning_rate"}
    assert all("data" in figure and "layout" in figure for figure in found["figures"].values())
    assert api.value("compare_runs one")["verdict"] is None  # one run is no comparison


@contract("/list_runs")
def test_list_runs(api):
    rows = api.value("list_runs")
    fields = {"run", "label", "time", "model", "data", "status", "steps", "final train loss", "best val loss",
              "best val step", "held-out (before → after)", "duration (s)", "disk (MB)", "note"}
    assert all(fields <= set(row) for row in rows)
    times = [row["time"] for row in rows]
    assert times == sorted(times, reverse=True), "newest first"
    status = {row["run"]: row["status"] for row in rows}
    sweep = [r["run_id"] for r in api.value("start_sweep")["runs"]]
    assert status[api.run_id] == "completed" and all(status[run] == "completed" for run in sweep)
    queued = api.value("start_training queued")["run_id"]
    theirs = {row["run"]: row["status"] for row in api.value("list_runs someone else's")}
    if api.public:  # each person lists their own runs only
        assert queued not in status and theirs == {queued: "cancelled"}
    else:
        assert status[queued] == "cancelled" and theirs == status


@contract("/delete_runs")
def test_delete_runs(api):
    queued = api.value("start_training queued")["run_id"]  # cancelled: its person deletes it
    deleted = api.value("delete_runs")
    assert set(deleted) == {"deleted", "freed_mb"} and deleted["deleted"] == [queued]
    assert isinstance(deleted["freed_mb"], float) and deleted["freed_mb"] >= 0
    assert queued not in {row["run"] for row in api.value("list_runs after delete_runs")}
    assert not (api.runs / queued).exists()
    assert api.error("delete_runs training") == f"run {api.run_id} is training: stop it first, and delete it once " \
                                                 "it has stopped"
    if api.public:  # someone else's run is answered as a missing one, and stays
        assert api.error("delete_runs someone else's") == "no such run"
        assert (api.runs / api.run_id / "run.json").is_file()


# ------------------------------------------------------------------ the contract as a whole

def test_every_endpoint_the_server_lists_has_a_contract_test(app):
    """A new endpoint fails here until a contract test (@contract) covers it."""
    server = app.server()
    listed = set(server["named_endpoints"])
    assert not server["unnamed_endpoints"]
    untested = sorted(listed - set(CONTRACTS))
    assert not untested, f"endpoints with no contract test: {untested}"
    gone = sorted(set(CONTRACTS) - listed)
    assert not gone, f"contract tests of endpoints the server no longer lists: {gone}"


def test_the_tour_calls_every_endpoint(api):
    listed = set(api.server["named_endpoints"])
    called = {call.api_name for call in api.rec.calls.values()}
    assert listed <= called, f"endpoints the tour never calls: {sorted(listed - called)}"


def test_no_answer_holds_an_object_gradio_client_takes_for_a_file(api):
    """gradio_client downloads any dict with a string "path" (and a FileData has "url" and
    "meta"): in a JSON answer such an object makes the client fetch a server path (403)."""
    mistaken = []
    for sent in api.rec.sent:
        for i, (output, is_file) in enumerate(zip(sent.outputs, sent.is_file)):
            # A component that holds files (the export's zip, a chat's messages) may carry real FileData.
            mistaken += [f"{sent.api_name} output {i}{where}" for where in file_lookalikes(output, files_allowed=is_file)]
    assert not mistaken, f"objects gradio_client would take for a file: {sorted(set(mistaken))}"
    walked = {sent.api_name for sent in api.rec.sent}
    listed = set(api.server["named_endpoints"])
    assert listed <= walked, f"endpoints with no answer to walk: {sorted(listed - walked)}"


def test_the_readme_table_gives_each_endpoints_parameters_in_the_servers_order(app):
    """Each row's inputs, its groups expanded, are the server's parameters in order, and
    the ones it marks (required) are those the server has no default for."""
    table = read_api_table(README.read_text(encoding="utf-8"))
    info = app.server()
    server = server_parameters(info)
    missing, extra = sorted(set(server) - set(table.rows)), sorted(set(table.rows) - set(server))
    assert not missing and not extra, f"README's API table: no row for {missing}; rows for no endpoint: {extra}"
    wrong = {name: {"README": table.parameters(name), "server": server[name]}
             for name in server if table.parameters(name) != server[name]}
    assert not wrong, f"README's API table differs from the server's parameters: {wrong}"
    required = server_required(info)
    unmarked = {name: {"README": table.required(name), "server": required[name]}
                for name in server if table.required(name) != required[name]}
    assert not unmarked, f"README's API table marks (required) other parameters than the server has: {unmarked}"


def test_the_readme_example_runs_as_written(local_app, monkeypatch, capsys):
    """The README's gradio_client example, after a default run (keep_best as it is): only
    the server's address, shorter runs and quicker polling differ."""
    url, _ = local_app
    code = readme_example(README.read_text(encoding="utf-8"))
    for old, new in (('"http://127.0.0.1:7860/"', repr(url)), ("max_steps=20", "max_steps=2"),
                     ("time.sleep(2)", "time.sleep(0.2)")):
        assert old in code, f"the example no longer has {old}: update this test's substitutions"
        code = code.replace(old, new)
    monkeypatch.chdir(README.parent)  # its data path is relative to the checkout
    names: dict = {}
    exec(compile(code, "README.md (### API example)", "exec"), names)
    status = names["status"]
    assert status["status"] == "completed" and status["step"] == 2
    # A dict with a "path" key here made gradio_client download a server path (403).
    assert set(status["best_checkpoint"]) == {"step", "eval_loss"}
    assert isinstance(names["before"], str) and isinstance(names["after"], str)
    assert zipfile.is_zipfile(names["zip_path"]) and names["model_card"]
    assert len(names["ids"]) == 3
    printed = capsys.readouterr().out
    assert "completed" in printed and "Lowest validation loss" in printed
