"""Tab 5, Export: the latest finished run as a zip (model, tokenizer, the run's
config and metrics, and a model card), built by the engine: its best checkpoint
(the lowest validation loss) when it kept one, or its final model."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from finetune.export.bundle import ExportError, export_run, model_card
from finetune.export.checkpoint import default_which, no_best_message
from finetune.runs.records import NoSuchRun
from ui.lab import Lab, user_error

EXPORT_MAX_AGE = 3600  # seconds a public deployment keeps a built zip

INTRO = """### Download the trained model
One zip: the model at the top (`model.safetensors`, `config.json`, tokenizer files; load it with
`AutoModelForCausalLM.from_pretrained`), a model card `README.md` (base model, data, hyperparameters, losses,
which checkpoint with its step and validation loss, before/after examples), and the run's `training/` files
(settings, `metrics.jsonl`, summary, comparison)."""
CHECKPOINTS = [("Best: the lowest validation loss (the star on the loss curve)", "best"),
               ("Final: the last step", "final")]
CHECKPOINT_HELP = ("A run with a validation split keeps its model at the lowest validation loss (setting keep_best); "
                   "without one, the final model is exported.")


@dataclass
class ExportTab:
    which: gr.Radio
    build: gr.Button
    file: gr.File
    card: gr.Markdown


def build(lab: Lab) -> ExportTab:
    gr.Markdown(INTRO)
    which = gr.Radio(CHECKPOINTS, value="best", label="Checkpoint", info=CHECKPOINT_HELP, elem_id="export-which")
    button = gr.Button("Build the zip of the latest run", variant="primary")
    # Hidden until there is a zip: an empty file box is a large blank area.
    file = gr.File(label="Trained model (zip)", interactive=False, visible=False)
    with gr.Accordion("Model card", open=True):
        card = gr.Markdown("The model card appears here when the zip is built.", elem_classes="model-card",
                           max_height=640)
    return ExportTab(which, button, file, card)


def _without_front_matter(card: str) -> str:
    if card.startswith("---"):
        end = card.find("\n---", 3)
        return card[end + 4:].lstrip() if end >= 0 else card
    return card


def export(lab: Lab, owner: str, run_id: str | None = None, which: str = "best") -> tuple[str, str]:
    """The zip of the caller's run (default: their latest): its best checkpoint
    (or, when it kept none, its final model, saying so) or its final model."""
    if which not in ("best", "final"):
        raise user_error(f"Choose the best or the final checkpoint, not {which!r}.")
    try:
        shown = lab.run(owner, (run_id or "").strip() or None)
    except NoSuchRun as err:
        raise user_error(err) from None
    if shown is None:
        raise user_error("No run yet: train a model on the Train tab first.")
    snap = shown.snapshot
    if not snap.finished:
        raise user_error(f"The run is still {snap.status}; export it when it finishes, or stop it.")
    note = ""
    if which == "best" and default_which(shown.folder) == "final":
        which, note = "final", f"**{no_best_message(shown.folder)}: this is the final model.**\n\n"
    if snap.status == "failed" and which == "final":  # a crash keeps the best checkpoint saved before it
        raise user_error(f"The run failed, so there is no final model to export: {snap.error}")
    card = model_card(shown.folder, which)
    try:
        path = export_run(shown.folder, target=export_target(lab, shown.folder), card=card, which=which)
    except ExportError as err:
        raise user_error(err) from None
    return str(path), note + _without_front_matter(card)


def export_target(lab: Lab, folder: Path) -> Path | None:
    """Locally the zip goes beside the run (runs/<id>/export/). In public mode the
    runs folder is never served, so the zip goes to a folder of its own under the
    system's temp folder, from which Gradio hands it to the caller alone; zips
    older than an hour there are deleted first."""
    if not lab.public:
        return None
    exports = Path(tempfile.gettempdir()) / "finetune-lab-exports"
    for old in exports.glob("*/*.zip"):
        if time.time() - old.stat().st_mtime > EXPORT_MAX_AGE:
            shutil.rmtree(old.parent, ignore_errors=True)
    exports.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=exports)) / f"finetuned-{folder.name}.zip"


def wire(lab: Lab, tab: ExportTab, owner_key) -> None:
    def handler(run_id=None, owner_key=None, which="best", request: gr.Request = None):
        path, card = export(lab, lab.owner(owner_key, request), run_id, which)
        return {tab.file: path, tab.card: card}

    hidden = gr.Textbox("", visible=False)  # the API's optional run id; the page exports the latest
    # The endpoint returns the plain file path (what API clients want); showing the box is a separate UI step.
    tab.build.click(handler, [hidden, owner_key, tab.which], [tab.file, tab.card], api_name="export").success(
        lambda: gr.update(visible=True), None, tab.file, api_visibility="private")
