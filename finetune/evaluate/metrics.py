"""How an answer scores against its reference (the one list of metrics), and
the held-out comparison: each prompt's reference, its answers before and after
training, their scores, and per category the change before -> after with its
95% interval (significance.py), so no screen shows a change without its noise.

The Compare tab, comparison.json, summary.json and the model card all iterate
METRICS, so adding a metric is one entry here. Each scorer maps (answer,
reference) to a number from 0 to 1; a share over many prompts is their mean.

Each category gets one reading of its changes (Reading, readings()): the
change of its headline metric, chosen for what its references are, unless its
metrics moved in opposite directions beyond the noise (the answers changed
form) or a failure-mode detector found it degraded. The command line, the
Compare tab, the Lessons answer, the model card and summary.json all state it
through readings(), so they cannot tell different stories.

A preference run adds the category "preference" (evaluate/preference.py): on
pairs never trained on, how often the model gives the chosen reply the higher
length-normalised likelihood. It reads no answer, so it has its own metric
(PREFERENCE_METRICS, metrics_for()), and its reading also says how many
held-out answers lean to the rejected reply (CLOSER), through the same readings().
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from ..data.dataset import HeldOutPrompt
from ..data.text import normalise_answer
from .significance import BETTER, WORSE, Difference, paired_difference


def _exact(answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


def _normalised(answer: str, reference: str) -> float:
    return float(normalise_answer(answer) == normalise_answer(reference))


def _contains(answer: str, reference: str) -> float:
    wanted = normalise_answer(reference)
    return float(bool(wanted) and f" {wanted} " in f" {normalise_answer(answer)} ")


class _WordTokenizer:
    """rouge-score's own tokenizer keeps only [a-z0-9] and so scores any
    non-Latin answer 0; this one splits the normalised text on spaces, so
    "Paris." and "paris" are one token and accented or CJK words count."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return normalise_answer(text).split()


def _rouge(kind: str, answer: str, reference: str) -> float:
    # Imported here: rouge-score pulls in nltk (~1 s), which a run that never scores should not pay.
    from rouge_score.rouge_scorer import RougeScorer

    if not _WordTokenizer.tokenize(answer) and not _WordTokenizer.tokenize(reference):
        return 1.0  # two empty texts agree (rouge-score would say 0)
    return float(RougeScorer([kind], tokenizer=_WordTokenizer()).score(reference, answer)[kind].fmeasure)


def _token_f1(answer: str, reference: str) -> float:
    # ROUGE-1's F-measure is the unigram-overlap F1 over word counts (SQuAD's token F1, articles kept).
    return _rouge("rouge1", answer, reference)


def _rouge_l(answer: str, reference: str) -> float:
    return _rouge("rougeL", answer, reference)


def _bleu(answer: str, reference: str) -> float:
    import sacrebleu

    # Sentence BLEU (sacrebleu's defaults: 13a tokens, exponential smoothing,
    # effective order so a one-word answer is not zero by having no 4-grams), scaled to 0..1.
    if not answer.strip() or not reference.strip():  # sacrebleu has no n-grams to count
        return float(answer.strip() == reference.strip())
    return min(sacrebleu.sentence_bleu(answer, [reference]).score / 100, 1.0)


@dataclass(frozen=True)
class Metric:
    name: str  # the key in comparison.json and summary.json
    label: str  # for people
    help: str
    score: Callable[[str, str], float]
    rises: str = ""  # what answers scoring higher do, in words ("contain the right answer more often")
    falls: str = ""

    def moved(self, up: bool) -> str:
        """What answers that score higher (or lower) on this metric do, in words."""
        said = self.rises if up else self.falls
        return said or f"score {'higher' if up else 'lower'} on {self.label}"


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("exact", "exact", "the answer is the reference, character for character (outer spaces aside)", _exact,
           "match the reference exactly more often", "match the reference exactly less often"),
    Metric("normalised", "normalised", "equal once case, punctuation and spacing are ignored", _normalised,
           "match the reference (case and punctuation aside) more often",
           "match the reference (case and punctuation aside) less often"),
    Metric("contains", "contains", "the reference appears in the answer as whole words", _contains,
           "contain the right answer more often", "contain the right answer less often"),
    Metric("token_f1", "token F1", "harmonic mean of the shares of answer and reference words they have in common "
           "(case and punctuation ignored; rouge-score's ROUGE-1 F)", _token_f1,
           "share more of the reference's words", "share fewer of the reference's words"),
    Metric("rouge_l", "ROUGE-L", "F-measure of the longest run of words answer and reference share in order "
           "(rouge-score)", _rouge_l,
           "follow the reference's wording more closely", "follow the reference's wording less closely"),
    Metric("bleu", "BLEU", "sentence BLEU: shared 1- to 4-word sequences with a brevity penalty (sacrebleu), "
           "from 0 to 1", _bleu,
           "share more word sequences with the reference", "share fewer word sequences with the reference"),
)}


