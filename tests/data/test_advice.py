"""Data advice: each finding fires on a dataset that has the problem, stays
silent on one that does not, and a large dataset is advised on in seconds."""

import random
import time

from finetune.data.advice import LOW_DIVERSITY, MIN_TRAIN_EXAMPLES, Advice, data_advice, distinct_ngram_share, prompt_of
from finetune.data.formats import Example

NOUNS = ["river", "library", "violin", "glacier", "harbour", "orchard", "comet", "lantern", "meadow", "compass",
         "bakery", "tunnel", "falcon", "quarry", "pottery", "canyon", "ferry", "garden", "museum", "volcano"]
VERBS = ["describe", "explain", "compare", "summarise", "list", "praise", "criticise", "sketch", "define", "rank"]
ASPECTS = ["history", "smell", "sound", "cost", "colour", "shape", "purpose", "dangers", "future", "origin"]


def chat(prompt: str, response: str, where: str = "", context: str | None = None) -> Example:
    return Example(messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": response}),
                   context=context, where=where)


def varied(count: int, offset: int = 0) -> list[Example]:
    """Distinct prompts in varied wording, replies of a few words: a dataset with no problems."""
    rng = random.Random(offset)
    examples = []
    for i in range(offset, offset + count):
        words = rng.sample(NOUNS + VERBS + ASPECTS, 6)
        prompt = f"{' '.join(words).capitalize()} (case {i})?"
        examples.append(chat(prompt, f"The {words[0]} has a {words[1]} and a {words[2]}.", f"line {i + 1}"))
    return examples


def names(findings: list[Advice]) -> set[str]:
    return {f.name for f in findings}


def finding(findings: list[Advice], name: str) -> Advice:
    return next(f for f in findings if f.name == name)


CLEAN = varied(150)


def test_clean_data_gets_only_the_diversity_note():
    findings = data_advice(CLEAN, varied(10, 1000), varied(5, 2000))
    assert names(findings) == {"prompt_diversity"}
    assert finding(findings, "prompt_diversity").severity == "info"


def test_too_few_examples_quotes_the_rule():
    findings = data_advice(CLEAN[:40], [], [])
    few = finding(findings, "too_few_examples")
    assert few.severity == "warning" and few.count == 40
    assert f"{MIN_TRAIN_EXAMPLES}+ high-quality examples" in few.advice
    assert "too_few_examples" not in names(data_advice(CLEAN[:MIN_TRAIN_EXAMPLES], [], []))


def test_exact_duplicate_prompts_are_counted_and_shown():
    copies = [chat(CLEAN[3].messages[0]["content"], "Another reply.", "line 900"),
              chat(CLEAN[3].messages[0]["content"], "Yet another.", "line 901")]
    dup = finding(data_advice(CLEAN + copies, [], []), "duplicates")
    assert dup.count == 2 and dup.severity == "warning"
    assert dup.examples[0].startswith("line 4: ") and "(x3)" in dup.examples[0]


def test_near_duplicates_differ_only_in_case_punctuation_or_spacing():
    prompt = CLEAN[7].messages[0]["content"]
    twin = chat("  " + prompt.upper().replace(".", "!!"), CLEAN[7].response, "line 999")
    findings = data_advice(CLEAN + [twin], [], [])
    near = finding(findings, "near_duplicates")
    assert near.count == 1 and "line 8" in near.examples[0] and "line 999" in near.examples[0]
    assert "duplicates" not in names(findings)  # not equal character for character
    assert "conflicting_answers" not in names(findings)  # same reply


def test_templated_prompts_differing_by_a_number_are_not_near_duplicates():
    dates = [chat(f"Convert March {day}, 2021 to ISO 8601.", f"2021-03-{day:02d}") for day in range(1, 29)]
    assert not names(data_advice(CLEAN + dates, [], [])) & {"duplicates", "near_duplicates"}


def test_conflicting_answers_to_the_same_prompt():
    prompt = CLEAN[0].messages[0]["content"]
    findings = data_advice(CLEAN + [chat(prompt.lower(), "A different answer altogether.", "line 500")], [], [])
    conflict = finding(findings, "conflicting_answers")
    assert conflict.count == 1 and "A different answer altogether." in conflict.examples[0]
    # The same answer written differently (case, punctuation) is no conflict.
    same = chat(prompt, CLEAN[0].response.upper().rstrip("."), "line 501")
    assert "conflicting_answers" not in names(data_advice(CLEAN + [same], [], []))


