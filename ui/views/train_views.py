"""How a run's snapshot is shown: status line, progress figures, and the JSON
the /training_status endpoint returns. Pure functions of a Snapshot."""

from __future__ import annotations

import html

from finetune.runs.run import Snapshot
from finetune.train import objectives
from ui.views.badges import diagnoses_key, format_perplexity, perplexity_text, validation_perplexity

BADGES = {
    "queued": ("waiting", "idle"), "cancelled": ("cancelled", "idle"), "interrupted": ("interrupted", "bad"), "loading": ("loading", "run"), "baseline": ("answering before", "run"),
    "training": ("training", "run"), "finishing": ("finishing", "run"), "completed": ("completed", "ok"),
    "stopped": ("stopped", "idle"), "failed": ("failed", "bad"),
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def queue_message(position: int, wait_seconds: float | None, training: int = 1, at_once: int = 1) -> str:
    """What a waiting run's owner is told (nothing about whose run is ahead): its place, how many
    runs train now and how many may at once here, and when it should start."""
    when = f"; it should start in about {duration(wait_seconds)}" if wait_seconds is not None else ""
    beside = f" ({training} run{'s' * (training != 1)} training now, up to {at_once} at once here)" if at_once > 1 else ""
    return f"the trainer is busy; your run is number {position} in the queue{beside}{when}"


BUSY_WITH_ANOTHER = "the trainer is busy with another person's run; yours would wait in the queue"


# How often a page asks for news: often while the caller's own run trains (the
# live plots), slowly while it waits in the queue or someone else's run holds the
# trainer (one line of text changes). Thirty pages at 1.5 s are 20 calls a second,
# about a third of a core at ~17 ms of server CPU each (measured on the 2-core VM),
# taken from the run that trains.
LIVE_POLL_SECONDS = 1.5
WAITING_POLL_SECONDS = 5.0


def poll_interval(snap: Snapshot | None, busy: bool) -> float | None:
    """Seconds between the page's polls, or None when nothing it shows can change."""
    if snap is not None and not snap.finished:
        return WAITING_POLL_SECONDS if snap.status == "queued" else LIVE_POLL_SECONDS
    return WAITING_POLL_SECONDS if busy else None


def status_markdown(snap: Snapshot | None, stop_requested: bool = False, busy: bool = False) -> str:
    if snap is None:
        note = f" ({BUSY_WITH_ANOTHER})" if busy else ""
        return ("<div class='lab-status'><span class='badge idle'>no run yet</span> Press <b>Start training</b> "
                f"to fine-tune with the data and settings of the first two tabs{html.escape(note)}.</div>")
    word, kind = BADGES.get(snap.status, (snap.status, "run"))
    message = snap.message
    if stop_requested and not snap.finished:
        word, message = "stopping", "stopping after the current step; the model so far will be saved"
    ppl = perplexity_text(snap.history)
    ppl = f" <span class='lab-perplexity'>· {html.escape(ppl)}</span>" if ppl else ""
    text = (f"<div class='lab-status'><span class='badge {kind}'>{word}</span> {html.escape(message)}{ppl}"
            f"<span class='lab-muted'> · {html.escape(snap.model or 'model loading')}</span></div>")
    if snap.status == "failed":
        text += f"<div class='lab-error'><b>The run failed.</b> {html.escape(snap.error or 'no message')}</div>"
    return text


# A preference run's cards: its latest margin on the training batches and its preference
# accuracy on the validation pairs (each shown when the objective logs it).
SIGNAL_CARDS = (("rewards/margins", "margin"), ("eval_rewards/accuracies", "val. pref. accuracy"))


def stats_markdown(snap: Snapshot | None, objective: str = "sft") -> str:
    if snap is None:
        return ""
    tps = snap.tokens_per_second
    cards = [
        ("steps", f"{snap.step} / {snap.max_steps or '?'}"), ("epoch", f"{snap.epoch:.2f}"),
        ("elapsed", duration(snap.elapsed)), ("ETA", duration(snap.eta_seconds)),
        ("tokens/s", f"{tps:,.0f}" if tps else "–"), ("val. loss", _loss(last(snap, "eval_loss"))),
    ]
    if objective == "sft":  # a preference loss is no cross-entropy: exp of it is no perplexity
        cards.append(("val. perplexity", _perplexity(snap)))
    logged = objectives.logged_keys(objective)
    cards += [(label, _signal(last(snap, key), key)) for key, label in SIGNAL_CARDS if key in logged]
    body = "".join(f"<div class='stat'><div class='stat-label'>{k}</div><div class='stat-value'>{v}</div></div>"
                   for k, v in cards)
    device = f"<div class='lab-muted'>{html.escape(snap.hardware)}</div>" if snap.hardware else ""
    return f"<div class='lab-stats'>{body}</div>{device}"


def _signal(value, key: str) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value:.0%}" if key.endswith("accuracies") else f"{value:+.3f}"


def _loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


def _perplexity(snap: Snapshot) -> str:
    """exp of the latest validation loss: how many tokens the model hesitates between, on average."""
    found = validation_perplexity(snap.history)
    return format_perplexity(found[1]) if found else "–"


def last(snap: Snapshot, key: str):
    values = snap.logged(key)
    return values[-1] if values else None


def status_dict(snap: Snapshot | None, stop_requested: bool = False, busy: bool = False) -> dict:
    """Everything a client needs to follow its run (never the token: snapshots do
    not hold it; never a server path). `busy`: the trainer holds someone else's run."""
    if snap is None:
        message = BUSY_WITH_ANOTHER if busy else "you have no runs yet"
        return {"status": "none", "finished": True, "message": message, "trainer_busy": busy}
    return {
        "run_id": snap.run_id, "label": snap.label, "status": snap.status, "finished": snap.finished,
        "message": snap.message,
        "error": snap.error, "stop_requested": stop_requested, "step": snap.step, "max_steps": snap.max_steps,
        "epoch": snap.epoch, "elapsed_seconds": round(snap.elapsed, 1), "eta_seconds": snap.eta_seconds,
        "tokens_per_second": snap.tokens_per_second, "hardware": snap.hardware, "model": snap.model,
        "train_examples": snap.train_examples, "train_tokens": snap.train_tokens,
        "last_train_loss": last(snap, "loss"), "last_validation_loss": last(snap, "eval_loss"),
        "validation_perplexity": _json_perplexity(snap),
        "history": list(snap.history), "comparison": list(snap.comparison),
        "scores": snap.scores, "diagnoses": list(snap.diagnoses), "memory": dict(snap.memory),
        "best_checkpoint": best_entry(snap.best_checkpoint),
    }


def best_entry(best: dict | None) -> dict | None:
    """{step, eval_loss}: where the run's best model is, never as a "path" (gradio_client
    downloads any object with one as a file; a run folder from before the rename has it)."""
    return {"step": best["step"], "eval_loss": best["eval_loss"]} if best else None


def _json_perplexity(snap: Snapshot) -> float | None:
    found = validation_perplexity(snap.history)
    return found[1] if found and found[1] != float("inf") else None


def change_key(snap: Snapshot | None, stop_requested: bool) -> tuple:
    """What, when unchanged, means the plots and tables need no redraw."""
    if snap is None:
        return ("none",)
    after = sum(1 for row in snap.comparison if row.get("after") is not None)
    return (snap.run_id, snap.status, len(snap.history), len(snap.comparison), after, stop_requested,
            diagnoses_key(snap.diagnoses), tuple(sorted(snap.memory.items())),
            (snap.best_checkpoint or {}).get("step"))  # a new best is published after its evaluation is logged
