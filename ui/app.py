"""build_app(): the five tabs in the order a user works, wired to one Lab."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from finetune import config as cfg
from finetune import models
from finetune.files import Limits
from ui import compare_tab, data_tab, export_tab, params_tab, train_tab
from ui.lab import ASSETS, REPO_ROOT, Lab

DEFAULT_OUTPUT_ROOT = REPO_ROOT / "runs"
DEFAULT_PRESET = "quick-demo"
HEADER = """<div class="lab-header"><h1>Fine-tuning lab</h1>
<p>Fine-tune a small language model in your browser: pick data, choose settings inside the ranges practice
recommends, watch the loss live, and compare answers before and after.</p></div>"""
CSS = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")


def _default_roots(default_model: str, output_root: Path) -> tuple[Path, ...]:
    """Local model folders the app may load: its own runs, the model cache, and the default model's folder."""
    roots = [output_root, models.cache_root()]
    if Path(default_model).expanduser().is_dir():
        roots.append(Path(default_model).expanduser())
    return tuple(roots)


def build_app(default_model: str = models.DEFAULT_SPEC, output_root: str | Path | None = None,
              allowed_model_roots: tuple[Path, ...] | None = None, preset: str = DEFAULT_PRESET,
              limits: Limits | None = None, assets: Path = ASSETS) -> gr.Blocks:
    output_root = Path(output_root or DEFAULT_OUTPUT_ROOT)
    roots = allowed_model_roots if allowed_model_roots is not None else _default_roots(default_model, output_root)
    lab = Lab(default_model, output_root, roots, limits or Limits(), assets)
    initial = cfg.build({"model": default_model}, preset=preset, allow_out_of_range=True)
    settings: dict = {}  # config field name -> its widget, filled by the tabs from the config metadata
    with gr.Blocks(title="Fine-tuning lab", analytics_enabled=False) as demo:
        gr.HTML(HEADER)
        with gr.Tabs():
            with gr.Tab("1 · Data", id="data"):
                data = data_tab.build(lab, initial, settings)
            with gr.Tab("2 · Hyperparameters", id="params"):
                params = params_tab.build(lab, initial, settings, preset)
            with gr.Tab("3 · Train", id="train"):
                train = train_tab.build(lab)
            with gr.Tab("4 · Compare", id="compare"):
                compare = compare_tab.build(lab, initial)
            with gr.Tab("5 · Export", id="export"):
                export = export_tab.build(lab)
        data_tab.wire(lab, data, settings, demo)
        params_tab.wire(lab, params, settings, data.facts)
        train_tab.wire(lab, train, data, params, settings, compare, demo)
        compare_tab.wire(lab, compare, settings, data)
        export_tab.wire(lab, export)
    return demo


def theme() -> gr.themes.Base:
    # System fonts: the app must look right offline, where web fonts cannot load.
    return gr.themes.Soft(primary_hue="orange", secondary_hue="blue", neutral_hue="slate",
                          font=("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"),
                          font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "monospace"))


def launch_options(output_root: str | Path | None = None, limits: Limits | None = None) -> dict:
    """The launch() arguments the app needs: look, upload size cap, and the runs folder
    (exported zips live there, and Gradio serves only files from allowed folders)."""
    limits = limits or Limits()
    return {"theme": theme(), "css": CSS, "max_file_size": limits.max_file_bytes,
            "allowed_paths": [str(Path(output_root or DEFAULT_OUTPUT_ROOT))], "footer_links": ["api", "gradio"]}
