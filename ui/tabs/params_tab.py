"""Tab 2, Hyperparameters: presets, every optimisation and run setting as a
widget built from the config metadata, the switch that allows values outside
the recommended ranges, and a live summary of the run those values make
(steps, warmup, tokens, device, the learning-rate curve), computed by the engine."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from finetune.memory.model_shape import KNOWN_SHAPES, ModelShape, shape_from_spec
from finetune.train import config as cfg
from finetune.train import device, objectives, plan
from finetune.train.presets import PRESETS
from ui.lab import Lab
from ui.views import fields, memory_view, plots

GROUPS = (("objective", "Objective: supervised or preference (DPO, KTO)"), ("optim", "Optimisation"),
          ("lora", "LoRA adapters"), ("memory", "Memory (bigger models)"), ("run", "Evaluation and run control"))
PRESET_NOTES = {
    "classic": "The classic recipe: lr 2e-5, batch 4 x accumulation 8, warmup, weight decay 0.1, cosine.",
    "quick-demo": "A short run sized for a CPU: minutes on the demo data.",
    "lora": "LoRA adapters: fewer trained weights, less memory, a higher learning rate.",
    "lr-sweep-demo": "One epoch on the demo data: the settings of the learning-rate exercise (Experiments tab).",
    "dpo-demo": "DPO on the bundled preference pairs: one epoch, beta 0.1, a small learning rate (full fine-tuning).",
    "kto-demo": "KTO on the bundled preference pairs, each split into a desirable and an undesirable reply.",
}
# The objective group's settings each objective uses (what preference.objective_arguments gives TRL);
# the others are hidden while it is chosen. Every setting of the group but `objective` is listed (tested).
OBJECTIVE_SETTINGS = {
    "sft": (),
    "dpo": ("beta", "dpo_loss", "precompute_ref"),
    "kto": ("beta", "precompute_ref", "desirable_weight", "undesirable_weight"),
}
# What one training example is, per objective, in the run summary's step count.
UNIT_WORDS = {"sft": "examples", "dpo": "pairs", "kto": "replies"}
PER_ROW = 2
# The settings the memory estimate depends on (with the model).
MEMORY_FIELDS = ("method", "weights", "optimizer", "precision", "batch_size", "grad_accum", "max_length",
                 "gradient_checkpointing", "lora_r", "lora_dropout")
METHOD_NAMES = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (LoRA over a 4-bit NF4 base)"}


@dataclass
class ParamsTab:
    preset: gr.Dropdown
    allow: gr.Checkbox
    lora_group: gr.Accordion
    summary: gr.Markdown
    curve: gr.Plot
    estimate: gr.Button
    memory: gr.HTML  # the memory estimate's breakdown, with its arithmetic


def objective_fields() -> list[str]:
    """The objective group's settings other than the objective itself."""
    return [f.name for f in cfg.fields() if f.metadata["group"] == "objective" and f.name != "objective"]


def applies(name: str, objective: str) -> bool:
    return name in OBJECTIVE_SETTINGS.get(objective, ())


def objective_views(objective: str) -> list:
    """Visibility of each objective setting (objective_fields' order) for this objective."""
    return [gr.update(visible=applies(name, objective)) for name in objective_fields()]


def widget_options() -> dict[str, dict]:
    """The config fields this tab lays out (every field of its groups), with their layout arguments."""
    return {f.name: dict(min_width=290) for f in cfg.fields() if f.metadata["group"] in dict(GROUPS)}


def build(lab: Lab, settings: dict, preset: str) -> ParamsTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=340):
            with gr.Row():
                preset_box = gr.Dropdown(list(PRESETS), value=preset, label="Preset", scale=1, min_width=160,
                                         info=PRESET_NOTES.get(preset, ""))
                allow = gr.Checkbox(False, label="Allow values outside the recommended ranges", scale=1,
                                    min_width=160, info="For experiments: such runs often diverge or overfit. "
                                                        "The summary lists every value outside its range.")
            groups = {}
            objective = settings["objective"].value
            for name in objective_fields():  # only the settings the starting objective uses show
                settings[name].visible = applies(name, objective)
            for group, title in GROUPS:
                names = [f.name for f in cfg.fields() if f.metadata["group"] == group]
                visible = group != "lora" or cfg.uses_adapters(settings["method"].value)
                opened = group not in ("run", "memory", "objective") or (group == "objective" and objective != "sft")
                with gr.Accordion(title, open=opened, visible=visible) as groups[group]:
                    for start in range(0, len(names), PER_ROW):
                        with gr.Row():
                            for name in names[start:start + PER_ROW]:
                                settings[name].render()
        with gr.Column(scale=2, min_width=300):
            summary = gr.Markdown("Load a dataset to see the run these settings make.", elem_id="run-summary",
                              elem_classes="run-summary")
            curve = gr.Plot(plots.learning_rate_figure(title="Learning-rate schedule"), show_label=False)
            with gr.Accordion("Memory estimate", open=True):
                estimate = gr.Button("Estimate memory", variant="secondary", size="sm", elem_id="estimate-memory")
                memory_box = gr.HTML(memory_view.WAITING, elem_id="memory-estimate")
    return ParamsTab(preset_box, allow, groups["lora"], summary, curve, estimate, memory_box)


