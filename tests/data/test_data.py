"""Loading, format detection, normalisation, rendering and label masking."""

import json

import pytest

from finetune.data.dataset import prepare, split_examples
from finetune.data.formats import normalise
from finetune.data.render import IGNORE, Renderer
from finetune.sources.files import DataError, read_table
from finetune.train.config import TrainConfig

ALPACA = [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
          {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}]


def load(path, **kw):
    table = read_table(path)
    return normalise(table, **kw)


@pytest.mark.parametrize("name, content, expected", [
    ("a.json", json.dumps(ALPACA), "alpaca"),
    ("d.jsonl", "\n".join(json.dumps({"instruction": "Hi", "context": "", "response": "Hello"}) for _ in range(2)), "dolly"),
    ("p.jsonl", json.dumps({"prompt": "Say yes", "completion": "yes"}), "prompt_completion"),
    ("q.csv", "question,answer\nWhat is 2+2?,4\n", "qa"),
    ("s.json", json.dumps([{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                                              {"from": "gpt", "value": "Hello"}]}]), "sharegpt"),
    ("m.jsonl", json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}),
     "messages"),
    ("t.jsonl", json.dumps({"text": "Once upon a time there was a tiny model that learned."}), "text"),
    ("o.json", json.dumps({"data": ALPACA}), "alpaca"),
    ("r.json", json.dumps({"a": ALPACA[0], "b": ALPACA[1]}), "alpaca"),
])
def test_every_format_is_detected_and_normalised(write, name, content, expected):
    result = load(write(name, content))
    assert result.format == expected
    for example in result.examples:
        if example.is_chat:
            assert example.messages[-1]["role"] == "assistant" and example.messages[0]["role"] == "user"
        else:
            assert example.text


