"""A chat answer is streamed (text arrives while the model still generates, and
a stop ends it early), the conversation is rendered with the run's template
(the same token ids as the template applied to the same messages), and a
sampled answer comes out the same again from the same seed, whatever the
process's own random generator does meanwhile."""

import threading

import pytest
import torch
from tiny import build_model

from finetune.evaluate.chat import SeededSampler, render_conversation, stream_answer
from finetune.evaluate.generate import generate
from finetune.evaluate.sampling import Sampling

CONVERSATION = [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Italy?"}]


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return build_model(tiny_tokenizer)


def _answer(model, tokenizer, sampling, messages=CONVERSATION, **kwargs) -> str:
    *_, last = stream_answer(model, tokenizer, render_conversation(tokenizer, messages), sampling, **kwargs)
    return last


def test_the_conversation_is_rendered_with_the_runs_template(tiny_tokenizer):
    system = [{"role": "system", "content": "Answer in one word."}]
    text = render_conversation(tiny_tokenizer, CONVERSATION, "chat", "Answer in one word.")
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    expected = tiny_tokenizer.apply_chat_template(system + CONVERSATION, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]
    assert ids == list(expected)
    # A system message in the conversation wins over the run's system prompt.
    assert render_conversation(tiny_tokenizer, system + CONVERSATION, "auto", "Be verbose.") == text
    # The template's own default system prompt when there is none (the tiny template has one).
    assert "You are a tiny test model." in render_conversation(tiny_tokenizer, CONVERSATION)
    alpaca = render_conversation(tiny_tokenizer, CONVERSATION, "alpaca")
    assert alpaca.index("### Instruction:\nWhat is the capital") < alpaca.index("Paris.") \
        < alpaca.index("### Instruction:\nAnd of Italy?")
    assert alpaca.endswith("### Response:\n")
    with pytest.raises(ValueError, match="ends with the user's message"):
        render_conversation(tiny_tokenizer, CONVERSATION[:2])


def test_text_arrives_while_the_model_still_generates(model, tiny_tokenizer):
    sampling = Sampling(temperature=1.0, max_new_tokens=40, repetition_penalty=1.0)
    prompt = render_conversation(tiny_tokenizer, CONVERSATION)
    whole = list(stream_answer(model, tiny_tokenizer, prompt, sampling))
    assert len(whole) > 2 and all(whole[i + 1].startswith(whole[i]) for i in range(len(whole) - 1))
    # Stopped after its first piece of text, the answer ends there: the text came before the end.
    stop = threading.Event()
    stopped = []
    for text in stream_answer(model, tiny_tokenizer, prompt, sampling, stop=stop):
        stopped.append(text)
        stop.set()
    assert len(stopped) <= 2 and len(stopped[-1]) < len(whole[-1]) and whole[-1].startswith(stopped[-1])


def test_a_greedy_answer_is_the_models_greedy_continuation(model, tiny_tokenizer):
    prompt = render_conversation(tiny_tokenizer, CONVERSATION)
    greedy = Sampling(greedy=True, max_new_tokens=12, repetition_penalty=1.0)
    assert _answer(model, tiny_tokenizer, greedy).strip() == generate(model, tiny_tokenizer, [prompt], 12)[0]


def test_the_same_seed_gives_the_same_answer_whatever_else_draws_random_numbers(model, tiny_tokenizer):
    sampling = Sampling(temperature=1.2, top_p=0.95, max_new_tokens=24, seed=7)
    torch.manual_seed(1)
    first = _answer(model, tiny_tokenizer, sampling)
    torch.manual_seed(2)  # a run training in another thread moves torch's own generator
    torch.rand(100)
    assert _answer(model, tiny_tokenizer, sampling) == first
    others = {_answer(model, tiny_tokenizer, Sampling(temperature=1.2, top_p=0.95, max_new_tokens=24, seed=s))
              for s in (8, 9, 10)}
    assert others != {first}  # another seed, another answer


def test_top_p_draws_only_among_the_likeliest_tokens_holding_that_probability():
    scores = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()

    def drawn(top_p, temperature=1.0, draws=400):
        sampler = SeededSampler(temperature, top_p, seed=0)
        return [int(sampler(None, scores).argmax()) for _ in range(draws)]

    assert set(drawn(0.7)) == {0, 1}  # 0.5 + 0.3 hold 0.7: the other two are never drawn
    assert set(drawn(1.0)) == {0, 1, 2, 3}
    assert set(drawn(0.05)) == {0}
    cold, hot = drawn(1.0, temperature=0.3), drawn(1.0, temperature=2.0)
    assert cold.count(0) > drawn(1.0).count(0) > hot.count(0)  # a low temperature sharpens, a high one flattens


@pytest.mark.parametrize("changes, message", [
    (dict(temperature=float("nan")), "temperature: nan is not a finite number"),
    (dict(top_p=1.5), "top_p: 1.5 is outside 0.05..1"),
    (dict(repetition_penalty=0.5), "repetition_penalty: 0.5 is outside 1..2"),
    (dict(max_new_tokens=0), "max_new_tokens: give at least 1"),
    (dict(max_new_tokens=5000), "max_new_tokens: 5000 is not a whole number from 0 to 4,096"),
    (dict(seed=-1), "seed: -1 is not a whole number"),
    (dict(seed=1.5), "seed: 1.5 is not a whole number"),
])
def test_a_sampling_setting_out_of_its_range_is_refused_in_one_line(changes, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Sampling(**changes).checked()
