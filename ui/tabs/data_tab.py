"""Tab 1, Data: choose a dataset (bundled, uploaded, or from the Hub), see how
the engine reads it (format, columns, records), one example as the model sees
it with the trained tokens marked (for preference data its prompt with the
chosen and the rejected reply side by side, as TRL's trainer tokenizes them),
lengths, the split, and the data advice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from finetune.data import dataset
from finetune.data.collected import CollectedData
from finetune.data.formats import FORMATS, MAPPED_FORMAT
from finetune.sources.files import SUFFIXES, DataError, load_table, looks_like_path
from finetune.sources.hub_token import redact
from finetune.sources.models import ModelError
from finetune.train import config as cfg
from ui.lab import Lab, user_error
from ui.tabs import continuing
from ui.views import fields, plots
from ui.views.data_views import (
    FORMAT_HINT,
    MODEL_HINT,
    SIDE_COLORS,
    advice_view,
    details,
    empty_highlight,
    first_pair,
    highlighted_example,
    lengths,
    preview_update,
    run_facts,
    side_views,
    summary_markdown,
)

SOURCES = [("Bundled dataset", "bundled"), ("Upload a file", "upload"), ("Hugging Face Hub dataset", "hub"),
           ("My chat pairs (Chat tab)", "chat-pairs"), ("My edited answers (Chat tab)", "chat-sft")]
CHAT_SOURCES = {"chat-pairs": "pairs", "chat-sft": "sft"}  # the caller's own files from the Chat tab, by kind
# The Data tab's config fields: how records become examples, their length, and the split.
LAYOUT_FIELDS = ("template", "system_prompt", "max_length", "overlong", "held_out", "validation_fraction")
COLUMN_FIELDS = ("prompt_column", "response_column", "system_column", "rejected_column")


@dataclass
class DataTab:
    source: gr.Radio
    bundled: gr.Dropdown
    file: gr.File
    hub_id: gr.Textbox
    token: gr.Textbox
    load: gr.Button
    summary: gr.Markdown
    advice: gr.HTML  # the engine's data advice on the prepared split: counts, examples, what to do
    preview: gr.Dataframe
    example: gr.HighlightedText
    histogram: gr.Plot
    details: gr.JSON
    facts: gr.State  # this session's dataset facts for the run summary: examples and tokens per objective
    prepared: gr.State  # this session's PreparedData from the last load, reused by a start with the same data
    # Preference data: the first training example's two sides, each with its prompt (chosen | rejected;
    # KTO's one reply, desirable or undesirable, in the first), drawn when `sides` changes. Not outputs of
    # /load_dataset itself, so its answer stays as documented.
    chosen: gr.HighlightedText = None
    rejected: gr.HighlightedText = None
    sides: gr.State = None  # data_views.first_pair of the last load: None for supervised data

    def source_inputs(self) -> dict:
        """The dataset source controls, by the parameter names the API shows."""
        return {"source": self.source, "file": self.file, "bundled_dataset": self.bundled,
                "hub_dataset": self.hub_id, "hub_token": self.token}

    def load_outputs(self, settings: dict) -> list:
        """Everything a load (load_dataset) updates, in the order /load_dataset answers (the States
        are not in its answer): any event that loads data (this tab's, a lesson's) gives them all."""
        return [self.summary, settings["format"], *(settings[n] for n in COLUMN_FIELDS), self.preview,
                self.example, self.histogram, self.advice, self.details, self.facts, self.prepared, self.sides]


def is_mapped(format_name: str) -> bool:
    """Whether a format needs the column pickers."""
    return format_name in FORMATS and FORMATS[format_name].mapped


def widget_options(initial: cfg.TrainConfig) -> dict[str, dict]:
    """The config fields this tab lays out, with their layout arguments."""
    return {"model": {}, "format": dict(scale=1, min_width=180),
            **{n: dict(choices=[""], allow_custom_value=True, visible=is_mapped(initial.format), scale=1,
                       min_width=160) for n in COLUMN_FIELDS},
            **{n: dict(min_width=220) for n in LAYOUT_FIELDS}}


def build(lab: Lab, settings: dict) -> DataTab:
    """Lay out the tab, rendering its config-field widgets from `settings`."""
    def add(name):
        return settings[name].render()

    limit_mb = lab.limits.max_file_bytes / 2**20
    has_bundled = bool(lab.bundled)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            source = gr.Radio(SOURCES, value="bundled" if has_bundled else "upload", label="Dataset source")
            bundled = gr.Dropdown(list(lab.bundled), value=lab.default_dataset, label="Bundled dataset",
                                  info="Shipped with the app in assets/.", visible=has_bundled)
            file = gr.File(label=f"Dataset file (JSON, JSONL, CSV or Parquet; up to {limit_mb:.0f} MB)",
                           file_types=list(SUFFIXES), type="filepath", visible=not has_bundled, height=120,
                           elem_id="dataset-file")
            hub_id = gr.Textbox("", label="Hub dataset id", placeholder="e.g. tatsu-lab/alpaca (needs a network)",
                                info="Its 'train' split is used.", visible=False)
        with gr.Column(scale=2, min_width=260):
            add("model")
            token = gr.Textbox("", label="Hub token (optional)", type="password", placeholder="hf_...",
                               info="Only for gated or private models and datasets; never stored or logged.")
    with gr.Row():
        add("format")
        for name in COLUMN_FIELDS:
            add(name)
    with gr.Accordion("Rendering, length and split", open=False):
        with gr.Row():
            for name in LAYOUT_FIELDS:
                add(name)
    load = gr.Button("Load and inspect", variant="primary")
    summary = gr.Markdown("Choose a dataset and press **Load and inspect**.", elem_id="data-summary",
                          elem_classes="data-summary")
    advice = gr.HTML("", elem_id="data-advice")
    with gr.Row(equal_height=False):  # preference data: the two sides of one example, side by side
        chosen = gr.HighlightedText(empty_highlight(), label="Chosen", color_map=SIDE_COLORS, show_legend=True,
                                    combine_adjacent=True, visible=False, elem_id="pair-chosen",
                                    elem_classes="rendered-example", min_width=320)
        rejected = gr.HighlightedText(empty_highlight(), label="Rejected", color_map=SIDE_COLORS, show_legend=True,
                                      combine_adjacent=True, visible=False, elem_id="pair-rejected",
                                      elem_classes="rendered-example", min_width=320)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            example = gr.HighlightedText(empty_highlight(), label="One training example as the model sees it",
                                         color_map={"trained": "#16a34a", "prompt (masked)": "#cbd5e1"},
                                         show_legend=True, combine_adjacent=True, elem_classes="rendered-example")
        with gr.Column(scale=1, min_width=320):
            histogram = gr.Plot(plots.length_histogram([], settings["max_length"].value), label="Lengths",
                                show_label=False)
    preview = gr.Dataframe(label="Records (first 50)", wrap=True, max_height=360, interactive=False)
    with gr.Accordion("Details (JSON)", open=False):
        details_json = gr.JSON(label="Dataset report")
    return DataTab(source, bundled, file, hub_id, token, load, summary, advice, preview, example, histogram,
                   details_json, gr.State(None), gr.State(None), chosen, rejected, gr.State(None))


def dataset_source(lab: Lab, owner: str, source: str, file, bundled: str, hub: str) -> tuple[str, str]:
    """The engine's `data` value for the chosen source, and its name for people.
    Only bundled files, the caller's own uploads and hub ids pass."""
    if source == "upload":
        if not file:
            raise user_error("upload a dataset file first (JSON, JSONL, CSV or Parquet)")
        return str(lab.claim_upload(str(file), owner)), Path(file).name
    if source in CHAT_SOURCES:  # the caller's own chat data (finetune.data.collected): no one else's
        path = CollectedData(lab.output_root, owner).available().get(CHAT_SOURCES[source])
        if path is None:
            raise user_error("nothing saved from your chats yet: on the Chat tab, mark the better answer of a turn "
                             "(pairs) or edit an answer into the one you wanted")
        return str(path), f"{path.name} (from your chats)"
    if source == "hub":
        hub = (hub or "").strip()
        if not hub or looks_like_path(hub):
            raise user_error(f"{hub!r} is not a hub dataset id such as tatsu-lab/alpaca")
        return hub, hub
    if bundled not in lab.bundled:
        raise user_error(f"no bundled dataset {bundled!r}; choose one of: {', '.join(lab.bundled) or 'none'}")
    return str(lab.bundled[bundled]), bundled


