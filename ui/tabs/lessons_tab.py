"""Tab 7, Lessons: the tutorial's exercises, read from assets/lessons/ (one
Markdown file each, see finetune/experiments/lessons.py). Each lesson explains, has one
button that loads its preset and data and opens the tab to work on, says what
to look at, and answers its question from the student's own runs.

The button reuses the Hyperparameters tab's preset logic (fields.preset_values,
fields.range_update) and the Data tab's loader (data_tab.load_dataset), so a
lesson sets exactly what choosing the preset and the data by hand would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from finetune.experiments import compare as experiments
from finetune.experiments import lessons
from finetune.experiments.lessons import Lesson, LessonError
from finetune.memory import model_shape, tutorial
from finetune.sources import models
from finetune.sources.models import ModelError
from finetune.train import config as cfg
from finetune.train import device
from finetune.train.presets import PRESETS
from ui.lab import Lab, user_error
from ui.tabs.data_tab import COLUMN_FIELDS, load_dataset
from ui.tabs.params_tab import PRESET_NOTES
from ui.views import fields

INTRO = """### Lessons
The four exercises of the tutorial this lab is built on, on the bundled demo data and the default model. Each
lesson's button loads its settings and opens the tab to work on; **Show my answer** answers the lesson's
question from the numbers of your own runs."""


@dataclass
class LessonWidgets:
    lesson: Lesson
    preset: gr.Dropdown | None  # a choice when the lesson has several presets
    load: gr.Button
    show: gr.Button
    answer: gr.Markdown


@dataclass
class LessonsTab:
    lessons: list[LessonWidgets]
    problem: str | None  # why the lessons could not be read, shown instead of them


def read_lessons(folder: Path, tabs) -> tuple[list[Lesson], str | None]:
    """The lessons, or none and the reason: a bad lesson file must not stop the app."""
    try:
        return lessons.load_lessons(folder, tabs), None
    except LessonError as err:
        return [], f"The lessons could not be read: {err}"


def build(folder: Path, tabs) -> LessonsTab:
    found, problem = read_lessons(folder, tabs)
    gr.Markdown(INTRO)
    if problem or not found:
        gr.Markdown(f"<div class='lab-error'>{problem or 'No lessons in ' + folder.name + '/.'}</div>")
    widgets = [_lesson(lesson, i == 0) for i, lesson in enumerate(found)]
    return LessonsTab(widgets, problem)


def _lesson(lesson: Lesson, first: bool) -> LessonWidgets:
    with gr.Accordion(lesson.title, open=first, elem_id=f"lesson-{lesson.slug}"):
        gr.Markdown(lesson.explanation)
        if lesson.answer == "memory":  # the tutorial's arithmetic, as the estimator works it out
            gr.Code(tutorial.tutorial_text(), language=None, label="The tutorial's 7B run, term by term",
                    wrap_lines=True, interactive=False)
        preset = None
        with gr.Row(equal_height=True):
            if len(lesson.presets) > 1:
                preset = gr.Dropdown(list(lesson.presets), value=lesson.presets[0], label="Preset", scale=1,
                                     min_width=180)
            load = gr.Button(lesson.button, variant="primary", scale=2, elem_id=f"lesson-load-{lesson.slug}")
        if lesson.look_at:
            gr.Markdown("#### What to look at\n" + lesson.look_at)
        gr.Markdown("#### Question\n" + lesson.question)
        show = gr.Button("Show my answer", scale=0, min_width=160, elem_id=f"lesson-answer-{lesson.slug}")
        answer = gr.Markdown("", elem_id=f"lesson-answer-text-{lesson.slug}")
    return LessonWidgets(lesson, preset, load, show, answer)


# --------------------------------------------------------------------------- the button


def bundled_name(lab: Lab, data: str | None) -> str | None:
    """The bundled dataset a preset's data file is, by its name in the Data tab's list."""
    if not data:
        return None
    wanted = Path(data).resolve()
    return next((name for name, path in lab.bundled.items() if path.resolve() == wanted), None)


def lesson_settings(lab: Lab, lesson: Lesson, preset: str | None, current: dict) -> dict:
    """What the lesson's button sets: every tunable setting from the preset, the
    allow switch (on when the preset goes outside the recommended ranges, as the
    fail-* presets do on purpose), the bundled dataset and the tab to open.
    LessonError when the preset is not one this app has."""
    preset = preset or (lesson.presets[0] if lesson.presets else None)
    if preset is None:
        return {"preset": None, "values": {}, "allow": None, "bundled": None, "tab": lesson.tab}
    if preset not in lesson.presets:
        raise LessonError(f"{preset!r} is not one of this lesson's presets ({', '.join(lesson.presets)})")
    if preset not in PRESETS:
        raise LessonError(f"this version of the app has no preset {preset!r} yet (it has: "
                          f"{', '.join(PRESETS)}); ask your instructor, or try another of the lesson's presets")
    try:
        cfg.build(preset=preset, allow_out_of_range=False)
        allow = False
    except cfg.ConfigError:
        allow = True
    return {"preset": preset, "values": fields.preset_values(preset, current), "allow": allow,
            "bundled": bundled_name(lab, PRESETS[preset].get("data")), "tab": lesson.tab}


def setting_updates(settings: dict, loaded: dict, default_model: str) -> dict:
    """Widget updates for the loaded values; the data source is reset to the
    bundled file (format auto, no column mapping, the default model) when the
    preset names one, so a student's earlier upload cannot break the lesson."""
    values = loaded["values"]
    method = values.get("method", "full")
    updates = {settings[n]: fields.range_update(cfg.field_by_name(n), v, method, loaded["allow"])
               if fields.is_number(cfg.field_by_name(n)) else gr.update(value=v) for n, v in values.items()}
    if loaded["bundled"]:
        updates.update({settings["model"]: gr.update(value=default_model),
                        settings["format"]: gr.update(value="auto"),
                        **{settings[n]: gr.update(value="") for n in COLUMN_FIELDS}})
    return updates