def _no_answer_score(answer: str, reference: str) -> float:
    raise TypeError("a preference metric compares two replies' likelihoods; it scores no answer")


# A preference run's likelihood evidence (evaluate/preference.py): the category, and its
# one metric, computed from the model's log-probabilities of two replies, not from an answer.
PREFERENCE = "preference"
PREFERRED = "chosen_preferred"
PREFERENCE_METRICS: dict[str, Metric] = {PREFERRED: Metric(
    PREFERRED, "chosen preferred", "the model gives the chosen reply a higher mean log-probability per reply token "
    "than the rejected one (the length-normalised likelihood, on the tokens the preference loss trains)",
    _no_answer_score, "prefer the chosen reply more often", "prefer the chosen reply less often")}
# A held-out answer of preference data is scored against the chosen reply; it leans the wrong
# way when it is closer to the rejected reply than to the chosen one by this metric (ROUGE-L:
# the longest run of words in order, so a paraphrase of one reply is closer to it than to the
# other, where exact or normalised match would call both sides 0).
CLOSER, CLOSENESS = "closer_to_rejected", "rouge_l"


def metrics_for(category: str) -> dict[str, Metric]:
    """The metrics a category is scored on: the answers' METRICS, or the preference evidence's own."""
    return PREFERENCE_METRICS if category == PREFERENCE else METRICS


def closer_to_rejected(answer: str | None, chosen: str, rejected: str) -> bool | None:
    """The answer is closer (CLOSENESS) to the rejected reply than to the chosen one; None without an answer."""
    if answer is None:
        return None
    closeness = METRICS[CLOSENESS].score
    return closeness(answer, rejected) > closeness(answer, chosen)


def score(answer: str | None, reference: str) -> dict[str, float]:
    """Every metric for one answer; a missing answer scores 0 on all."""
    if answer is None:
        return {name: 0.0 for name in METRICS}
    return {name: metric.score(answer, reference) for name, metric in METRICS.items()}


def comparison_rows(held_out: list[HeldOutPrompt], before: list[str] | None, after: list[str] | None) -> list[dict]:
    rows = []
    for i, item in enumerate(held_out):
        b = before[i] if before else None
        a = after[i] if after else None
        row = {
            "prompt": item.question, "reference": item.reference, "category": item.category, "task": item.task,
            "before": b, "after": a, "before_score": score(b, item.reference) if before else None,
            "after_score": score(a, item.reference) if after else None,
        }
        if item.rejected:  # a preference pair's: does each answer lean to the rejected reply?
            row.update({"rejected": item.rejected,
                        **{f"{side}_{CLOSER}": closer_to_rejected(answer, item.reference, item.rejected)
                           for side, answer in (("before", b), ("after", a))}})
        rows.append(row)
    return rows


def with_scores(row: dict) -> dict:
    """A row of "before", "after" and "reference" with each side's scores added
    (None for a side not answered): the general probe's answers get the same
    per-prompt scores as the held-out comparison."""
    return {**row, **{f"{side}_score": score(row[side], row["reference"]) if row.get(side) is not None else None
                      for side in ("before", "after")}}


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows per category: "all", then each category in order of appearance ("task", "general")."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        if row.get("category"):
            groups[row["category"]].append(row)
    return groups


def summarise_scores(rows: list[dict]) -> dict:
    """Share of prompts matched, per category ("all" plus e.g. "task", "general")."""
    result = {}
    for name, members in _groups(rows).items():
        entry = {"prompts": len(members)}
        for side in ("before", "after"):
            scored = [m[f"{side}_score"] for m in members if m[f"{side}_score"] is not None]
            if scored:
                for metric in METRICS:
                    entry[f"{side}_{metric}"] = round(sum(s.get(metric, 0.0) for s in scored) / len(scored), 4)
            leaning = [m[f"{side}_{CLOSER}"] for m in members if isinstance(m.get(f"{side}_{CLOSER}"), bool)]
            if leaning:  # preference data: the share of answers closer to the rejected reply
                entry[f"{side}_{CLOSER}"] = round(sum(leaning) / len(leaning), 4)
        result[name] = entry
    return result


# --------------------------------------------------------------------------- is the change bigger than the noise?