def model_shape(lab: Lab, spec: str) -> ModelShape:
    """The model's shape from its config (no weights), after the checks a run makes on the spec."""
    spec = (spec or "").strip() or lab.default_model
    if spec.lower() not in KNOWN_SHAPES:
        lab.resolve(spec)  # the operator's allow-list and the model checks, as for a run
    return shape_from_spec(spec)


def memory_estimate(shapes: memory_view.Shapes, model: str, retry: bool = False, **settings) -> str:
    """The breakdown for these settings and model, or one line on why there is none.
    `retry`: read the model's shape again if it failed before."""
    try:
        config = fields.build_config({**settings, "model": model}, allow=True).config
    except cfg.ConfigError as err:
        return memory_view.memory_html(memory_view.first_line(err), shapes, model, None)
    return memory_view.memory_html(config, shapes, config.model, device.detect(config.precision), retry)


def plan_summary(facts: dict | None, allow_out_of_range: bool, **settings):
    """The run these settings will do, from the engine's own step and schedule math."""
    try:
        config, outside, _ = fields.build_config(settings, allow=True)
    except cfg.ConfigError as err:
        return f"<div class='lab-error'><b>Not a valid setting:</b> {err}</div>", plots.learning_rate_figure()
    hardware = device.detect(config.precision)
    lines = []
    units = training_units(config, facts)
    if facts and units is None:
        problem = objectives.data_problem(config.objective, facts.get("kind", "sft"))
        lines += ["### The run these settings make", "", f"<div class='lab-error'><b>This data cannot train "
                  f"{objectives.NAMES[config.objective]}:</b> {html.escape(problem or '', quote=False)}</div>", "",
                  f"**Device:** {hardware.describe()}"]
        figure = plots.learning_rate_figure(title="Learning-rate schedule",
                                            waiting="choose an objective this data can train")
    elif facts:
        p = plan.plan(config, *units)
        lines += [
            "### The run these settings make", "",
            f"- **Objective:** {objective_line(config)}",
            f"- **Optimizer steps:** {p.steps} ({p.epochs:g} epochs of {p.train_examples} "
            f"{UNIT_WORDS[config.objective]})",
            f"- **Warmup:** {p.warmup_steps} steps, then cosine down to {config.min_lr_ratio:g} x the peak "
            f"of {config.learning_rate:g}",
            f"- **Examples per step:** {config.batch_size} x {config.grad_accum} = {p.examples_per_step}",
            f"- **Tokens per epoch:** {p.train_tokens:,}",
            f"- **Device:** {hardware.describe()}",
            f"- **Method:** {METHOD_NAMES[config.method]}",
        ]
        figure = plots.learning_rate_figure(planned=(p.curve_steps, p.curve_lr),
                                            title=f"Learning-rate schedule over {p.steps} steps")
    else:
        lines += ["Load a dataset on the **Data** tab to see the number of steps.", "",
                  f"**Device:** {hardware.describe()}"]
        figure = plots.learning_rate_figure(title="Learning-rate schedule",
                                            waiting="load a dataset to see the schedule")
    if hardware.note:
        lines.append(f"\n{hardware.note}")
    refused = device.unsupported(config, hardware)
    if refused:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in refused)
        lines.append(f"\n<div class='lab-error'><b>This machine cannot run these settings:</b><ul>{items}</ul></div>")
    if outside:
        verdict = ("allowed by the switch; expect an unstable or overfitting run" if allow_out_of_range
                   else "turn on <i>Allow values outside the recommended ranges</i> to use them")
        items = "".join(f"<li>{w}</li>" for w in outside)
        lines.append(f"\n<div class='lab-warning'><b>Outside the recommended ranges</b> ({verdict}):<ul>{items}</ul></div>")
    return "\n".join(lines), figure


def training_units(config: cfg.TrainConfig, facts: dict | None) -> tuple[int, int] | None:
    """(examples a pass holds, tokens it reads) for the config's objective, as the Data tab
    counted them with objectives.training_units; None when the data cannot train it."""
    if not facts:
        return None
    if "units" not in facts:  # facts of supervised data only (no per-objective counts)
        return (facts["train_examples"], facts["train_tokens"]) if config.objective == "sft" else None
    found = facts["units"].get(config.objective)
    return tuple(found) if found else None


