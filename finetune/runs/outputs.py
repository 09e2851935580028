"""The files a run leaves behind, written the same way by the app and the CLI:

    config.json       the resolved settings
    metrics.jsonl     one JSON object per logged event (step, loss or eval_loss, learning_rate, ...)
    comparison.json   per held-out prompt: prompt, reference, before, after (and scores)
    comparison.csv    the same table for spreadsheets (formula-looking cells escaped)
    summary.json      status, steps, final losses, scores, changes (before -> after with 95% intervals), duration
    probe.json        the general probe's answers before and after, scored per question
    preference.json   preference data: each unseen pair's chosen and rejected log-likelihood per token,
                      before and after, and which one the model preferred (evaluate/preference.py)
    validation_losses.json  each validation example's loss under the final model (validation_losses.py)
    model/            safetensors weights and tokenizer
    adapter/          a LoRA or QLoRA run's adapters alone, with the tokenizer (PeftModel.from_pretrained)
    best/             the model at its lowest validation loss (keep_best), with best.json {step, eval_loss};
                      for LoRA runs the adapters only (merged at export)
    checkpoints/      Trainer checkpoints for resuming
    logs/             TensorBoard event files, when the run reports to TensorBoard

No file written here holds an absolute path: a local data file or model folder is
recorded relative to the run folder (portable.py), so a run folder copied to
another machine reads the same there.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import threading
from pathlib import Path

from ..diagnose.findings import degraded
from ..evaluate.metrics import PREFERENCE, category_changes, score_changes
from ..evaluate.preference import preference_changes
from .folders import read_json_object, read_metrics, write_atomically
from .portable import to_run_folder

ADAPTER_DIR = "adapter"  # a LoRA or QLoRA run's trained adapters alone (peft's save_pretrained)
BEST_DIR, BEST_INFO = "best", "best.json"  # best.json sits inside best/, so both are replaced at once
PROBE_FILE = "probe.json"
PREFERENCE_FILE = "preference.json"  # evaluate/preference.py's record
VALIDATION_LOSSES_FILE = "validation_losses.json"  # written by validation_losses.py


class RunFolder:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._metrics_lock = threading.Lock()

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def best_dir(self) -> Path:
        return self.root / BEST_DIR

    @property
    def adapter_dir(self) -> Path:
        return self.root / ADAPTER_DIR

    def best(self) -> dict | None:
        """The kept best model: {step, eval_loss, folder (its name in the run folder)}, or None.
        Never a key named "path": gradio_client takes any object with one for a file to download.
        A folder without best.json is never one; `.best-replaced` is the previous
        best, whole, when a kill came between the two renames of replacing it."""
        for folder in (self.best_dir, self.root / f".{BEST_DIR}-replaced"):
            try:
                found = json.loads((folder / BEST_INFO).read_text(encoding="utf-8"))
                return {"step": int(found["step"]), "eval_loss": float(found["eval_loss"]),
                        "folder": folder.name}
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return None

    def _prune_best(self, keep_until: int | None) -> None:
        """A fresh run keeps no best from an earlier one in this folder; a resumed
        one keeps its best if it came before the checkpoint (later metrics are
        dropped, so a later best would mark no point of the curve)."""
        for partial in self.root.glob(f".{BEST_DIR}-*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
        found = self.best()
        if found is None or keep_until is None or found["step"] > keep_until:
            for name in (BEST_DIR, f".{BEST_DIR}-replaced"):
                shutil.rmtree(self.root / name, ignore_errors=True)
    def portable(self, spec: str) -> str:
        """A data or model setting as this run's files record it (portable.to_run_folder)."""
        return to_run_folder(self.root, spec)

    def prepare(self, keep_metrics_until: int | None = None) -> None:
        """Create the folder; on resume keep the metrics logged up to the
        checkpoint's step, so the curve continues where it left off."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in ("error.json", "comparison.json", "summary.json", PROBE_FILE, PREFERENCE_FILE,
                      VALIDATION_LOSSES_FILE):
            (self.root / stale).unlink(missing_ok=True)
        self._prune_best(keep_metrics_until)
        shutil.rmtree(self.adapter_dir, ignore_errors=True)  # written again at the end, from this run's adapters
        if keep_metrics_until is None:
            self.metrics_path.unlink(missing_ok=True)
            return
        kept = [e for e in self.read_metrics() if e.get("step", 0) <= keep_metrics_until]
        write_atomically(self.metrics_path, "".join(json.dumps(e) + "\n" for e in kept))

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.root)

    def append_metrics(self, entry: dict) -> None:
        with self._metrics_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with self.metrics_path.open("a") as handle:
                handle.write(json.dumps(entry, allow_nan=False) + "\n")

    def write_json(self, name: str, data) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        write_atomically(path, json.dumps(_finite(data), indent=2, ensure_ascii=False))
        return path

    def write_summary(self, snapshot, config, data_name: str) -> Path:
        losses, evals = snapshot.logged("loss"), snapshot.logged("eval_loss")
        return self.write_json("summary.json", {
            "status": snapshot.status,
            "error": snapshot.error,
            "model": snapshot.model,
            "data": data_name,
            "label": snapshot.label,
            "hardware": snapshot.hardware,
            "steps": snapshot.step,
            "max_steps": snapshot.max_steps,
            "epoch": snapshot.epoch,
            "train_examples": snapshot.train_examples,
            "train_tokens": snapshot.train_tokens,
            "first_train_loss": losses[0] if losses else None,
            "final_train_loss": losses[-1] if losses else None,
            "final_validation_loss": evals[-1] if evals else None,
            "tokens_per_second": snapshot.tokens_per_second,
            "duration_seconds": round(snapshot.elapsed, 1),
            "scores": snapshot.scores,
            "changes": self.score_changes(snapshot),
            "diagnoses": list(snapshot.diagnoses),
            "memory": snapshot.memory,
            "best_checkpoint": self.best(),  # what is on disk, whatever the snapshot last heard
        })

    def score_changes(self, snapshot) -> dict:
        """summary.json's "changes": per category of "scores", per metric, the
        paired change before -> after with its 95% interval and a sentence
        (evaluate/significance.py), and the category's one reading of them
        ("reading": evaluate.metrics.Reading), which no found failure-mode
        diagnosis of the snapshot contradicts. The held-out categories pair the
        prompts of the comparison; the general probe's entry pairs its questions,
        scored in probe.json (only when this run measured it: "general_probe" in scores);
        the preference evidence's pairs its unseen pairs, in preference.json, and the held-out
        answers' lean to the rejected reply (only on preference data: "preference" in scores)."""
        try:
            found = degraded(snapshot.diagnoses)
            changes = score_changes(list(snapshot.comparison), found)
            if "general_probe" in (snapshot.scores or {}):
                answers = self.read_json(PROBE_FILE).get("answers")
                if isinstance(answers, list) and all(isinstance(a, dict) and "after_score" in a for a in answers):
                    changes["general_probe"] = category_changes(answers, "general_probe",
                                                                found.get("general_probe", ()))
            if PREFERENCE in (snapshot.scores or {}):
                changes[PREFERENCE] = preference_changes(self.read_json(PREFERENCE_FILE), list(snapshot.comparison),
                                                         found.get(PREFERENCE, ()))
        except Exception:  # noqa: BLE001 -- a measurement: the run's outcome must never depend on it
            return {}
        return changes

    def read_json(self, name: str) -> dict:
        """A JSON object file of this folder; {} when missing or not an object."""
        return read_json_object(self.root / name)

    def write_csv(self, name: str, rows: list[dict], columns: list[str]) -> Path:
        """A CSV for spreadsheets, with formula-looking cells escaped."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([escape_csv_cell(row.get(c)) for c in columns])
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        write_atomically(path, buffer.getvalue())
        return path



def read_validation_losses(folder: str | Path) -> dict[str, float]:
    """A run folder's per-example validation losses by example id; {} when missing or unreadable."""
    try:
        data = json.loads((Path(folder) / VALIDATION_LOSSES_FILE).read_text(encoding="utf-8"))
        pairs = zip(data["ids"], data["losses"], strict=True)
        return {str(i): float(loss) for i, loss in pairs if isinstance(loss, (int, float)) and math.isfinite(loss)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_csv_cell(value) -> str:
    """A cell a spreadsheet would run as a formula (=, +, -, @) gets a leading
    quote, so exported model output cannot execute in Excel or Sheets."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _finite(value):
    """JSON has no NaN: a non-finite number is written as null, never as 0."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