# The headline metric of the data's own held-out prompts ("all", "task", any
# category a dataset names): their reference is the answer itself, a short exact
# answer in the form the data teaches, so a match once case and punctuation are
# ignored. A runs comparison (experiments/noise.py) ranks runs by it too.
HEADLINE = "normalised"
# The general questions (the probe's, and the demo data's "general" prompts) are
# open: any sentence that states the fact answers them, so their reference is a
# fact to find in the answer. Read by normalised match, an answer that only got
# shorter would look like knowledge gained (quick-demo's probe, tests/fixtures:
# normalised 2% -> 20% while the answers that contain the fact fell from 60% to 22%).
OPEN_QUESTIONS = {"general": "contains", "general_probe": "contains"}
# How a sentence names a category's prompts ("better on the task prompts: ...").
WHERE = {"all": "on all held-out prompts", "task": "on the task prompts", "general": "on the general prompts",
         "general_probe": "on the general-knowledge probe", PREFERENCE: "on the pairs never trained on"}
# What a category counts: prompts, or (the preference evidence) pairs.
UNITS = {PREFERENCE: "pairs"}
# The verdicts a category's reading adds to a single metric's (significance.py):
# its metrics moved in opposite directions beyond the noise, or its headline got
# better while a failure-mode detector found the category degraded.
CHANGED_FORM, MIXED = "changed form", "mixed"
# Answers whose mean length moved by a fifth or more changed length, and the
# reading says so ("shorter answers"); less is the ordinary spread of greedy answers.
LENGTH_CHANGE = 0.2


def where(category: str) -> str:
    return WHERE.get(category, f"on the {category} prompts")


def headline(category: str) -> str:
    """The metric a category's verdict is read from, for what its references are."""
    if category == PREFERENCE:
        return PREFERRED
    return OPEN_QUESTIONS.get(category, HEADLINE)


def _paired(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("before_score") is not None and r.get("after_score") is not None]


def metric_changes(rows: list[dict], category: str = "all", names=None) -> dict[str, dict]:
    """Per metric (all of METRICS, or `names`): the paired change before -> after
    over the rows scored on both sides, with its 95% interval and sentence
    (significance.Difference.to_dict()). Each sentence names its metric ("better on
    the task prompts (exact): ..."): one metric's change is not the category's verdict."""
    paired = _paired(rows)
    return {name: paired_difference([r["before_score"].get(name, 0.0) for r in paired],
                                    [r["after_score"].get(name, 0.0) for r in paired]
                                    ).to_dict(f"{where(category)} ({METRICS[name].label})")
            for name in (names or METRICS)}


def category_changes(rows: list[dict], category: str = "all", degraded=()) -> dict:
    """metric_changes() for every metric, and the category's one reading of them
    under "reading" (Reading.to_dict()), with the facts it was made from: the
    headline metric, the answers' mean length in words before and after, and what
    the failure-mode detectors found degraded here (`degraded`, sentences)."""
    entry: dict = metric_changes(rows, category)
    paired = [r for r in _paired(rows) if isinstance(r.get("before"), str) and isinstance(r.get("after"), str)]
    words = [round(sum(len(r[side].split()) for r in paired) / len(paired), 1) for side in ("before", "after")] \
        if paired else None
    entry["reading"] = {"metric": headline(category), "words": words, "degraded": [str(d) for d in degraded]}
    found = read_category(category, entry)
    if found is not None:
        entry["reading"] = found.to_dict()
    return entry


def score_changes(rows: list[dict], degraded=None) -> dict[str, dict]:
    """category_changes() per category of summarise_scores(), for the categories
    whose prompts were answered before and after. `degraded`: category -> what the
    detectors found degraded there (diagnose.findings.degraded)."""
    degraded = degraded or {}
    return {name: category_changes(members, name, degraded.get(name, ()))
            for name, members in _groups(rows).items() if _paired(members)}