def reference_line(config: cfg.TrainConfig) -> str:
    """Where the reference model's log-probabilities come from (what memory it costs)."""
    if cfg.uses_adapters(config.method):
        return "reference: the base with the adapters switched off (no copy)"
    if config.precompute_ref:
        return "reference log-probabilities computed once before training (no copy)"
    return "a frozen reference copy of the model beside the trained one"


def objective_line(config: cfg.TrainConfig) -> str:
    """The objective and the settings of it that apply, for the run summary."""
    values = {"beta": f"beta {config.beta:g}", "dpo_loss": f"loss {config.dpo_loss}",
              "precompute_ref": reference_line(config),
              "desirable_weight": f"desirable weight {config.desirable_weight:g}",
              "undesirable_weight": f"undesirable weight {config.undesirable_weight:g}"}
    used = [values[name] for name in OBJECTIVE_SETTINGS[config.objective]]
    return objectives.NAMES[config.objective] + (f" ({', '.join(used)})" if used else "")


def wire(lab: Lab, tab: ParamsTab, settings: dict, facts: gr.State, shown: gr.Tab | None = None) -> None:
    """`shown`: the tab's own gr.Tab, whose opening fills in the memory estimate."""
    tunable = {name: w for name, w in settings.items() if name not in fields.SOURCE_FIELDS}
    numeric = {f.name: settings[f.name] for f in fields.numeric_fields(settings)}

    def apply_preset(preset, allow_out_of_range, **current):
        values = fields.preset_values(preset, current)
        updates = {w: fields.range_update(cfg.field_by_name(n), values[n], values["method"], allow_out_of_range)
                   if n in numeric else gr.update(value=values[n]) for n, w in tunable.items()}
        return {**updates, tab.preset: gr.update(info=PRESET_NOTES.get(preset, ""))}

    tab.preset.input(apply_preset, inputs=[tab.preset, tab.allow], inputs_kwargs=tunable,
                     outputs=[*tunable.values(), tab.preset], api_name="apply_preset")

    def set_ranges(method, allow_out_of_range, **values):
        """Slider bounds follow the method (LoRA's learning rate) and the allow switch."""
        updates = {w: fields.range_update(cfg.field_by_name(n), values[n], method, allow_out_of_range)
                   for n, w in numeric.items()}
        return {**updates, tab.lora_group: gr.update(visible=cfg.uses_adapters(method))}

    gr.on([settings["method"].change, tab.allow.change], set_ranges, inputs=[settings["method"], tab.allow],
          inputs_kwargs=numeric, outputs=[*numeric.values(), tab.lora_group], api_name="set_ranges")
    settings["objective"].change(objective_views, settings["objective"],
                                 [settings[name] for name in objective_fields()], api_visibility="private")
    tab.allow.input(lambda on: gr.Warning("Values outside the recommended ranges are allowed now. They often "
                                          "make training diverge or overfit; the run summary lists them.")
                    if on else None, tab.allow, None, api_visibility="private")

    def summary(facts_value, allow_out_of_range, **values):
        text, figure = plan_summary(facts_value, allow_out_of_range, **values)
        return {tab.summary: text, tab.curve: figure}

    shapes = memory_view.Shapes(lambda spec: model_shape(lab, spec))
    model = settings["model"]

    def estimate_memory(model: str = "", **values) -> str:
        """The peak memory a run of these settings needs, term by term, with the arithmetic."""
        return memory_estimate(shapes, model, retry=True, **values)

    def follow_settings(model: str = "", **values) -> str:
        return memory_estimate(shapes, model, **values)

    needed = {name: settings[name] for name in MEMORY_FIELDS}
    tab.estimate.click(estimate_memory, inputs=[model], inputs_kwargs=needed, outputs=tab.memory,
                       api_name="estimate_memory")
    # A typed model id is read when the user is done typing, not at every keystroke.
    triggers = [model.submit, model.blur] + [w.change for w in needed.values()]
    gr.on(triggers + ([shown.select] if shown is not None else []), follow_settings, inputs=[model],
          inputs_kwargs=needed, outputs=tab.memory, api_visibility="private", trigger_mode="always_last",
          show_progress="hidden")

    gr.on([w.change for w in tunable.values()] + [tab.allow.change, facts.change], summary,
          inputs=[facts, tab.allow], inputs_kwargs=tunable, outputs=[tab.summary, tab.curve], api_name="plan_run",
          trigger_mode="always_last", show_progress="hidden")