def test_multi_turn_chats_that_open_alike_are_not_duplicates():
    def conversation(reply: str, question: str) -> Example:
        return Example(messages=({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                                 {"role": "user", "content": question}, {"role": "assistant", "content": reply}))

    chats = [conversation("Paris.", "Capital of France?"), conversation("Rome.", "Capital of Italy?")]
    assert not names(data_advice(CLEAN + chats, [], [])) & {"duplicates", "conflicting_answers"}


def test_empty_and_one_word_responses():
    odd = [chat("Name a colour of the sea.", "Blue", "line 300"), chat("Say nothing at all.", "   ", "line 301")]
    findings = data_advice(CLEAN + odd, [], [])
    empty, one_word = finding(findings, "empty_responses"), finding(findings, "one_word_responses")
    assert empty.count == 1 and empty.severity == "warning" and empty.examples[0].startswith("line 301")
    assert one_word.count == 1 and one_word.severity == "info" and "'Blue'" in one_word.examples[0]


def test_response_length_outliers():
    long = chat("Tell me everything about harbours.", "word " * 400, "line 777")
    outlier = finding(data_advice(CLEAN + [long], [], []), "long_responses")
    assert outlier.count == 1 and outlier.examples[0].startswith("line 777: 400 words")
    # Replies a few words longer than the rest are not outliers, even where all others are equal.
    uniform = [chat(prompt_of(e), "yes indeed") for e in CLEAN]
    assert "long_responses" not in names(data_advice(uniform + [chat("Why?", "because of the weather today")], [], []))


def test_prompt_diversity_is_always_reported_and_warns_when_templated():
    templated = [chat(f"Convert the date March {1 + i % 28}, 2021 to the ISO 8601 format.", "x y") for i in range(300)]
    low = finding(data_advice(templated, [], []), "prompt_diversity")
    assert low.severity == "warning"
    share, sample = distinct_ngram_share([prompt_of(e) for e in templated])
    assert share < LOW_DIVERSITY and sample == 300
    assert distinct_ngram_share(["one two three four", "one two three five"]) == (0.75, 2)


def test_leaks_from_held_out_and_validation_into_training():
    held_out = [chat(CLEAN[5].messages[0]["content"].upper(), "?", "line 6"), *varied(3, 3000)]
    validation = [CLEAN[9], *varied(3, 4000)]
    leak = finding(data_advice(CLEAN, validation, held_out), "leaks")
    assert leak.count == 2 and leak.title.startswith("1 held-out and 1 validation")
    assert leak.examples[0].startswith("held-out line 6")


def test_alpaca_input_and_plain_text_are_part_of_the_prompt():
    assert prompt_of(chat("Summarise.", "Short.", context="A long text.")) == "Summarise.\n\nA long text."
    assert prompt_of(Example(text="Plain language-modelling text.")) == "Plain language-modelling text."
    # Same instruction, different inputs: distinct prompts.
    inputs = [chat("Summarise the text.", f"Summary {i}.", context=f"Text number {i} here.") for i in range(3)]
    assert "duplicates" not in names(data_advice(CLEAN + inputs, [], []))


def test_findings_serialise_to_plain_dicts():
    for item in data_advice(CLEAN[:10], [], []):
        as_dict = item.to_dict()
        assert set(as_dict) == {"name", "title", "count", "examples", "advice", "severity"}
        assert isinstance(as_dict["examples"], list) and as_dict["severity"] in {"warning", "info"}


def test_empty_training_set_does_not_crash():
    assert names(data_advice([], [], [])) == {"too_few_examples", "prompt_diversity"}


def test_two_hundred_thousand_records_in_seconds():
    base = varied(2000)
    examples = [chat(f"{prompt_of(base[i % 2000])} Case {i}.", base[i % 2000].response) for i in range(200_000)]
    started = time.perf_counter()
    findings = data_advice(examples[:190_000], examples[190_000:195_000], examples[195_000:])
    elapsed = time.perf_counter() - started
    assert "prompt_diversity" in names(findings)
    assert elapsed < 20, f"{elapsed:.1f} s"  # ~3 s alone; generous for a busy shared machine


# ------------------------------------------------------------------ preference data

def pair(prompt: str, chosen: str, rejected: str, where: str = "") -> Example:
    return Example(messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}),
                   rejected=rejected, where=where)


def pairs(count: int = 120, offset: int = 0) -> list[Example]:
    """Distinct prompts, the chosen reply as long as the rejected one: pairs with no problem."""
    def worse(reply: str) -> str:  # "The river has a comet and a harbour." -> "The river lacks a comet or a harbour."
        return reply.replace(" has ", " lacks ").replace(" and ", " or ")

    return [pair(prompt_of(e), e.response, worse(e.response), e.where) for e in varied(count, offset)]


