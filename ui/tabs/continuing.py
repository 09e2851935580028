"""Continue from a run: a finished run's best (or final) model becomes the
Model setting of the next run, from the Compare and Experiments tabs' button
or the /continue_from endpoint. The run's folder is the model (export/
continuing.py; a LoRA run's best adapters are merged into best-merged/ in its
folder once), and the next run's record names the run as its parent.

Whose runs: the scheduler's owner check, as for every run action. In public
mode a model folder inside the runs folder loads only for the run's owner
(check_own_model, on every path a model setting takes: loading data, starting
a run or a sweep, the judge, asking a question); the runs folder is among the
allowed model roots for this (ui/app.py)."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from finetune.export.checkpoint import WHICH, ExportError
from finetune.export.continuing import continue_model
from finetune.runs.records import NO_SUCH_RUN, NoSuchRun, run_holding
from finetune.sources.files import looks_like_path
from finetune.sources.models import ModelError
from ui.lab import Lab, user_error

CHOICES = [("Best checkpoint", "best"), ("Final model", "final")]
HELP = ("The best checkpoint is the model at the run's lowest validation loss (a run without one gives its final "
        "model); a LoRA run's best adapters are merged over its base once, kept in its folder as best-merged/.")


def model_setting(folder: Path) -> str:
    """The Model setting naming `folder`: relative to the server's working folder when it is
    inside it (runs/<id>/best), else the whole path; either loads the same."""
    try:
        relative = Path(os.path.relpath(folder.resolve(), Path.cwd().resolve()))
    except ValueError:  # another drive (Windows)
        return str(folder.resolve())
    return relative.as_posix() if not relative.as_posix().startswith("..") else str(folder.resolve())


def continue_from(lab: Lab, owner: str, run_id: str | None, which: str = "best") -> dict:
    """{model, parent: {run_id, which}, message}: the Model setting that starts the next run
    from the caller's finished run `run_id` (default: their latest), or one line saying why not."""
    if which not in WHICH:
        raise user_error(f"which: {which!r} is not one of {', '.join(WHICH)}")
    try:
        shown = lab.run(owner, (run_id or "").strip() or None)
    except NoSuchRun as err:
        raise user_error(err) from None
    if shown is None:
        raise user_error("You have no run to continue from yet: train one on the Train tab.")
    snap = shown.snapshot
    if not snap.finished:
        raise user_error(f"Run {snap.run_id} is still {snap.status}: continue from it once it has ended.")
    try:
        folder, taken = continue_model(shown.folder, which, progress=lambda text: gr.Info(text))
        model = model_setting(folder)
        lab.resolve(model)  # loadable here: the folder is a model, under the allowed model roots
    except (ExportError, ModelError) as err:
        raise user_error(err) from None
    note = "" if taken == which else f" ({snap.run_id} kept no best checkpoint: its final model instead)"
    return {"model": model, "parent": {"run_id": snap.run_id, "which": taken},
            "message": f"The next run starts from run {snap.run_id}'s {_named(taken)}{note}: its Model setting is "
                       f"now {model}. Load the data (preference pairs for DPO), choose the objective on the "
                       "Hyperparameters tab, and start training; the new run's record names this run as its parent."}


def _named(which: str) -> str:
    return "best checkpoint" if which == "best" else "final model"


def check_own_model(lab: Lab, owner: str, spec: str | None) -> None:
    """In public mode, a model (or judge) setting inside the runs folder names one of the
    caller's own runs: someone else's run, or anything else in there, is "no such run"."""
    spec = (spec or "").strip()
    if not lab.public or not spec or not looks_like_path(spec):
        return
    path = Path(spec).expanduser()
    try:
        inside = path.resolve().is_relative_to(lab.output_root.resolve())
    except OSError:
        return
    if not inside:
        return
    run_id = run_holding(lab.output_root, path)
    try:
        if run_id is None:
            raise NoSuchRun(NO_SUCH_RUN)
        lab.scheduler.record(run_id, owner)
    except NoSuchRun as err:
        raise user_error(f"model: {err}") from None


def wire_button(lab: Lab, button: gr.Button, run: gr.components.Component, which: gr.Radio, note: gr.Markdown,
                model: gr.Textbox, owner_key) -> None:
    """A tab's "Continue from this run": the run picked there becomes the Model setting."""
    def handler(run_id, which, owner_key=None, request: gr.Request = None):
        found = continue_from(lab, lab.owner(owner_key, request), run_id, which)
        gr.Info(found["message"])
        return {model: found["model"], note: found["message"]}

    button.click(handler, [run, which, owner_key], [model, note], api_visibility="private")


def wire_api(lab: Lab) -> None:
    def continue_from_run(run_id: str | None = None, which: str = "best", owner_key: str | None = None,
                          request: gr.Request = None) -> dict:
        """Start the next run from a finished run of yours: its best checkpoint (or final model).
        Gives the `model` to start it with, the `parent` its record will name, and a message."""
        return continue_from(lab, lab.owner(owner_key, request), run_id, which)

    gr.api(continue_from_run, api_name="continue_from")
