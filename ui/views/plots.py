"""Plotly figures for the app. A curve of one or two points is drawn with
markers, so a short run never looks like an empty plot."""

from __future__ import annotations

import plotly.graph_objects as go

from finetune.experiments.figures import placeholder
from finetune.train import objectives

TRAIN_COLOR, VALIDATION_COLOR, PLAN_COLOR, BEST_COLOR = "#f97316", "#2563eb", "#94a3b8", "#16a34a"
MARKERS_UP_TO = 60  # beyond this many points markers only clutter the line


def _figure(title: str, y_title: str, x_title: str = "optimizer step", height: int = 320) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=dict(text=title, x=0.02, font=dict(size=15)), template="plotly_white", height=height,
        margin=dict(l=55, r=15, t=45, b=45), xaxis_title=x_title, yaxis_title=y_title,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1), hovermode="x unified",
    )
    return fig


def _trace(xs, ys, name: str, color: str, always_markers: bool = False, dash: str | None = None) -> go.Scatter:
    mode = "lines+markers" if always_markers or len(xs) <= MARKERS_UP_TO else "lines"
    return go.Scatter(x=list(xs), y=list(ys), name=name, mode=mode, line=dict(color=color, dash=dash, width=2),
                      marker=dict(size=7 if len(xs) <= 2 else 5))


LOSS_TITLES = {"sft": "loss (response tokens)", "dpo": "DPO loss (pairs)", "kto": "KTO loss (replies)"}


def loss_figure(history, waiting: str = "the loss appears after the first optimizer step",
                best: dict | None = None, objective: str = "sft") -> go.Figure:
    """Training and validation loss by step; `best` ({step, eval_loss}: the checkpoint the run kept at its
    lowest validation loss) is marked on the validation curve with its label."""
    fig = _figure("Loss", LOSS_TITLES.get(objective, "loss"))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    validation = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train and not validation:
        return placeholder(fig, waiting)
    if train:
        fig.add_trace(_trace(*zip(*train), "training", TRAIN_COLOR))
    if validation:
        fig.add_trace(_trace(*zip(*validation), "validation", VALIDATION_COLOR, always_markers=True))
    if best:
        _mark_best(fig, best["step"], best["eval_loss"])
    return fig


def best_label(step: int, loss: float) -> str:
    return f"best: step {step}, {loss:.4g}"


def _mark_best(fig: go.Figure, step: int, loss: float) -> None:
    label = best_label(step, loss)
    fig.add_trace(go.Scatter(x=[step], y=[loss], name="best", mode="markers", hovertext=[label], hoverinfo="text",
                             marker=dict(symbol="star", size=15, color=BEST_COLOR, line=dict(color="white", width=1))))
    fig.add_annotation(x=step, y=loss, text=label, showarrow=True, arrowhead=2, arrowcolor=BEST_COLOR, ax=0, ay=-32,
                       font=dict(color=BEST_COLOR, size=12), bgcolor="rgba(255,255,255,0.8)")


def learning_rate_figure(history=(), planned: tuple = ((), ()), title: str = "Learning rate",
                         waiting: str = "the learning rate appears after the first optimizer step") -> go.Figure:
    fig = _figure(title, "learning rate")
    logged = [(h["step"], h["learning_rate"]) for h in history if "learning_rate" in h and "loss" in h]
    if planned[0]:
        fig.add_trace(_trace(*planned, "planned", PLAN_COLOR, dash="dot" if logged else None))
    if logged:
        fig.add_trace(_trace(*zip(*logged), "logged", TRAIN_COLOR))
    if not logged and not planned[0]:
        return placeholder(fig, waiting)
    fig.update_yaxes(exponentformat="e", rangemode="tozero")
    return fig


# A preference run's signals (objectives.SIGNALS), drawn by the figure each names: its title, the
# y axis, and the line a chance level sits on (a coin toss picks the chosen reply half the time).
SIGNAL_PLOTS = {
    "rewards": ("Rewards (beta x log-probability ratio to the reference)", "reward", None),
    "accuracy": ("Preference accuracy: chosen reward above rejected", "share of pairs", 0.5),
    "logps": ("Log-probabilities of the replies", "log-probability (summed over the reply)", None),
}
# Colours by what a signal is about, the same in every figure: chosen green, rejected red.
SIGNAL_COLORS = {"chosen": BEST_COLOR, "rejected": "#dc2626", "margins": VALIDATION_COLOR, "accuracies": TRAIN_COLOR,
                 "kl": PLAN_COLOR}


def signal_plots() -> tuple[str, ...]:
    """Every figure any objective's signals are drawn in, in the order they first appear."""
    return tuple(dict.fromkeys(s.plot for signals in objectives.SIGNALS.values() for s in signals))


def signal_figures(history, objective: str, waiting: str = "the signals appear after the first logged step"
                   ) -> dict[str, go.Figure]:
    """The objective's signals by the figure each names: on the training batches (solid) and on the
    validation pairs (dashed, "eval_" + key, with markers); {} for an objective without signals."""
    figures = {}
    for signal in objectives.signals(objective):
        if signal.plot not in figures:
            title, y_title, _ = SIGNAL_PLOTS.get(signal.plot, (signal.plot, signal.plot, None))
            figures[signal.plot] = _figure(title, y_title)
        color = SIGNAL_COLORS.get(signal.key.rpartition("/")[2], PLAN_COLOR)
        for key, name, dash in ((signal.key, f"{signal.label} (training)", None),
                                (f"eval_{signal.key}", f"{signal.label} (validation)", "dash")):
            points = [(h["step"], h[key]) for h in history if isinstance(h.get(key), (int, float))]
            if points:
                figures[signal.plot].add_trace(_trace(*zip(*points), name, color, always_markers=dash is not None,
                                                      dash=dash))
    for plot, fig in figures.items():
        if not fig.data:
            placeholder(fig, waiting)
            continue
        chance = SIGNAL_PLOTS.get(plot, (None, None, None))[2]
        if chance is not None:
            fig.add_hline(y=chance, line=dict(color=PLAN_COLOR, dash="dot", width=1), annotation_text="chance",
                          annotation_position="bottom right")
            fig.update_yaxes(range=[-0.02, 1.02])
    return figures


def length_histogram(lengths: list[int], max_length: int, what: str = "example") -> go.Figure:
    """`what` one length counts: an example, or a preference pair (its prompt and longer reply)."""
    over = sum(1 for n in lengths if n > max_length)
    fig = _figure(f"Tokens per {what} ({over} over the max length of {max_length})", "count",
                  x_title="tokens", height=300)
    if not lengths:
        return placeholder(fig, "load a dataset to see its lengths")
    fig.add_trace(go.Histogram(x=lengths, nbinsx=40, marker_color=VALIDATION_COLOR, name="examples"))
    fig.add_vline(x=max_length, line=dict(color=TRAIN_COLOR, dash="dash", width=2),
                  annotation_text="max length", annotation_position="top right")
    fig.update_layout(showlegend=False, bargap=0.05, hovermode="closest")
    return fig
