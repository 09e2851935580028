"""Tab 5, Export: the latest finished run as a zip (model, tokenizer, the run's
config and metrics, and a model card), built by the engine."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from finetune.export import ExportError, export_run, model_card
from ui.lab import Lab, user_error

INTRO = """### Download the trained model
One zip: the model at the top (`model.safetensors`, `config.json`, tokenizer files; load it with
`AutoModelForCausalLM.from_pretrained`), a model card `README.md` (base model, data, hyperparameters, final
losses, before/after examples), and the run's `training/` files (settings, `metrics.jsonl`, summary, comparison)."""


@dataclass
class ExportTab:
    build: gr.Button
    file: gr.File
    card: gr.Markdown


def build(lab: Lab) -> ExportTab:
    gr.Markdown(INTRO)
    button = gr.Button("Build the zip of the latest run", variant="primary")
    # Hidden until there is a zip: an empty file box is a large blank area.
    file = gr.File(label="Trained model (zip)", interactive=False, visible=False)
    with gr.Accordion("Model card", open=True):
        card = gr.Markdown("The model card appears here when the zip is built.", elem_classes="model-card",
                           max_height=640)
    return ExportTab(button, file, card)


def _without_front_matter(card: str) -> str:
    if card.startswith("---"):
        end = card.find("\n---", 3)
        return card[end + 4:].lstrip() if end >= 0 else card
    return card


def export(lab: Lab) -> tuple[str, str]:
    run = lab.latest_run()
    if run is None:
        raise user_error("No run yet: train a model on the Train tab first.")
    snap = run.snapshot()
    if not snap.finished:
        raise user_error(f"The run is still {snap.status}; export it when it finishes, or stop it.")
    if snap.status == "failed":
        raise user_error(f"The run failed, so there is no model to export: {snap.error}")
    card = model_card(run.folder.root)
    try:
        path = export_run(run.folder.root, card=card)
    except ExportError as err:
        raise user_error(err) from None
    return str(path), _without_front_matter(card)


def wire(lab: Lab, tab: ExportTab) -> None:
    # The endpoint returns the plain file path (what API clients want); showing the box is a separate UI step.
    def handler():
        path, card = export(lab)
        return {tab.file: path, tab.card: card}

    tab.build.click(handler, None, [tab.file, tab.card], api_name="export").success(
        lambda: gr.update(visible=True), None, tab.file, api_visibility="private")
