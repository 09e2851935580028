"""build_app(): the five tabs in the order a user works, wired to one Lab."""

from __future__ import annotations

import atexit
import os
import secrets
from pathlib import Path

import gradio as gr

from finetune.data import collected
from finetune.sources import models
from finetune.sources.files import Limits
from finetune.train import config as cfg
from ui import boundary, space
from ui.lab import ASSETS, MIN_KEY_CHARS, REPO_ROOT, Lab
from ui.limits import PUBLIC_MAX_NEW_TOKENS
from ui.tabs import chat_tab, compare_tab, data_tab, experiments_tab, export_tab, lessons_tab, params_tab, train_tab
from ui.views import fields

# runs/ in the checkout the app runs from; None when the lab is installed as a package,
# whose runs go to ./runs in the current folder (never into site-packages).
DEFAULT_OUTPUT_ROOT: Path | None = REPO_ROOT / "runs" if REPO_ROOT is not None else None
DEFAULT_PRESET = "quick-demo"
# The tabs' ids, which a lesson file names to say where its button takes the student.
TAB_IDS = ("data", "params", "train", "compare", "chat", "export", "experiments", "lessons")
HEADER = """<div class="lab-header"><h1>Fine-tuning lab</h1>
<p>Fine-tune a small language model in your browser: pick data, choose settings inside the ranges practice
recommends, watch the loss live, and compare answers before and after.</p></div>"""
CSS = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")


PUBLIC_MAX_FILE_MB = 20
PUBLIC_QUEUE_SIZE = 64
PUBLIC_CACHE_CLEANUP = (3600, 3600)  # every hour, delete uploads and exports older than an hour
# Gradio keeps one SessionState per session: a config copy of every block, about
# 380 KB here, and an API call that sends no session hash makes a new one each
# time. Its default of 10,000 kept sessions let a script polling over REST grow
# the server by gigabytes; the least recently used ones beyond this are dropped.
SESSIONS_KEPT = 1000
# After every event Gradio rebuilds a pandas summary of its last 10,000 events
# for a monitoring page this app turns off; past a few thousand events that cost
# tens of ms of server CPU per call. Summarise rarely, remember few.
QUEUE_ANALYTICS = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "100000", "GRADIO_ANALYTICS_MAX_EVENTS": "100"}


def is_public_deployment() -> bool:
    """A Hugging Face Space (it sets SPACE_ID) or an operator's FINETUNE_PUBLIC=1."""
    return os.environ.get("FINETUNE_PUBLIC") == "1" or bool(os.environ.get("SPACE_ID"))


def default_output_root() -> Path:
    """runs/ beside the app (./runs in the current folder for an installed lab); on a
    Space with persistent storage, /data/runs (kept across restarts)."""
    beside = DEFAULT_OUTPUT_ROOT if DEFAULT_OUTPUT_ROOT is not None else Path.cwd() / "runs"
    return space.runs_root(beside, space.persistent_storage())


def operator_model_roots() -> tuple[Path, ...]:
    """Folders an operator allows models to be loaded from (FINETUNE_MODEL_DIRS, colon-separated)."""
    return tuple(Path(p).expanduser() for p in os.environ.get("FINETUNE_MODEL_DIRS", "").split(os.pathsep) if p)


def _default_roots(default_model: str, public: bool, output_root: Path | None = None) -> tuple[Path, ...] | None:
    """Local model folders the app may load. On a workstation any folder (None);
    in a public deployment only the model cache (the bundled default), the
    default model's own folder, the operator's allow-list and the runs folder
    (a run continued from another: each person only from their own runs, checked
    by ui/tabs/continuing.check_own_model)."""
    if not public and not operator_model_roots():
        return None
    roots = [models.cache_root(), *operator_model_roots(), *([output_root] if output_root is not None else [])]
    if Path(default_model).expanduser().is_dir():
        roots.append(Path(default_model).expanduser())
    return tuple(roots)


def public_limits() -> Limits:
    limits = Limits()
    return Limits(max_file_bytes=min(limits.max_file_bytes, PUBLIC_MAX_FILE_MB * 2**20),
                  max_records=limits.max_records)


def browser_secret(output_root: Path) -> str:
    """The key the browser's copy of the owner key is encrypted with, kept with the
    runs so that a restarted server still reads its browsers' keys."""
    path = Path(output_root) / ".browser-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def new_owner_key(key: str) -> str:
    """A browser's first visit gets an unguessable owner key; later visits keep theirs."""
    return key if key and len(key) >= MIN_KEY_CHARS else secrets.token_urlsafe(24)