@dataclass(frozen=True)
class Reading:
    """A category's one verdict: its headline metric's change, unless its metrics
    moved in opposite directions beyond the noise (CHANGED_FORM: the answers
    changed form, and the sentence says how), or it got better while a detector
    found it degraded (MIXED). What the command line, the Compare tab, the
    Lessons answer, the model card and summary.json say of a category."""

    category: str
    metric: str  # the headline metric
    difference: Difference  # the headline metric's change
    verdict: str
    sentence: str
    rose: tuple[str, ...] = ()  # the metrics better beyond the noise
    fell: tuple[str, ...] = ()
    words: tuple[float, float] | None = None  # the answers' mean length in words, before and after
    degraded: tuple[str, ...] = ()

    def line(self, count: int | None = None) -> str:
        """"task (20 prompts), normalised 10% → 95%: better on the task prompts: +85 points, ..."."""
        diff = self.difference
        shares = f"{diff.before:.0%} → {diff.after:.0%}: " if diff.n else ""
        unit = UNITS.get(self.category, "prompts")
        return (f"{self.category} ({diff.n if count is None else count} {unit}), "
                f"{metrics_for(self.category)[self.metric].label} {shares}{self.sentence}")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "verdict": self.verdict, "sentence": self.sentence, "rose": list(self.rose),
                "fell": list(self.fell), "words": list(self.words) if self.words else None,
                "degraded": list(self.degraded)}


def read_category(category: str, entry) -> Reading | None:
    """The reading of one category from its changes (summary.json's changes[category]:
    a Difference dict per metric, and the facts "reading" recorded with them; a run
    written before readings gets its category's headline and no lengths). None when
    the headline metric's change is missing or damaged."""
    if not isinstance(entry, dict):
        return None
    if category == PREFERENCE:
        return _read_preference(entry)
    facts = entry.get("reading") if isinstance(entry.get("reading"), dict) else {}
    metric = facts.get("metric") if facts.get("metric") in METRICS else headline(category)
    found = {name: Difference.from_dict(entry.get(name)) for name in METRICS}
    found = {name: diff for name, diff in found.items() if diff is not None}
    main = found.get(metric)
    if main is None:
        return None
    words = facts.get("words")
    words = tuple(words) if isinstance(words, (list, tuple)) and len(words) == 2 and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in words) else None
    degraded = tuple(d for d in facts.get("degraded") or () if isinstance(d, str))
    rose = tuple(name for name, diff in found.items() if diff.verdict == BETTER)
    fell = tuple(name for name, diff in found.items() if diff.verdict == WORSE)
    place = where(category)
    if rose and fell:
        verdict, sentence = CHANGED_FORM, _changed_form(place, metric, found, rose, fell, words)
    elif main.verdict == BETTER and degraded:
        verdict = MIXED
        sentence = (f"{MIXED} {place}: {METRICS[metric].label} better by {main.numbers()}, but "
                    + "; and ".join(degraded))
    else:
        verdict, sentence = main.verdict, main.sentence(place)
    return Reading(category, metric, main, verdict, sentence, rose, fell, words, degraded)


def _read_preference(entry: dict) -> Reading | None:
    """The preference evidence's reading: its one metric's change (chosen preferred, on pairs
    never trained on), "mixed" when it got better while more held-out answers moved to the
    rejected reply beyond the noise, or a detector found the category degraded (length
    exploitation, likelihood displacement, margin runaway); the answers' lean (CLOSER) is
    stated beside it."""
    facts = entry.get("reading") if isinstance(entry.get("reading"), dict) else {}
    main = Difference.from_dict(entry.get(PREFERRED))
    if main is None:
        return None
    leaning = Difference.from_dict(entry.get(CLOSER))
    degraded = tuple(d for d in facts.get("degraded") or () if isinstance(d, str))
    place, label = where(PREFERENCE), PREFERENCE_METRICS[PREFERRED].label
    toward_rejected = leaning is not None and leaning.verdict == BETTER  # a rise in answers closer to it
    if main.verdict == BETTER and (degraded or toward_rejected):
        but = [f"more held-out answers are {closer_sentence(leaning)}"] if toward_rejected else []
        verdict = MIXED
        sentence = f"{MIXED} {place}: {label} better by {main.numbers()}, but " + "; and ".join(but + list(degraded))
    else:
        verdict, sentence = main.verdict, main.sentence(place)
    if leaning is not None and not (verdict == MIXED and toward_rejected):  # else the "but" said it
        sentence += f"; held-out answers {closer_sentence(leaning)}"
    rose, fell = tuple(PREFERENCE_METRICS) if main.verdict == BETTER else (), \
        tuple(PREFERENCE_METRICS) if main.verdict == WORSE else ()
    return Reading(PREFERENCE, PREFERRED, main, verdict, sentence, rose, fell, None, degraded)


def closer_change(rows: list[dict]) -> dict | None:
    """The paired change in the share of held-out answers closer to the rejected reply than to
    the chosen one, over the rows of preference data answered before and after (None without
    any): a Difference dict whose verdict and sentence say which way the answers moved."""
    paired = [r for r in rows if all(isinstance(r.get(f"{side}_{CLOSER}"), bool) for side in ("before", "after"))]
    if not paired:
        return None
    diff = paired_difference(*([float(r[f"{side}_{CLOSER}"]) for r in paired] for side in ("before", "after")))
    moved = {BETTER: "toward the rejected replies", WORSE: "away from the rejected replies"}.get(diff.verdict,
                                                                                                 diff.verdict)
    return {**diff.to_dict(), "verdict": moved, "sentence": closer_sentence(diff)}


