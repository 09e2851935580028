"""Overlaid curves of runs compared: training loss, validation loss and the
learning rate, one colour per run, the legend naming the setting that differs."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from ..diagnose import curves
from .labels import (
    readable,
    run_labels,
)

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


MARKERS_UP_TO = 60  # beyond this many points markers only clutter a line


def overlay_figures(records) -> dict[str, go.Figure]:
    """{"loss", "eval_loss", "learning_rate"}: each run's curve in its own colour,
    the legend naming it by the setting that differs."""
    labels = run_labels(records)
    runs = readable(records)
    plots = {"loss": ("Training loss", "loss", "loss"), "eval_loss": ("Validation loss", "eval_loss", "loss"),
             "learning_rate": ("Learning rate", "learning_rate", "learning rate")}
    figures = {}
    for name, (title, key, y_title) in plots.items():
        fig = _figure(title, y_title)
        for index, record in enumerate(runs):
            points = curves.series(record.history, key)
            if points:
                fig.add_trace(_trace(points, labels[record.id], PALETTE[index % len(PALETTE)],
                                     always_markers=key == "eval_loss"))
        if not fig.data:
            placeholder(fig, f"no run has logged a {title.lower()} yet")
        elif key == "learning_rate":
            fig.update_yaxes(exponentformat="e", rangemode="tozero")
        figures[name] = fig
    return figures


def _figure(title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=dict(text=title, x=0.02, font=dict(size=15)), template="plotly_white", height=340,
        margin=dict(l=55, r=15, t=45, b=45), xaxis_title="optimizer step", yaxis_title=y_title,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1), hovermode="x unified",
    )
    return fig


def _trace(points, label: str, color: str, always_markers: bool) -> go.Scatter:
    xs, ys = zip(*points)
    mode = "lines+markers" if always_markers or len(xs) <= MARKERS_UP_TO else "lines"
    # plotly renders a few HTML tags in names: escape, so a data name shows as typed.
    return go.Scatter(x=list(xs), y=list(ys), name=html.escape(label), mode=mode,
                      line=dict(color=color, width=2), marker=dict(size=7 if len(xs) <= 2 else 5))


def placeholder(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=14, color="#64748b"))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig
