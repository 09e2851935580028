"""The model card of a pushed run: README.md with the Hub's YAML metadata
(huggingface_hub's ModelCardData: base_model, datasets, library_name, tags,
license) over the lab's own card (bundle.model_card: settings, losses, scores
with their intervals, the general probe, the diagnoses, before/after
examples), with the loss curve as an image and how to load this repo's format.
"""

from __future__ import annotations

from pathlib import Path

from ..runs.folders import read_json_object, read_metrics
from ..sources.files import looks_like_path
from ..sources.models import DEFAULT_HUB_ID, DEFAULT_SPEC
from .bundle import model_card

TAGS = ["fine-tuned", "finetune-lab"]


def hub_card(folder: str | Path, adapter_only: bool = False, license: str | None = None,
             gguf_files: list[str] | tuple[str, ...] = (), image: str | None = None, repo_id: str | None = None,
             which: str = "final"):
    """A huggingface_hub.ModelCard for the run in `folder`."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = read_json_object(Path(folder) / "config.json")
    base = _base_id(config.get("model", ""))
    data = config.get("data", "")
    tags = TAGS + (["lora"] if config.get("method") in ("lora", "qlora") else []) + (["gguf"] if gguf_files else [])
    metadata = ModelCardData(
        base_model=base, datasets=[data] if data and not looks_like_path(data) else None,
        library_name="peft" if adapter_only else "transformers", license=license, tags=tags,
        pipeline_tag="text-generation",
    )
    body = _without_front_matter(model_card(folder, which))
    if image:
        body = body.replace("## Results\n", f"## Results\n\n![Training and validation loss]({image})\n", 1)
    body += "\n" + _usage(repo_id or "USER/NAME", base, adapter_only, gguf_files)
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n{body}")


def loss_curve_png(folder: str | Path, target: str | Path) -> Path | None:
    """The run's training and validation loss against the step, as a PNG
    (matplotlib, no display needed); None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_metrics(folder)
    train = [(e["step"], e["loss"]) for e in history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e and "step" in e]
    if not train and not evals:
        return None
    figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for points, label, style in ((train, "training loss", "-"), (evals, "validation loss", "o-")):
        if points:
            axes.plot(*zip(*points), style, label=label, markersize=4)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, format="png")
    plt.close(figure)
    return Path(target)


def _usage(repo_id: str, base: str | None, adapter_only: bool, gguf_files) -> str:
    if adapter_only:
        lines = ["## Use (LoRA adapter)", "", "```python", "from peft import PeftModel",
                 "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                 f'base = AutoModelForCausalLM.from_pretrained("{base or "BASE_MODEL"}")',
                 f'model = PeftModel.from_pretrained(base, "{repo_id}")',
                 f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")', "```", ""]
    else:
        lines = ["## Use from this repository", "", "```python",
                 "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                 f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
                 f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")', "```", ""]
    gguf = [f for f in gguf_files if f.endswith(".gguf")]
    if gguf:
        lines += [f"`{gguf[0]}` runs in llama.cpp (`llama-cli -m {gguf[0]}`)"
                  + (" and Ollama (`ollama create NAME -f Modelfile`)." if "Modelfile" in gguf_files else "."), ""]
    return "\n".join(lines)


def _base_id(spec: str) -> str | None:
    if spec == DEFAULT_SPEC:
        return DEFAULT_HUB_ID
    return None if not spec or looks_like_path(spec) else spec


def _without_front_matter(card: str) -> str:
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        if end != -1:
            return card[end + 5:].lstrip("\n")
    return card
