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
from ..train import objectives
from .bundle import base_model_id, model_card, without_front_matter

TAGS = ["fine-tuned", "finetune-lab"]


def hub_card(folder: str | Path, adapter_only: bool = False, license: str | None = None,
             gguf_files: list[str] | tuple[str, ...] = (), image: str | None = None, repo_id: str | None = None,
             which: str = "final"):
    """A huggingface_hub.ModelCard for the run in `folder`."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = read_json_object(Path(folder) / "config.json")
    base = base_model_id(config.get("model", ""))
    data = config.get("data", "")
    tags = TAGS + objectives.tags(config) + (["lora"] if config.get("method") in ("lora", "qlora") else []) \
        + (["gguf"] if gguf_files else [])
    metadata = ModelCardData(
        base_model=base, datasets=[data] if data and not looks_like_path(data) else None,
        library_name="peft" if adapter_only else "transformers", license=license, tags=tags,
        pipeline_tag="text-generation",
    )
    body = without_front_matter(model_card(folder, which, "adapter" if adapter_only else "merged",
                                            where=repo_id or "USER/NAME", gguf_files=tuple(gguf_files)))
    if image:
        body = body.replace("## Results\n", f"## Results\n\n![Training and validation loss]({image})\n", 1)
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