# --------------------------------------------------------------------------- the answer


def student_estimate(lab: Lab, values: dict) -> tuple[tuple[str, float] | None, str]:
    """(settings in words, estimated peak bytes) for the student's current
    settings, or None and why not (an unreadable model, an offline hub id)."""
    try:
        config = fields.build_config(values, allow=True).config
        spec = config.model or lab.default_model
        if spec == models.DEFAULT_SPEC:
            shape = model_shape.shape_from_spec(spec)  # reads the bundled file's metadata, no conversion
        else:
            source = lab.resolve(spec)  # the allowed folders only, as for training
            shape = (model_shape.shape_from_config(json.loads((Path(source.location) / "config.json").read_text()),
                                                   source.label)
                     if source.kind == "local" else model_shape.shape_from_spec(source.location))
        autocast = device.detect(config.precision).precision
        return lessons.settings_estimate(config, shape, autocast), ""
    except (cfg.ConfigError, ModelError, model_shape.EstimateError, OSError, ValueError) as err:
        return None, f"(Your settings could not be estimated: {err}.)"


def lesson_answer(lab: Lab, lesson: Lesson, owner: str, values: dict) -> str:
    """The lesson's question answered from the caller's runs (and, for memory, settings)."""
    runs = lab.scheduler.list(owner)
    if lesson.answer == "memory":
        yours, note = student_estimate(lab, values)
        text = lessons.memory_answer(runs, tutorial.tutorial_7b().total_bytes, yours)
        return f"{text}\n\n{note}".strip()
    if lesson.answer == "sweep":
        return lessons.sweep_answer(runs, experiments.verdict)
    return lessons.ANSWERS[lesson.answer](runs)


# --------------------------------------------------------------------------- wiring


def wire(lab: Lab, tab: LessonsTab, tabs: gr.Tabs, data, params, settings: dict, owner_key) -> None:
    tunable = {name: w for name, w in settings.items() if name not in fields.SOURCE_FIELDS}
    for item in tab.lessons:
        _wire_lesson(lab, item, tabs, data, params, settings, tunable, owner_key)


@dataclass
class Targets:
    """The widgets a lesson's button sets, on other tabs."""

    settings: dict
    preset: gr.Dropdown
    allow: gr.Checkbox
    source: gr.Radio
    bundled: gr.Dropdown
    tabs: gr.Tabs

    def outputs(self) -> list:
        return [*self.settings.values(), self.preset, self.allow, self.source, self.bundled, self.tabs]


def button_updates(lab: Lab, lesson: Lesson, preset: str | None, current: dict, to: Targets) -> dict:
    """The lesson button's whole effect: the preset's settings, the allow switch,
    the bundled data and the tab switch; a missing preset is a clear error toast."""
    try:
        loaded = lesson_settings(lab, lesson, preset, current)
    except LessonError as err:
        raise user_error(err) from None
    updates = setting_updates(to.settings, loaded, lab.default_model)
    if loaded["preset"]:
        updates[to.preset] = gr.update(value=loaded["preset"], info=PRESET_NOTES.get(loaded["preset"], ""))
        updates[to.allow] = gr.update(value=loaded["allow"])
    if loaded["bundled"]:
        updates[to.source] = gr.update(value="bundled")
        updates[to.bundled] = gr.update(value=loaded["bundled"])
    return {**updates, to.tabs: gr.Tabs(selected=loaded["tab"])}


def _wire_lesson(lab: Lab, item: LessonWidgets, tabs, data, params, settings, tunable, owner_key) -> None:
    lesson = item.lesson
    preset_input = item.preset if item.preset is not None else gr.State(None)
    to = Targets(settings, params.preset, params.allow, data.source, data.bundled, tabs)
    load_outputs = to.outputs()

    def load(preset, **current):
        return button_updates(lab, lesson, preset, current, to)

    event = item.load.click(load, inputs=[preset_input], inputs_kwargs=tunable, outputs=load_outputs,
                            api_visibility="private")
    if any(PRESETS.get(p, {}).get("data") for p in lesson.presets):
        _then_load_data(lab, event, data, settings, owner_key)

    def show(owner_key=None, request: gr.Request = None, **values):
        return lesson_answer(lab, lesson, lab.owner(owner_key, request), values)

    item.show.click(show, inputs_kwargs={**settings, "owner_key": owner_key}, outputs=item.answer,
                    api_visibility="private")


def _then_load_data(lab: Lab, event, data, settings, owner_key) -> None:
    """After the settings, the Data tab's own loader: the student sees the data
    the lesson trains on, and the Train tab's start uses it."""
    data_settings = {f.name: settings[f.name] for f in cfg.fields()
                     if f.metadata["group"] == "data" and f.name in settings}
    data_settings["seed"] = settings["seed"]
    outputs = data.load_outputs(settings)  # all of them: a load returns each (the advice was missing here)

    def reload(source, file=None, bundled_dataset=None, hub_dataset="", hub_token="", owner_key=None,
               request: gr.Request = None, **values):
        if source != "bundled":  # the preset named no bundled file: leave the student's data as it is
            return {}
        return load_dataset(lab, data, settings, lab.owner(owner_key, request), source, file, bundled_dataset,
                            hub_dataset, hub_token, **values)

    event.success(reload, inputs_kwargs={**data.source_inputs(), **data_settings, "owner_key": owner_key},
                  outputs=outputs, api_visibility="private")
