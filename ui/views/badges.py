"""How a run's diagnostics are shown: failure-mode badges from its findings
(finetune.diagnose.base.Finding.to_dict() items), validation perplexity from its history,
and its memory line (the estimate beside the measured peak). Pure functions
of plain values; every text from a run is HTML-escaped."""

from __future__ import annotations

import math
from html import escape

GIB = 2**30
FOUND, CLEAR, UNKNOWN = "found", "clear", "unknown"  # finetune.diagnose.base.FOUND, CLEAR, UNKNOWN
NOT_ENOUGH = "not enough data to judge"
# exp() of a loss above this overflows a float; such a perplexity is shown as ∞.
MAX_EXP_ARGUMENT = 700.0


def _e(value) -> str:
    return escape(str(value if value is not None else ""), quote=True)


# --- failure-mode badges

def _found_card(d: dict) -> str:
    step = d.get("step")
    where = f" <span class='diag-step'>(step {_e(step)})</span>" if step is not None else ""
    advice = d.get("advice") or ""
    mitigation = f"<div class='diag-advice'><b>Mitigation:</b> {_e(advice)}</div>" if advice else ""
    return (f"<div class='diag-card found' data-name='{_e(d.get('name'))}'>"
            f"<span class='badge bad'>⚠ {_e(d.get('title') or d.get('name'))}</span>{where}"
            f"<div class='diag-evidence'><b>Evidence:</b> {_e(d.get('evidence'))}</div>"
            f"<div class='diag-explanation lab-muted'>{_e(d.get('explanation'))}</div>{mitigation}</div>")


def _unknown_text(d: dict) -> str:
    evidence = str(d.get("evidence") or "")
    return evidence if evidence.lower().startswith(NOT_ENOUGH) else f"{NOT_ENOUGH}: {evidence}" if evidence \
        else NOT_ENOUGH


def _chip(d: dict) -> str:
    title = _e(d.get("title") or d.get("name"))
    if d.get("status") == CLEAR:
        return (f"<span class='diag-chip clear' data-name='{_e(d.get('name'))}' title='{_e(d.get('evidence'))}'>"
                f"✓ {title}</span>")
    return (f"<span class='diag-chip unknown' data-name='{_e(d.get('name'))}' title='{_e(_unknown_text(d))}'>"
            f"? {title}: {NOT_ENOUGH}</span>")


def _numbers(quiet: list[dict]) -> str:
    """The evidence behind the quiet badges, for whoever wants the numbers."""
    items = "".join(f"<li><b>{_e(d.get('title') or d.get('name'))}:</b> "
                    f"{_e(d.get('evidence') if d.get('status') == CLEAR else _unknown_text(d))}</li>"
                    for d in quiet)
    return f"<details class='diag-numbers'><summary>The numbers behind these checks</summary><ul>{items}</ul></details>"


def diagnoses_html(diagnoses, final: bool = False, waiting: str | None = None) -> str:
    """Found failures first, as cards with their evidence and mitigation; the
    clear and undecided checks as small chips. `final`: the end-of-run findings
    (the Compare tab), else the live ones (the Train tab)."""
    items = [d for d in (diagnoses or ()) if isinstance(d, dict)]
    heading = "Failure modes (final checks)" if final else "Failure modes (live checks)"
    if not items:
        text = waiting or ("No failure-mode checks recorded for this run." if final else
                           "Failure-mode checks (divergence, overfitting, not learning) appear as training logs "
                           "its first steps.")
        return f"<div class='lab-diagnoses empty'><span class='lab-muted'>{_e(text)}</span></div>"
    found = [d for d in items if d.get("status") == FOUND]
    quiet = [d for d in items if d.get("status") != FOUND]
    verdict = (f"<b>{len(found)} found</b>" if found else "<b>none found</b>") + f" of {len(items)} checked"
    parts = [f"<div class='lab-diagnoses'><div class='diag-heading'>{heading}: {verdict}</div>"]
    parts += [_found_card(d) for d in found]
    if quiet:
        parts.append("<div class='diag-chips'>" + "".join(_chip(d) for d in quiet) + "</div>")
        parts.append(_numbers(quiet))
    parts.append("</div>")
    return "".join(parts)


def diagnoses_key(diagnoses) -> tuple:
    """What, when unchanged, means the badges need no redraw."""
    return tuple((d.get("name"), d.get("status"), d.get("evidence"), d.get("advice"))
                 for d in (diagnoses or ()) if isinstance(d, dict))


# --- validation perplexity

def perplexity(loss) -> float | None:
    """exp(loss); ∞ for a loss too large to exponentiate or an infinite one; None for no number or NaN."""
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or math.isnan(loss):
        return None
    return math.inf if loss > MAX_EXP_ARGUMENT else math.exp(loss)


def validation_perplexity(history) -> tuple[int | None, float] | None:
    """(step, perplexity) of the latest logged validation loss, or None before the first evaluation."""
    for entry in reversed(tuple(history or ())):
        if "eval_loss" in entry:
            value = perplexity(entry["eval_loss"])
            return (entry.get("step"), value) if value is not None else None
    return None


def format_perplexity(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"


def perplexity_text(history) -> str:
    """'validation perplexity 7.39 (step 40)', or '' before the first evaluation."""
    found = validation_perplexity(history)
    if found is None:
        return ""
    step, value = found
    return f"validation perplexity {format_perplexity(value)}" + (f" (step {step})" if step is not None else "")


# --- memory: the estimate, then the measurement

def _gib(n) -> str:
    return f"{n / GIB:.2f} GiB"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def memory_line(memory: dict | None) -> str:
    """One line: the estimated peak beside the measured one when known."""
    memory = memory or {}
    estimate, peak = memory.get("estimate_bytes"), memory.get("peak_bytes")
    parts = []
    if _is_number(estimate):
        parts.append(f"estimated peak <b>{_gib(estimate)}</b>")
    if _is_number(peak):
        kind = f" ({_e(memory.get('peak_kind'))})" if memory.get("peak_kind") else ""
        parts.append(f"measured peak <b>{_gib(peak)}</b>{kind}")
        if _is_number(estimate) and peak > 0:
            off = (estimate - peak) / peak
            parts.append(f"the estimate is {abs(off):.0%} {'above' if off >= 0 else 'below'} the measurement")
    elif parts:
        parts.append("measured peak not known yet")
    if not parts:
        return "<b>Memory:</b> <span class='lab-muted'>no estimate or measurement recorded for this run.</span>"
    return "<b>Memory:</b> " + "; ".join(parts) + "."


ASSUMPTIONS = "\n\nAssumptions:\n"


def arithmetic_html(text: str) -> str:
    """format_breakdown's table as fixed-width text; its assumptions as a list that wraps."""
    table, found, notes = text.partition(ASSUMPTIONS)
    html = f"<pre class='lab-breakdown'>{_e(table)}</pre>"
    if found:
        items = "".join(f"<li>{_e(line.removeprefix('- '))}</li>" for line in notes.splitlines() if line.strip())
        html += f"<div class='lab-muted'><b>Assumptions:</b><ul class='lab-assumptions'>{items}</ul></div>"
    return html


def memory_html(memory: dict | None) -> str:
    """The memory line, with the estimate's arithmetic folded under it when recorded."""
    memory = memory or {}
    text = memory.get("estimate_text")
    arithmetic = (f"<details><summary>The estimate's arithmetic</summary>{arithmetic_html(str(text))}</details>"
                  if text else "")
    return f"<div class='lab-memory'>{memory_line(memory)}{arithmetic}</div>"
