"""Package a finished run as a zip a person can load or upload as it is:

    README.md        a model card: base model, data, hyperparameters, losses, before/after examples
    config.json, model.safetensors, tokenizer files    (the model; AutoModelForCausalLM.from_pretrained)
    training/        the run's config.json, metrics.jsonl, summary.json, comparison.json

The model files sit at the top so the unzipped folder is itself a model folder;
the run's own config.json would collide with the model's, so the run's files go
under training/. The model is the final one or the best checkpoint (the lowest
validation loss, export/checkpoint.py); the card says which.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..evaluate.metrics import METRICS, PREFERENCE, PREFERENCE_METRICS, PREFERRED, change_lines, readings
from ..runs.folders import read_json, read_json_object
from ..runs.outputs import BEST_INFO
from ..sources.files import looks_like_path
from ..sources.models import DEFAULT_HUB_ID, DEFAULT_SPEC
from ..train import objectives
from .checkpoint import ExportError, checkpoint_summary, has_final_model
from .formats import check_format, format_files, gguf_name

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "comparison.json")
CARD_EXAMPLES = 5
# Weights barely compress and deflating hundreds of MB is slow: store them.
STORED_SUFFIXES = (".safetensors", ".bin", ".gguf")


def base_model_id(spec: str) -> str | None:
    """The Hub id of a run's base model: the bundled default's id, a Hub id as it is; None for a local folder."""
    if spec == DEFAULT_SPEC:
        return DEFAULT_HUB_ID
    return None if not spec or looks_like_path(spec) else spec


def _data_label(data: str) -> str:
    # An uploaded file lives in a server temp folder; its name is what the user knows.
    return Path(data).name if looks_like_path(data) else data


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _fence(text) -> str:
    text = "(no answer)" if text is None else str(text).replace("````", "'''")
    return f"````text\n{text}\n````"


def model_card(folder: str | Path, which: str = "final", fmt: str = "merged", where: str = "path/to/this/folder",
               gguf_files: tuple[str, ...] | list[str] = ()) -> str:
    """The card of the run's final model, or of its best checkpoint (`which="best"`),
    as exported in `fmt` to `where` (a folder, or a Hub repository); `gguf_files`,
    a GGUF file (and Modelfile) that goes with the model."""
    folder = Path(folder)
    config = read_json_object(folder / "config.json")
    summary = read_json_object(folder / "summary.json")
    rows = read_json(folder / "comparison.json")
    rows = rows if isinstance(rows, list) else []
    resolved = config.get("resolved", {})
    base_id = base_model_id(config.get("model", ""))
    base_label = resolved.get("model") or config.get("model", "unknown")
    data = _data_label(config.get("data", ""))
    lines = ["---", "library_name: transformers", "tags:", "- fine-tuned", "- finetune-lab"]
    lines += [f"- {tag}" for tag in objectives.tags(config)]
    if base_id:
        lines.append(f"base_model: {base_id}")
    name = (base_id or base_label).split("/")[-1]
    lines += ["---", "", f"# {name}, fine-tuned on {data}", ""]
    apart = "kept apart from the base model's weights" if fmt == "adapter" else None
    method = {"lora": f"LoRA (adapters {apart or 'merged into the weights'})",
              "qlora": "QLoRA (adapters trained over a 4-bit base, "
                       f"{apart or 'merged into the full-precision weights'})"
              }.get(config.get("method"), "full fine-tuning")
    if config.get("objective", "sft") != "sft":
        method += f", trained by {objectives.NAMES.get(config['objective'], config['objective'])}"
    lines += [f"Fine-tuned from **{base_id or base_label}** on **{data}** ({resolved.get('format', '?')} format, "
              f"{resolved.get('template', '?')} template) with {method}, using the fine-tuning lab.", ""]
    if summary.get("status") == "stopped" and which == "final":
        lines += ["The run was **stopped early** at the user's request; the weights are those of the last step.", ""]
    lines += _checkpoint_lines(folder, summary, which)
    lines += ["## Hyperparameters", "", "| setting | value |", "|---|---|"]
    settings = [
        ("objective", objectives.describe(config)),
        ("learning rate (peak)", config.get("learning_rate")),
        ("schedule", f"linear warmup ({config.get('warmup_ratio')} of steps), cosine to "
                     f"{config.get('min_lr_ratio')} x peak"),
        ("batch size x accumulation", f"{config.get('batch_size')} x {config.get('grad_accum')}"),
        ("epochs", config.get("epochs")), ("optimizer steps", summary.get("steps")),
        ("weight decay", config.get("weight_decay")), ("max length", config.get("max_length")),
        ("precision", f"{resolved.get('precision', '?')} autocast on {resolved.get('device', '?')}"),
        ("seed", config.get("seed")),
        ("examples", f"{resolved.get('train_examples', '?')} train, {resolved.get('validation_examples', '?')} "
                     f"validation, {resolved.get('held_out_prompts', '?')} held out"),
    ]
    if config.get("method") in ("lora", "qlora"):
        settings.append(("LoRA r / alpha / dropout",
                         f"{config.get('lora_r')} / {config.get('lora_alpha')} / {config.get('lora_dropout')}"))
    lines += [f"| {name} | {_fmt(value, 6)} |" for name, value in settings]
    lines += ["", "## Results", "", "| metric | value |", "|---|---|",
              f"| first training loss | {_fmt(summary.get('first_train_loss'))} |",
              f"| final training loss | {_fmt(summary.get('final_train_loss'))} |",
              f"| final validation loss | {_fmt(summary.get('final_validation_loss'))} |",
              f"| exported checkpoint | {checkpoint_summary(folder, which, summary)} |",
              f"| duration | {_fmt(summary.get('duration_seconds'))} s |",
              f"| hardware | {summary.get('hardware') or 'n/a'} |", ""]
    lines += _score_lines(summary.get("scores") or {}, summary.get("changes"))
    lines += _evidence_lines(summary.get("scores") or {})
    lines += _diagnosis_lines(summary.get("diagnoses") or [])
    lines += _example_lines(rows)
    lines += usage_lines(fmt, where, base_id, gguf_files)
    lines += ["The run's settings, metrics and every held-out answer are in `training/`.", ""]
    return "\n".join(lines)


def usage_lines(fmt: str, where: str, base_id: str | None, gguf_files=()) -> list[str]:
    """The card's one "## Use" section for what `where` holds in `fmt`."""
    load = ["from transformers import AutoModelForCausalLM, AutoTokenizer", ""]
    if fmt == "adapter":
        code = ["from peft import PeftModel", *load,
                f'base = AutoModelForCausalLM.from_pretrained("{base_id or "BASE_MODEL"}")',
                f'model = PeftModel.from_pretrained(base, "{where}")']
    else:
        code = [*load, f'model = AutoModelForCausalLM.from_pretrained("{where}")']
    lines = ["## Use", ""]
    if not fmt.startswith("gguf-"):  # a GGUF export holds no transformers model
        lines += ["```python", *code, f'tokenizer = AutoTokenizer.from_pretrained("{where}")', "```", ""]
    gguf = [f for f in gguf_files if f.endswith(".gguf")] or ([gguf_name(fmt)] if fmt.startswith("gguf-") else [])
    if gguf:
        ollama = "Modelfile" in gguf_files or (fmt.startswith("gguf-") and not gguf_files)
        lines += [f"`{gguf[0]}` runs in llama.cpp (`llama-cli -m {gguf[0]}`)"
                  + (" and Ollama (`ollama create my-model -f Modelfile` beside it, then `ollama run my-model`)."
                     if ollama else "."), ""]
    return lines


def _score_lines(scores: dict, changes: dict | None = None) -> list[str]:
    """The before/after table, each category's change on its headline metric with
    its 95% interval beside it (summary.json's "changes"), and each category's
    reading in words (evaluate.metrics.readings, as the command line says it)."""
    if not scores:
        return []
    changes = changes if isinstance(changes, dict) else {}
    found = readings(changes)
    lines = ["Held-out answers scored against the reference, before and after training (general_probe: the "
             "lab's general-knowledge questions, asked of every run to show forgetting):", ""]
    lines += [f"- *{m.label}*: {m.help}" for m in METRICS.values()]
    header = [f"{m.label} {side}" for m in METRICS.values() for side in ("before", "after")]
    header.append("change on its headline metric (95% interval)")
    lines += ["", "| prompts | count | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(header)]
    for name, entry in scores.items():
        if name in ("benchmarks", "judge", PREFERENCE):
            continue  # not rows of answer scores: evaluate.benchmarks', evaluate.judge's and evaluate.preference's
        cells = [f"{entry[k]:.0%}" if isinstance(entry.get(k), (int, float)) else "n/a"
                 for k in (f"{side}_{m}" for m in METRICS for side in ("before", "after"))]
        reading = found.get(name)
        cells.append(f"{METRICS[reading.metric].label}: {reading.difference.numbers()}" if reading else "n/a")
        lines.append(f"| {name} | {entry.get('prompts', 0)} | " + " | ".join(cells) + " |")
    said = change_lines({name: changes[name] for name in scores if isinstance(changes.get(name), dict)}, scores)
    if PREFERENCE in scores:
        lines += ["", f"*{PREFERENCE}*: on preference pairs never trained on (held-out and validation), "
                      f"{PREFERENCE_METRICS[PREFERRED].help}; before and after training, pair by pair."]
    if said:
        lines += ["", "Is each change bigger than the noise? Better or worse only when the 95% interval leaves out "
                      "zero, and not better when other metrics moved the other way (the answers changed form) or a "
                      "failure-mode check found the category degraded:", "", *(f"- {line}" for line in said)]
    return lines + [""]


def _evidence_lines(scores: dict) -> list[str]:
    """The standard benchmarks' and the judge's sentences, as the command line prints them."""
    benchmarks, judged = scores.get("benchmarks"), scores.get("judge")
    lines = []
    if isinstance(benchmarks, dict):
        lines += [f"- benchmark {entry.get('label', task)}: {entry['sentence']}" for task, entry in benchmarks.items()
                  if isinstance(entry, dict) and entry.get("sentence")]
    if isinstance(judged, dict) and "error" not in judged:
        from ..evaluate.judge import judge_sentence  # imports torch, which a card without a judge does not need

        lines.append(f"- judge: {judge_sentence(judged)}")
    return ["Standard benchmarks and judge (before and after training, on the same items):", "", *lines, ""] \
        if lines else []


def _diagnosis_lines(diagnoses: list[dict]) -> list[str]:
    """The failure modes the lab checked: each one found with its evidence and
    mitigation, then one line for those clear or not judged."""
    diagnoses = [d for d in diagnoses if isinstance(d, dict)]
    if not diagnoses:
        return []
    lines = ["## Diagnosis", ""]
    found = [d for d in diagnoses if d.get("status") == "found"]
    for d in found:
        step = f" (step {d['step']})" if d.get("step") is not None else ""
        lines += [f"- **{d.get('title', d.get('name'))}**{step}: {d.get('explanation', '')}",
                  f"  - evidence: {d.get('evidence', '')}"]
        if d.get("advice"):
            lines.append(f"  - mitigation: {d['advice']}")
    if not found:
        lines.append("No failure mode was found.")
    lines.append("")
    for status, words in (("clear", "Checked and clear"), ("unknown", "Not enough data to judge")):
        names = [str(d.get("title", d.get("name"))) for d in diagnoses if d.get("status") == status]
        if names:
            lines += [f"{words}: {', '.join(names)}.", ""]
    return lines


def _example_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["## Before and after", "", f"The first {min(len(rows), CARD_EXAMPLES)} of {len(rows)} held-out "
             "prompts, answered greedily by the base model (before) and the fine-tuned model (after).", ""]
    for number, row in enumerate(rows[:CARD_EXAMPLES], 1):
        category = f" ({row['category']})" if row.get("category") else ""
        lines += [f"### Prompt {number}{category}", "", _fence(row.get("prompt")), "",
                  "Reference:", "", _fence(row.get("reference")), "", "Before:", "", _fence(row.get("before")), "",
                  "After:", "", _fence(row.get("after")), ""]
    return lines


def _checkpoint_lines(folder: Path, summary: dict, which: str) -> list[str]:
    if which != "best":
        return []
    return [f"These are the weights of the **best checkpoint** ({checkpoint_summary(folder, which, summary)}), "
            "the lowest validation loss measured during training, not of the final step "
            f"({summary.get('steps', '?')}). The held-out answers and their scores below were given by the final "
            "model.", ""]


def export_run(folder: str | Path, target: str | Path | None = None, card: str | None = None,
               which: str = "final", progress=lambda text: None, fmt: str = "merged") -> Path:
    """Write the run's zip (default: <folder>/export/finetuned-<folder name>[-best][-format].zip) and return its path.
    `which`: "final" (model/) or "best" (the checkpoint at the lowest validation loss; a LoRA run's adapters are
    merged over the base model first). `fmt`: one of formats.FORMATS (merged, adapter, gguf-*).
    `card`: the model card when the caller has already built it."""
    folder = Path(folder)
    check_format(fmt)
    if which == "final" and fmt != "adapter" and not has_final_model(folder):
        summary = read_json_object(folder / "summary.json")
        reason = f" (the run {summary['status']})" if summary.get("status") else ""
        raise ExportError(f"{folder.name} has no trained model to export{reason}")
    target = Path(target) if target else folder / "export" / zip_name(folder, which, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with format_files(folder, which, fmt, progress) as model_dir, \
                zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.md", card if card is not None else model_card(folder, which, fmt))
            for path in sorted(model_dir.iterdir()):
                if path.is_file() and path.name not in (BEST_INFO, "README.md"):  # the card says it
                    stored = path.suffix in STORED_SUFFIXES
                    archive.write(path, path.name,
                                  compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
            for name in RUN_FILES:
                if (folder / name).is_file():
                    archive.write(folder / name, f"training/{name}")
    except OSError as err:  # a full disk: no half zip is left, and the run folder is untouched
        partial.unlink(missing_ok=True)
        raise ExportError(f"could not write {target.name}: {err.strerror or err}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)  # never hand out half a zip
    return target


def zip_name(folder: Path, which: str, fmt: str) -> str:
    """finetuned-<run>[-best][-<format>].zip: the name says which model, in which format."""
    suffix = ("-best" if which == "best" else "") + ("" if fmt == "merged" else f"-{fmt}")
    return f"finetuned-{Path(folder).name}{suffix}.zip"


def without_front_matter(card: str) -> str:
    """A card's text without its YAML front matter (for showing it, or putting new metadata on it)."""
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end != -1:
            return card[end + 5:].lstrip("\n")
    return card