def load_dataset(lab: Lab, tab: DataTab, settings: dict, owner: str, source, file, bundled_dataset, hub_dataset,
                 hub_token, **values) -> dict:
    """Read and inspect a dataset with the engine; a file that cannot be read is an error, a
    format that cannot be told is shown with the table so the columns can be mapped."""
    token = hub_token or None
    data, name = dataset_source(lab, owner, source, file, bundled_dataset, hub_dataset)
    try:
        config = fields.build_config({**values, "data": data}, allow=True).config
        continuing.check_own_model(lab, owner, config.model)  # public: only one's own runs' models
        table = load_table(data, token=token, limits=lab.limits)
    except (cfg.ConfigError, DataError) as err:
        raise user_error(err, token) from None
    shown = {**{settings[n]: gr.update(choices=[""] + table.columns) for n in COLUMN_FIELDS},
             tab.preview: preview_update(table)}
    try:
        with lab.tokenizer(config.model, token) as tokenizer:
            prepared = dataset.prepare(config, tokenizer, token=token, limits=lab.limits, table=table)
            example = highlighted_example(tokenizer, config, prepared.split.train[0])
            sides = first_pair(tokenizer, prepared)
    except (DataError, ModelError) as err:
        message = redact(str(err), token)
        gr.Warning(message)
        # Undetected: offer the column mapping at once (the pickers show for a mapped format).
        # A model that cannot load says nothing about the format: leave the format as it is.
        unreadable = isinstance(err, DataError) and config.format == "auto"
        fmt = gr.update(label="Format (not detected: map the columns)", value=MAPPED_FORMAT) \
            if unreadable else gr.update(label="Format")
        hint = MODEL_HINT if isinstance(err, ModelError) else FORMAT_HINT
        return {**shown, tab.summary: summary_markdown(name, table, None, message, hint), settings["format"]: fmt,
                tab.example: empty_highlight(), tab.histogram: plots.length_histogram([], config.max_length),
                tab.advice: "", tab.details: {"source": name, "columns": table.columns, "error": message},
                tab.facts: None, tab.prepared: None, tab.sides: None}
    counted, what = lengths(prepared)
    return {**shown, tab.summary: summary_markdown(name, table, prepared),
            settings["format"]: gr.update(label=f"Format (detected: {prepared.format})"), tab.example: example,
            tab.histogram: plots.length_histogram(counted, config.max_length, what),
            tab.advice: advice_view(prepared), tab.details: details(name, table, prepared),
            tab.facts: run_facts(config, prepared), tab.prepared: prepared, tab.sides: sides}