def test_sharegpt_system_and_alpaca_input_are_kept(write):
    chat = load(write("s.json", json.dumps([{"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}])))
    assert chat.examples[0].system == "Be brief."
    alpaca = load(write("a.json", json.dumps(ALPACA)))
    assert alpaca.examples[1].context == "2 and 3" and alpaca.examples[0].context is None


def test_two_column_csv_needs_an_explicit_mapping(write):
    path = write("x.csv", "Question,Best Answer\nWhy?,Because.\n")
    with pytest.raises(DataError, match="cannot tell the format"):
        load(path)
    mapped = load(path, format="columns", prompt_column="Question", response_column="Best Answer")
    assert mapped.examples[0].messages[1]["content"] == "Because."


@pytest.mark.parametrize("name, content, message", [
    ("e.json", "", "empty"),
    ("bad.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": oops}\n', "invalid JSON on line 2"),
    ("bad.json", '[{"prompt": "a",\n "completion": }]', "invalid JSON on line 2"),
    ("m.csv", "instruction,answer\nHi,there\n", "cannot tell the format"),
    ("r.csv", "question,answer\nWhy?,Because\nHow?,Like,this\n", "line 3 has 3 fields"),
    ("x.txt", "hello", "unsupported file type"),
])
def test_bad_files_are_refused_naming_the_problem(write, name, content, message):
    with pytest.raises(DataError, match=message) as err:
        load(write(name, content))
    assert name in str(err.value)


def test_missing_columns_say_what_was_expected_and_found(write):
    with pytest.raises(DataError, match="expected instruction, output; found instruction, answer"):
        load(write("a.json", json.dumps([{"instruction": "x", "answer": "y"}])), format="alpaca")


def test_non_text_values_are_refused_with_row_numbers(write):
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": 5}, {"prompt": {"x": 1}, "completion": "d"}]
    with pytest.raises(DataError, match="record 3") as err:
        load(write("p.json", json.dumps(rows)))
    assert "dict" in str(err.value)


def test_empty_responses_are_dropped_and_reported(write):
    rows = ALPACA + [{"instruction": "Say nothing", "input": "", "output": "  "}]
    result = load(write("a.json", json.dumps(rows)))
    assert len(result.examples) == 2
    assert result.dropped["empty response"] == ["record 3"]
    assert any("empty response" in n for n in result.notices)


def test_blank_and_na_cells_never_reach_the_tokenizer(write):
    result = load(write("q.csv", "question,answer\nWhat?,NA\nWho?,\nWhy?,null\nHow?,Like this\n"))
    assert [e.response for e in result.examples] == ["Like this"]
    assert any("3 blank, null or NA cells" in n for n in result.notices)


def test_chat_template_masks_everything_but_the_reply(tiny_tokenizer):
    from finetune.data.formats import Example

    example = Example(messages=({"role": "user", "content": "What is the capital of France?"},
                                {"role": "assistant", "content": "Paris."}))
    encoded = Renderer(tiny_tokenizer, "auto").encode(example)
    trained = tiny_tokenizer.decode([t for t in encoded.labels if t != IGNORE])
    assert trained == "Paris.<|im_end|>"
    assert encoded.labels[: encoded.input_ids.index(tiny_tokenizer.convert_tokens_to_ids("<|im_start|>"), 1)] == \
        [IGNORE] * encoded.input_ids.index(tiny_tokenizer.convert_tokens_to_ids("<|im_start|>"), 1)


def test_multi_turn_trains_every_assistant_turn(tiny_tokenizer):
    from finetune.data.formats import Example

    example = Example(messages=({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}))
    encoded = Renderer(tiny_tokenizer, "chat").encode(example)
    trained = tiny_tokenizer.decode([t for t in encoded.labels if t != IGNORE])
    assert trained == "Hello<|im_end|>Ciao<|im_end|>"


def test_alpaca_template_has_input_section_and_trains_eos(tiny_tokenizer):
    from finetune.data.formats import Example

    example = Example(messages=({"role": "user", "content": "Add."}, {"role": "assistant", "content": "5"}),
                      context="2 and 3")
    renderer = Renderer(tiny_tokenizer, "alpaca")
    text, _ = renderer.render(example)
    assert "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n5<|im_end|>" in text
    encoded = renderer.encode(example)
    assert tiny_tokenizer.decode([t for t in encoded.labels if t != IGNORE]) == "5<|im_end|>"
    assert renderer.prompt(example).endswith("### Response:\n")


def test_split_keeps_held_out_prompts_out_of_training():
    from finetune.data.formats import Example

    examples = [Example(messages=({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}))
                for i in range(100)]
    split = split_examples(examples, held_out=10, validation_fraction=0.1, seed=3)
    assert len(split.held_out) == 10 and len(split.validation) == 9 and len(split.train) == 81
    ids = [{id(e) for e in part} for part in (split.train, split.validation, split.held_out)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = split_examples(examples, held_out=10, validation_fraction=0.1, seed=3)
    assert [e.messages for e in again.held_out] == [e.messages for e in split.held_out]


def test_marked_split_column_wins(write, tiny_tokenizer):
    rows = [{"instruction": f"q{i}", "output": f"a{i}", "split": "heldout" if i < 4 else "train"} for i in range(30)]
    prepared = prepare(TrainConfig(data=str(write("a.json", json.dumps(rows)))), tiny_tokenizer)
    assert [h.question for h in prepared.held_out] == ["q0", "q1", "q2", "q3"]


def test_overlong_examples_are_counted_and_truncated_or_dropped(write, tiny_tokenizer):
    rows = [{"instruction": "Tell a story.", "output": "word " * 300}] + ALPACA * 10
    path = write("a.json", json.dumps(rows))
    truncated = prepare(TrainConfig(data=str(path), max_length=64, held_out=0, validation_fraction=0), tiny_tokenizer)
    dropped = prepare(TrainConfig(data=str(path), max_length=64, held_out=0, validation_fraction=0,
                                  overlong="drop"), tiny_tokenizer)
    assert truncated.report["over_max_length"] == 1 and len(truncated.train) == 21
    assert max(len(e.input_ids) for e in truncated.train) == 64
    assert len(dropped.train) == 20
    assert any("exceed max_length 64" in n for n in truncated.notices)


REAL_FILES = {
    "alpaca_1k.json": ("alpaca", 1000), "alpaca_gpt4_demo.json": ("alpaca", 999),
    "sharegpt_sample.json": ("sharegpt", 300), "sharegpt_toolcall_sample.json": ("sharegpt", 300),
    "messages_sample.jsonl": ("messages", 95), "qa_pairs_sample.csv": ("qa", 817),
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_datasets_load_and_mask(shared_data, tiny_tokenizer, name):
    expected_format, records = REAL_FILES[name]
    prepared = prepare(TrainConfig(data=str(shared_data / name), max_length=4096), tiny_tokenizer)
    assert prepared.format == expected_format
    assert prepared.report["records"] == records
    assert len(prepared.held_out) == 10
    for encoded in prepared.train[:50]:
        assert len(encoded.labels) == len(encoded.input_ids)
        trained = [i for i, t in enumerate(encoded.labels) if t != IGNORE]
        assert trained and trained[0] > 0, "the prompt is never trained"
    assert prepared.report["duplicates"] >= (14 if name == "alpaca_gpt4_demo.json" else 0)


def test_real_two_column_csv_with_mapping(shared_data, tiny_tokenizer):
    config = TrainConfig(data=str(shared_data / "qa_sample.csv"), format="columns", prompt_column="Question",
                         response_column="Best Answer")
    prepared = prepare(config, tiny_tokenizer)
    assert prepared.report["examples"] == 817 and prepared.held_out[0].reference
