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
