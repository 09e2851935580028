"""Tab 5, Export: the latest finished run as a zip (model, tokenizer, the run's
config and metrics, and a model card), built by the engine: its best checkpoint
(the lowest validation loss) when it kept one, or its final model; merged, as
LoRA adapters alone, or as GGUF for llama.cpp and Ollama. And the same run
pushed to the Hugging Face Hub with its model card. On a public server that
keeps weights for a while only (runs/disk.py), a run whose weights were removed
says so, and how to keep a model next time."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from finetune.export.bundle import ExportError, export_run, model_card, without_front_matter, zip_name
from finetune.export.checkpoint import default_which, no_best_message
from finetune.export.formats import FORMATS, check_format
from finetune.export.hub import PushError, push
from finetune.runs import disk
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
FORMAT_CHOICES = [(f"{name}: {text}", name) for name, text in FORMATS.items()]
GGUF_CHOICES = [("no GGUF", ""), ("f16", "f16"), ("bf16", "bf16"), ("q8_0 (about half the size)", "q8_0")]
PUSH_INTRO = """### Push to the Hugging Face Hub
The same model (the checkpoint chosen above) goes to a model repository of yours with its model card (the Hub's
metadata: base model, dataset, licence, tags; the loss curve, the scores with their intervals, the diagnoses). The
token needs write access ([huggingface.co/settings/tokens](https://huggingface.co/settings/tokens)); left empty, the
server's `HF_TOKEN` or cached login is used. It is used for this push only and never stored. Without a network the
upload is laid out in the run's folder, ready to push later."""
CHECKPOINT_HELP = ("A run with a validation split keeps its model at the lowest validation loss (setting keep_best); "
                   "without one, the final model is exported.")


@dataclass
class ExportTab:
    which: gr.Radio
    fmt: gr.Dropdown
    build: gr.Button
    file: gr.File
    card: gr.Markdown
    repo: gr.Textbox
    token: gr.Textbox
    private: gr.Checkbox
    adapter_only: gr.Checkbox
    gguf: gr.Dropdown
    push: gr.Button
    pushed: gr.Markdown


def build(lab: Lab) -> ExportTab:
    gr.Markdown(INTRO)
    hours = lab.scheduler.disk.keep_hours
    if hours:  # say it before the weights go, not only after
        gr.Markdown(f"This server keeps a run's model and checkpoints for **{hours:g} hours** after the run ends "
                    "(its record, metrics and comparison stay): export or push what you want to keep before then.",
                    elem_id="export-retention")
    which = gr.Radio(CHECKPOINTS, value="best", label="Checkpoint", info=CHECKPOINT_HELP, elem_id="export-which")
    fmt = gr.Dropdown(FORMAT_CHOICES, value="merged", label="Format", elem_id="export-format")
    button = gr.Button("Build the zip of the latest run", variant="primary")
    # Hidden until there is a zip: an empty file box is a large blank area.
    file = gr.File(label="Trained model (zip)", interactive=False, visible=False)
    with gr.Accordion("Model card", open=True):
        card = gr.Markdown("The model card appears here when the zip is built.", elem_classes="model-card",
                           max_height=640)
    gr.Markdown(PUSH_INTRO)
    with gr.Row():
        repo = gr.Textbox(label="Repository", placeholder="your-name/my-finetuned-model", max_length=96)
        token = gr.Textbox(label="Hugging Face token (write)", type="password", max_length=256)
    with gr.Row():
        # On a public deployment a model is private unless its owner says otherwise.
        private = gr.Checkbox(value=lab.public, label="Private repository")
        adapter_only = gr.Checkbox(value=False, label="Adapters only (LoRA and QLoRA runs)")
        gguf = gr.Dropdown(GGUF_CHOICES, value="", label="Also a GGUF file, with an Ollama Modelfile")
    push_button = gr.Button("Push the latest run to the Hub")
    pushed = gr.Markdown()
    return ExportTab(which, fmt, button, file, card, repo, token, private, adapter_only, gguf, push_button, pushed)


def _finished_run(lab: Lab, owner: str, run_id: str | None, which: str):
    if which not in ("best", "final"):
        raise user_error(f"Choose the best or the final checkpoint, not {which!r}.")
    try:
        shown = lab.run(owner, (run_id or "").strip() or None)
    except NoSuchRun as err:
        raise user_error(err) from None
    if shown is None:
        raise user_error("No run yet: train a model on the Train tab first.")
    if not shown.snapshot.finished:
        raise user_error(f"The run is still {shown.snapshot.status}; export it when it finishes, or stop it.")
    removed = disk.removed_note(shown.folder)
    if removed:
        raise user_error(removed[0].upper() + removed[1:] + ".")
    return shown


def export(lab: Lab, owner: str, run_id: str | None = None, which: str = "best",
           fmt: str = "merged") -> tuple[str, str]:
    """The zip of the caller's run (default: their latest): its best checkpoint
    (or, when it kept none, its final model, saying so) or its final model, in `fmt`."""
    try:
        check_format(fmt)
    except ExportError as err:
        raise user_error(err) from None
    shown = _finished_run(lab, owner, run_id, which)
    snap = shown.snapshot
    note = ""
    if which == "best" and default_which(shown.folder) == "final":
        which, note = "final", f"**{no_best_message(shown.folder)}: this is the final model.**\n\n"
    if snap.status == "failed" and which == "final":  # a crash keeps the best checkpoint saved before it
        raise user_error(f"The run failed, so there is no final model to export: {snap.error}")
    card = model_card(shown.folder, which, fmt)
    try:
        target = export_target(lab, shown.folder, fmt, which)
        path = export_run(shown.folder, target=target, card=card, which=which, fmt=fmt)
    except ExportError as err:
        raise user_error(err) from None
    return str(path), note + without_front_matter(card)


def push_run(lab: Lab, owner: str, run_id: str | None, which: str, repo: str, token: str, private: bool,
             adapter_only: bool, gguf: str) -> str:
    """The caller's run pushed to their Hub repository; Markdown saying where (or why not, in one line)."""
    shown = _finished_run(lab, owner, run_id, which)
    if which == "best" and default_which(shown.folder) == "final":
        which = "final"
    try:
        pushed = push(shown.folder, repo, token=token or None, private=bool(private), adapter_only=bool(adapter_only),
                      gguf=gguf or None, which=which)
    except PushError as err:
        message = str(err)
        if lab.public and err.later:  # a visitor learns the upload is kept, not where the server keeps it
            message = f"{err.reason}; nothing was lost: try again when it works"
        raise user_error(message) from None
    kind = "private" if pushed.private else "public"
    return f"Pushed to [{pushed.url}]({pushed.url}) ({kind}, {len(pushed.files)} files)."


def export_target(lab: Lab, folder: Path, fmt: str = "merged", which: str = "final") -> Path | None:
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
    return Path(tempfile.mkdtemp(dir=exports)) / zip_name(folder, which, fmt)


def wire(lab: Lab, tab: ExportTab, owner_key) -> None:
    def handler(run_id=None, owner_key=None, which="best", fmt="merged", request: gr.Request = None):
        path, card = export(lab, lab.owner(owner_key, request), run_id, which, fmt)
        return {tab.file: path, tab.card: card}

    def push_handler(run_id=None, owner_key=None, which="best", repo="", token="", private=lab.public,
                     adapter_only=False, gguf="", request: gr.Request = None):
        return push_run(lab, lab.owner(owner_key, request), run_id, which, repo, token, private, adapter_only, gguf)

    hidden = gr.Textbox("", visible=False)  # the API's optional run id; the page exports the latest
    # The endpoint returns the plain file path (what API clients want); showing the box is a separate UI step.
    tab.build.click(handler, [hidden, owner_key, tab.which, tab.fmt], [tab.file, tab.card],
                    api_name="export").success(lambda: gr.update(visible=True), None, tab.file,
                                               api_visibility="private")
    tab.push.click(push_handler, [hidden, owner_key, tab.which, tab.repo, tab.token, tab.private, tab.adapter_only,
                                  tab.gguf], tab.pushed, api_name="push_to_hub")