def build_app(default_model: str = models.DEFAULT_SPEC, output_root: str | Path | None = None,
              allowed_model_roots: tuple[Path, ...] | None = None, preset: str = DEFAULT_PRESET,
              limits: Limits | None = None, assets: Path = ASSETS, public: bool | None = None,
              run_callbacks: tuple = ()) -> gr.Blocks:
    """`run_callbacks`: TrainerCallbacks given to every run (tests hold runs at a known step)."""
    public = is_public_deployment() if public is None else public
    for name, value in QUEUE_ANALYTICS.items():  # read when the queue is made, as the Blocks closes
        os.environ.setdefault(name, value)
    output_root = Path(output_root or default_output_root())
    roots = allowed_model_roots if allowed_model_roots is not None else _default_roots(default_model, public,
                                                                                        output_root)
    lab = Lab(default_model, output_root, roots, limits or (public_limits() if public else Limits()), assets,
              public=public, run_callbacks=run_callbacks)
    # Runs train in daemon threads: stop them before the interpreter finalizes, or torch aborts the exit.
    atexit.register(lab.scheduler.shutdown)
    initial = cfg.build({"model": default_model}, preset=preset, allow_out_of_range=True).config
    # Every setting's widget, made before any tab is laid out; each tab renders its own.
    settings = fields.make_widgets(initial, {**data_tab.widget_options(initial), **params_tab.widget_options()})
    with gr.Blocks(title="Fine-tuning lab", analytics_enabled=False,
                   delete_cache=PUBLIC_CACHE_CLEANUP if public else None) as demo:
        gr.HTML(HEADER)
        if public:  # what is shared and capped here, and how to get a private copy
            gr.Markdown(space.public_notice(os.environ.get("SPACE_ID"), PUBLIC_MAX_NEW_TOKENS),
                        elem_id="public-notice")
        # The caller's owner key, kept in the browser so a reload finds its runs again.
        owner_key = gr.BrowserState("", storage_key="finetune-lab-owner", secret=browser_secret(output_root))
        demo.load(new_owner_key, owner_key, owner_key, api_visibility="private")
        with gr.Tabs() as tabs:
            with gr.Tab("1 · Data", id="data"):
                data = data_tab.build(lab, settings)
            with gr.Tab("2 · Hyperparameters", id="params") as params_block:
                params = params_tab.build(lab, settings, preset)
            with gr.Tab("3 · Train", id="train"):
                train = train_tab.build(lab)
            with gr.Tab("4 · Compare", id="compare"):
                compare = compare_tab.build(lab, initial.max_new_tokens)
            with gr.Tab("4b · Chat", id="chat") as chat_block:
                chat = chat_tab.build(lab, initial.max_new_tokens)
            with gr.Tab("5 · Export", id="export"):
                export = export_tab.build(lab)
            with gr.Tab("6 · Experiments", id="experiments") as experiments_block:
                experiments = experiments_tab.build(lab)
            with gr.Tab("7 · Lessons", id="lessons"):
                lessons = lessons_tab.build(assets / "lessons", TAB_IDS)
        fields.check_all_placed(settings)
        data_tab.wire(lab, data, settings, owner_key, demo)
        params_tab.wire(lab, params, settings, data.facts, shown=params_block)
        train_tab.wire(lab, train, data, params, settings, compare, owner_key, demo)
        compare_tab.wire(lab, compare, settings, data, owner_key)
        chat_tab.wire(lab, chat, owner_key, chat_block)
        export_tab.wire(lab, export, owner_key)
        experiments_tab.wire(lab, experiments, data, params, settings, owner_key, experiments_block)
        lessons_tab.wire(lab, lessons, tabs, data, params, settings, owner_key)
    if public:
        demo.queue(max_size=PUBLIC_QUEUE_SIZE)  # beyond this, new requests are turned away, not queued forever
    boundary.install(demo)  # every raw value checked, and a bad one named, before Gradio converts it
    return demo


def theme() -> gr.themes.Base:
    # System fonts: the app must look right offline, where web fonts cannot load.
    return gr.themes.Soft(primary_hue="orange", secondary_hue="blue", neutral_hue="slate",
                          font=("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"),
                          font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "monospace"))


def launch_options(output_root: str | Path | None = None, limits: Limits | None = None,
                   public: bool | None = None) -> dict:
    """The launch() arguments the app needs: look and upload size cap. Locally the
    runs folder is served (exported zips live there); in a public deployment no
    run folder is ever served (zips are handed out through Gradio's cache, to the
    caller only), tracebacks stay hidden, and monitoring and MCP are off."""
    public = is_public_deployment() if public is None else public
    limits = limits or (public_limits() if public else Limits())
    root = Path(output_root or default_output_root())
    served = [] if public else [str(root)]
    options = {"theme": theme(), "css": CSS, "max_file_size": limits.max_file_bytes, "allowed_paths": served,
               "blocked_paths": [str((root / collected.FOLDER).resolve())],  # people's chat data: never served
               "footer_links": ["api", "gradio"], "show_error": False, "enable_monitoring": False,
               "mcp_server": False, "state_session_capacity": SESSIONS_KEPT}
    if public:
        options.update(ssr_mode=False, max_threads=40)
    return options
