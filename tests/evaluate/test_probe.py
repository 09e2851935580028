"""The general-capability probe: the bundled questions and reference text load,
perplexity behaves like a user would expect (a model that learned a text finds
it less surprising), and probe answers are counted right."""

import json
import math

import pytest
import torch

from finetune.data.render import Renderer
from finetune.evaluate.probe import (
    PROBE_DIR,
    Probe,
    ProbeError,
    load_probe,
    probe_prompts,
    probe_scores,
    reference_perplexity,
)


@pytest.fixture(scope="module")
def probe() -> Probe:
    return load_probe()


@pytest.fixture
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def first_paragraph(probe: Probe) -> str:
    return probe.reference.split("\n\n")[0]


# --- the bundled files

def test_bundled_probe_loads(probe):
    assert 30 <= len(probe) <= 50
    assert len(probe.answers) == len(probe.topics) == len(probe)
    assert all(answer.strip() for answer in probe.answers)
    assert len(set(probe.questions)) == len(probe)
    assert len(set(probe.topics)) >= 4  # general means several kinds of knowledge
    paragraphs = [p for p in probe.reference.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 3 and 300 <= len(probe.reference.split()) <= 600


def test_missing_or_malformed_files_are_named(tmp_path, probe):
    with pytest.raises(ProbeError, match="general.jsonl.*missing"):
        load_probe(tmp_path)
    (tmp_path / "reference.txt").write_text(probe.reference)
    cases = {
        '{"question": "Q?", "answer": "A"}\n{"question": "Q2?"\n': "line 2: not JSON",
        '{"question": "Q?", "answer": "A"}\n{"question": "Q2?", "answer": " "}\n': "line 2: expected",
        '["Q?", "A"]\n': "line 1: expected",
        '{"question": "Q?", "answer": "A"}\n\n{"question": "Q?", "answer": "B"}\n': "line 3: .*asked twice",
        "\n": "no questions",
    }
    for content, message in cases.items():
        (tmp_path / "general.jsonl").write_text(content)
        with pytest.raises(ProbeError, match=message):
            load_probe(tmp_path)
    (tmp_path / "general.jsonl").write_text(json.dumps({"question": "Q?", "answer": "A"}) + "\n")
    assert load_probe(tmp_path).topics == ("",)
    (tmp_path / "reference.txt").write_text("  \n")
    with pytest.raises(ProbeError, match="reference text is empty"):
        load_probe(tmp_path)


def test_probe_prompts_render_each_question_as_a_user_turn(probe, tiny_tokenizer):
    prompts = probe_prompts(probe, Renderer(tiny_tokenizer))
    assert len(prompts) == len(probe)
    assert probe.questions[0] in prompts[0] and prompts[0].endswith("<|im_start|>assistant\n")
    alpaca = probe_prompts(probe, Renderer(tiny_tokenizer, template="alpaca"))
    assert alpaca[0].endswith("### Response:\n")


# --- scoring

def test_probe_scores_count_shares_per_metric():
    probe = Probe(("Capital of France?", "2 + 3?", "Red planet?", "Frozen water?"), ("Paris", "5", "Mars", "ice"),
                  ("geography", "arithmetic", "science", "science"), "text")
    answers = ["Paris.", "2 + 3 = 5", "It is Jupiter.", None]
    scores = probe_scores(answers, probe)
    assert scores["normalised"] == 0.25  # only "Paris." equals its reference once punctuation is ignored
    assert scores["contains"] == 0.5  # "5" appears as a whole word too
    assert probe_scores(["paris", "5", "mars", "Ice!"], probe)["normalised"] == 1.0
    assert probe_scores(["Parisian", "15", "Marshal", "ice cream"], probe)["contains"] == 0.25
    with pytest.raises(ValueError, match="3 answers for 4"):
        probe_scores(answers[:3], probe)


# --- perplexity

def test_perplexity_is_finite_repeatable_and_restores_the_mode(tiny, probe):
    model, tokenizer = tiny
    model.train()
    first = reference_perplexity(model, tokenizer, first_paragraph(probe))
    assert math.isfinite(first) and first > 1
    assert model.training  # put back as it was
    assert reference_perplexity(model, tokenizer, first_paragraph(probe)) == first


def test_perplexity_matches_the_models_own_loss(tiny, probe):
    model, tokenizer = tiny
    text = first_paragraph(probe)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :200]
    text = tokenizer.decode(ids[0])
    assert tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].shape == ids.shape
    with torch.no_grad():
        expected = math.exp(model(input_ids=ids, labels=ids).loss.item())
    assert reference_perplexity(model, tokenizer, text) == pytest.approx(expected, rel=1e-4)


def test_long_text_is_read_in_windows(tiny, probe):
    model, tokenizer = tiny
    assert len(tokenizer(probe.reference)["input_ids"]) > 512  # longer than one default window
    windowed = reference_perplexity(model, tokenizer, probe.reference, max_tokens=64)
    assert math.isfinite(windowed) and windowed > 1
    # Less context per window can only make the text a little harder to predict, not a different scale.
    whole = reference_perplexity(model, tokenizer, probe.reference)
    assert 0.5 * whole < windowed < 2 * whole


def test_one_token_text_is_refused(tiny):
    model, tokenizer = tiny
    assert len(tokenizer("a", add_special_tokens=False)["input_ids"]) == 1
    with pytest.raises(ValueError, match="at least two tokens"):
        reference_perplexity(model, tokenizer, "a")


def test_a_model_that_learned_the_text_finds_it_less_surprising(tiny, probe):
    model, tokenizer = tiny
    text = first_paragraph(probe)
    before = reference_perplexity(model, tokenizer, text)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :256]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    torch.manual_seed(0)
    for _ in range(5):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = reference_perplexity(model, tokenizer, text)
    assert after < 0.8 * before, (before, after)


def test_bundled_probe_dir_is_inside_the_repository():
    assert (PROBE_DIR / "general.jsonl").is_file() and (PROBE_DIR / "reference.txt").is_file()