def closer_sentence(diff: Difference) -> str:
    """"closer to the rejected reply than to the chosen one (ROUGE-L): 10% → 40% of 10, +30 points,
    95% interval +2 to +58 (exact test p = 0.03)": a rise here is the answers leaning the wrong way."""
    if diff.n < 2:
        return f"closer to the rejected reply than to the chosen one: too few answers to tell ({diff.n})"
    exact = f" (exact test p = {diff.p_value:.2g})" if diff.p_value is not None else ""
    return (f"closer to the rejected reply than to the chosen one ({METRICS[CLOSENESS].label}): {diff.before:.0%} → "
            f"{diff.after:.0%} of {diff.n}, {diff.numbers()}{exact}")


def _changed_form(place: str, metric: str, found: dict[str, Difference], rose, fell, words) -> str:
    """"the answers changed form on the probe: shorter answers (16 → 3 words on average) that
    match the reference exactly more often (0% → 20%), but contain the right answer less often
    (58% → 22%: -36 points, 95% interval -52 to -18)": one metric of each side, the headline's
    where it is one, with its interval."""
    def side(names, up: bool) -> str:
        name = metric if metric in names else names[0]
        diff, said = found[name], METRICS[name].moved(up)
        shares = f"{diff.before:.0%} → {diff.after:.0%}"
        return f"{said} ({shares}: {diff.numbers()})" if name == metric else f"{said} ({shares})"

    answers = "answers"
    if words and words[0] > 0 and abs(words[1] - words[0]) >= LENGTH_CHANGE * words[0]:
        answers = (f"{'shorter' if words[1] < words[0] else 'longer'} answers ({words[0]:.0f} → {words[1]:.0f} "
                   "words on average)")
    text = f"the answers changed form {place}: {answers} that {side(rose, True)}, but {side(fell, False)}"
    if metric not in rose + fell:
        text += f"; by {METRICS[metric].label}, {found[metric].verdict}: {found[metric].numbers()}"
    return text


def readings(changes) -> dict[str, Reading]:
    """Each category's Reading from score_changes()'s dict (summary.json's "changes");
    categories with none, or a damaged one, are left out. The one reader of a run's
    changes: every screen and file that states a verdict reads it here."""
    if not isinstance(changes, dict):
        return {}
    found = {category: read_category(category, entry) for category, entry in changes.items()}
    return {category: reading for category, reading in found.items() if reading is not None}


def change_lines(changes: dict, scores: dict | None = None) -> list[str]:
    """One line per category for people, its reading on its headline metric: "task (20
    prompts), normalised 10% -> 60%: better on the task prompts: +50 points, 95% interval
    +28 to +66 ...". `changes` as score_changes() gives it (summary.json's "changes");
    `scores` (summary.json's "scores") adds the prompt counts."""
    lines = []
    for category, reading in readings(changes).items():
        entry = (scores or {}).get(category)
        lines.append(reading.line(entry.get("prompts") if isinstance(entry, dict) else None))
    return lines


def aligned_after_scores(rows_by_run: dict[str, list[dict]], name: str = HEADLINE) -> dict[str, list[float]]:
    """Each run's after-training score on metric `name` for the held-out prompts
    every run answered, in one order, so item i of every list is the same
    prompt: what pairs two runs' scores. A prompt is known by its question and
    reference (and, asked twice, by which time); runs with none in common give {}."""
    keyed = {run: _after_by_prompt(rows, name) for run, rows in rows_by_run.items()}
    keyed = {run: scores for run, scores in keyed.items() if scores}
    if not keyed:
        return {}
    first = next(iter(keyed.values()))
    shared = [key for key in first if all(key in scores for scores in keyed.values())]
    return {run: [scores[key] for key in shared] for run, scores in keyed.items()} if shared else {}


def _after_by_prompt(rows: list[dict], name: str) -> dict[tuple, float]:
    found, seen = {}, defaultdict(int)
    for row in rows or ():
        if not isinstance(row, dict) or not isinstance(row.get("after_score"), dict):
            continue
        key = (row.get("prompt"), row.get("reference"))
        seen[key] += 1
        found[(*key, seen[key])] = float(row["after_score"].get(name, 0.0))
    return found