def test_clean_pairs_get_no_preference_warning():
    findings = data_advice(pairs(), pairs(10, 1000), pairs(5, 2000))
    assert names(findings) == {"prompt_diversity"}


def test_pairs_dropped_on_reading_are_counted_with_where():
    findings = data_advice(pairs(), [], [], {"chosen equal to rejected": ["line 3", "line 9"],
                                            "empty rejected reply": 4, "empty prompt": 0})
    identical, empty = finding(findings, "identical_pairs"), finding(findings, "empty_sides")
    assert identical.count == 2 and identical.title.startswith("2 pairs had the same chosen and rejected reply")
    assert "line 3, line 9" in identical.examples[0] and "check the export" in identical.advice
    assert empty.count == 4 and empty.examples == ("empty rejected reply: 4",)
    assert not {"identical_pairs", "empty_sides"} & names(data_advice(pairs(), [], [], {"dropped nothing": []}))


def test_pairs_whose_sides_differ_only_in_punctuation():
    alike = [pair("Capital of Peru?", "Lima.", "lima", "line 77")]
    found = finding(data_advice(pairs() + alike, [], []), "pairs_alike")
    assert found.count == 1 and found.examples[0].startswith("line 77") and "'Lima.' over 'lima'" in found.examples[0]


def test_a_pair_and_its_reverse_contradict():
    clean = pairs()
    reverse = pair(prompt_of(clean[4]), clean[4].rejected, clean[4].response, "line 500")
    found = finding(data_advice(clean + [reverse], [], []), "contradicting_pairs")
    assert found.count == 1 and "line 500" in found.examples[0]
    # One prompt compared over several different pairs (OpenAssistant's ranks) is neither a contradiction
    # nor a duplicate.
    ranked = [pair("Name a planet.", "Mars.", worse) for worse in ("A star.", "The Moon.", "Pluto.")]
    assert not {"contradicting_pairs", "duplicates"} & names(data_advice(clean + ranked, [], []))
    assert finding(data_advice(clean + ranked[:1] * 2, [], []), "duplicates").count == 1  # the same pair twice


def test_chosen_systematically_longer_is_a_length_bias():
    from finetune.data.advice import LENGTH_BIAS_RATIO, LENGTH_BIAS_SHARE

    clean = pairs()
    verbose = [pair(prompt_of(e), f"{e.response} Let me explain this in a lot more detail for you.", e.rejected,
                    e.where) for e in clean]
    bias = finding(data_advice(verbose, [], []), "length_bias")
    assert bias.title.startswith("The chosen reply is the longer one in 100% of the pairs")
    assert bias.count == len(verbose) and "longer whatever they say" in bias.advice
    # Longer in most pairs but by a few words, or by far in too few of them, is no bias.
    a_word_more = [pair(prompt_of(e), f"{e.response} Indeed.", e.rejected) for e in clean]
    assert "length_bias" not in names(data_advice(a_word_more, [], []))
    share = int(LENGTH_BIAS_SHARE * len(clean))  # exactly the share: not more than it
    assert "length_bias" not in names(data_advice(verbose[:share] + clean[share:], [], []))
    assert LENGTH_BIAS_RATIO > 1
    # The other way round: the model learns to answer shorter.
    terse = [pair(prompt_of(e), e.rejected, e.response + " and much more besides, at great length here") for e in clean]
    assert finding(data_advice(terse, [], []), "length_bias").title.startswith("The rejected reply is the longer")


def test_prompts_repeated_across_splits_of_pairs_leak():
    clean = pairs()
    held_out = [pair(prompt_of(clean[2]).lower(), "Another reply.", "A worse one.", "line 3")]
    leak = finding(data_advice(clean, [], held_out), "leaks")
    assert leak.count == 1 and "preference accuracy" in leak.advice


def test_labelled_replies_for_kto():
    def reply(prompt, text, good, where=""):
        return Example(messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": text}),
                       desirable=good, where=where)

    clean = [reply(prompt_of(e), e.response, i % 2 == 0, e.where) for i, e in enumerate(varied(120))]
    assert names(data_advice(clean, [], [])) == {"prompt_diversity"}
    both = reply(prompt_of(clean[0]), clean[0].response, False, "line 999")
    assert finding(data_advice(clean + [both], [], []), "contradicting_pairs").count == 1