def wire(lab: Lab, tab: DataTab, settings: dict, owner_key, demo: gr.Blocks) -> None:
    data_settings = {f.name: settings[f.name] for f in cfg.fields()
                     if f.metadata["group"] == "data" and f.name in settings}
    data_settings["seed"] = settings["seed"]  # the split is drawn with the run's seed
    outputs = tab.load_outputs(settings)
    inputs = {**tab.source_inputs(), **data_settings, "owner_key": owner_key}

    # `file=None` in the signature makes the file optional for API clients using another source.
    def handler(source, file=None, bundled_dataset=None, hub_dataset="", hub_token="", owner_key=None,
                request: gr.Request = None, **values):
        return load_dataset(lab, tab, settings, lab.owner(owner_key, request), source, file, bundled_dataset,
                            hub_dataset, hub_token, **values)

    tab.load.click(handler, inputs_kwargs=inputs, outputs=outputs, api_name="load_dataset")
    # The same action, triggered by the user's own choices (`input`/`upload`/`release`
    # fire only for the user, so the updates above never loop back here).
    private = dict(inputs_kwargs=inputs, outputs=outputs, api_visibility="private")
    gr.on([tab.bundled.input, settings["format"].input, *(settings[n].input for n in COLUMN_FIELDS),
           settings["template"].input, settings["overlong"].input, settings["max_length"].release,
           settings["held_out"].release, settings["validation_fraction"].release],
          handler, **private)
    tab.file.upload(lambda: "upload", None, tab.source, api_visibility="private").then(handler, **private)

    def chat_source(source, request: gr.Request = None, **values):
        """Picking one's chat data loads it at once: there is nothing else to choose."""
        return handler(source, request=request, **values) if source in CHAT_SOURCES else {}

    tab.source.input(chat_source, **private)
    tab.source.change(
        lambda s: {tab.bundled: gr.update(visible=s == "bundled"), tab.file: gr.update(visible=s == "upload"),
                   tab.hub_id: gr.update(visible=s == "hub")},
        tab.source, [tab.bundled, tab.file, tab.hub_id], api_visibility="private")
    tab.sides.change(side_views, tab.sides, [tab.example, tab.chosen, tab.rejected], api_visibility="private")
    settings["format"].change(lambda f: {settings[n]: gr.update(visible=is_mapped(f)) for n in COLUMN_FIELDS},
                              settings["format"], [settings[n] for n in COLUMN_FIELDS], api_visibility="private")
    if lab.default_dataset:  # a first visit shows the preselected demo data without a click
        demo.load(handler, **private)
