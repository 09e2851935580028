"""Preference data in each form people have it is detected and read into pairs
(or KTO's labelled replies), rendered into exactly the tokens TRL's trainers
build from the same record, and a bad preference file gets one line."""

import json
from types import SimpleNamespace

import pytest

from finetune.data.example import Example
from finetune.data.formats import normalise
from finetune.data.render import Renderer
from finetune.sources.files import DataError, load_table

PROMPT, CHOSEN, REJECTED = "Convert to ISO 8601: March 3, 2021", "2021-03-03", "3/3/2021, I think"


def read(write, name, rows, **mapping):
    path = write(name, "\n".join(json.dumps(r) for r in rows)) if name.endswith(".jsonl") else write(name, rows)
    return normalise(load_table(str(path)), mapping.pop("format", "auto"), **mapping)


def only_pair(found):
    assert found.kind == "pair" and len(found.examples) == 1
    example = found.examples[0]
    return example.messages[-2]["content"], example.response, example.rejected


@pytest.mark.parametrize("record, fmt", [
    ({"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}, "preference"),  # TRL's standard form
    ({"prompt": [{"role": "user", "content": PROMPT}], "chosen": [{"role": "assistant", "content": CHOSEN}],
      "rejected": [{"role": "assistant", "content": REJECTED}]}, "preference"),  # TRL's conversational form
    ({"chosen": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": CHOSEN}],
      "rejected": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": REJECTED}]},
     "implicit_preference"),  # TRL's implicit prompt
    ({"chosen": f"\n\nHuman: {PROMPT}\n\nAssistant: {CHOSEN}", "rejected": f"\n\nHuman: {PROMPT}\n\nAssistant: {REJECTED}"},
     "implicit_preference"),  # Anthropic HH-RLHF's transcripts
    ({"conversations": [{"from": "human", "value": PROMPT}], "chosen": {"from": "gpt", "value": CHOSEN},
      "rejected": {"from": "gpt", "value": REJECTED}}, "sharegpt_preference"),  # LLaMA-Factory's form
])
def test_each_pair_form_is_detected_and_read(write, record, fmt):
    found = read(write, "pairs.jsonl", [record])
    assert found.format == fmt
    assert only_pair(found) == (PROMPT, CHOSEN, REJECTED)


def test_openassistant_trees_pair_the_best_ranked_reply_with_each_other(write):
    def reply(text, rank, replies=()):
        return {"role": "assistant", "text": text, "rank": rank, "replies": list(replies)}

    follow_up = {"role": "prompter", "text": "And in May?", "replies": [reply("2021-05-03", 0), reply("May 3", 1)]}
    tree = {"message_tree_id": "t1", "prompt": {"message_id": "m1", "role": "prompter", "text": PROMPT,
                                                "replies": [reply(REJECTED, 2), reply(CHOSEN, 0, [follow_up]),
                                                            reply("March third", 1)]}}
    found = read(write, "trees.jsonl", [tree])
    assert found.format == "oasst"
    pairs = [(e.messages[-2]["content"], e.response, e.rejected, len(e.messages)) for e in found.examples]
    assert pairs == [(PROMPT, CHOSEN, "March third", 2), (PROMPT, CHOSEN, REJECTED, 2),
                     ("And in May?", "2021-05-03", "May 3", 4)]  # the follow-up keeps the conversation so far


def test_unpaired_replies_carry_their_label_for_kto(write):
    rows = [{"prompt": PROMPT, "completion": CHOSEN, "label": True},
            {"prompt": PROMPT, "completion": REJECTED, "label": "false"}]
    found = read(write, "kto.jsonl", rows)
    assert (found.format, found.kind) == ("unpaired", "unpaired")
    assert [(e.response, e.desirable) for e in found.examples] == [(CHOSEN, True), (REJECTED, False)]
    with pytest.raises(DataError, match="line 1: label must be true .* or false .*, got 'maybe'"):
        read(write, "bad.jsonl", [{"prompt": PROMPT, "completion": CHOSEN, "label": "maybe"}])


def test_any_table_by_column_mapping(write):
    table = "question,best,wrong\n" + f'"{PROMPT}",{CHOSEN},"{REJECTED}"\n'
    found = read(write, "pairs.csv", table, format="columns", prompt_column="question", response_column="best",
                 rejected_column="wrong")
    assert only_pair(found) == (PROMPT, CHOSEN, REJECTED)
    with pytest.raises(DataError, match="missing columns nope"):
        read(write, "pairs.csv", table, format="columns", prompt_column="question", response_column="best",
             rejected_column="nope")


def test_bad_preference_files_get_one_line(write):
    with pytest.raises(DataError) as missing:
        read(write, "half.jsonl", [{"prompt": PROMPT, "chosen": CHOSEN}], format="preference")
    assert str(missing.value).count("\n") == 0 and "no 'rejected' column for preference data" in str(missing.value)
    same = [{"prompt": PROMPT, "chosen": CHOSEN, "rejected": CHOSEN}] * 2
    with pytest.raises(DataError, match="no usable records .*2 records with chosen equal to rejected"):
        read(write, "same.jsonl", same)
    rows = [{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}, {"prompt": PROMPT, "chosen": "", "rejected": "x"},
            {"prompt": PROMPT, "chosen": "y", "rejected": "  "}, {"prompt": PROMPT, "chosen": "z", "rejected": "z"}]
    found = read(write, "mixed.jsonl", rows)
    assert len(found.examples) == 1
    assert found.dropped == {"empty chosen reply": ["line 2"], "empty rejected reply": ["line 3"],
                             "chosen equal to rejected": ["line 4"]}


def trl_tokens(tokenizer, records, objective):
    """What TRL's own dataset preparation builds from the records (its tokenization, not ours)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    config, trainer = (DPOConfig, DPOTrainer) if objective == "dpo" else (KTOConfig, KTOTrainer)
    args = config(output_dir="unused", max_length=None, report_to="none", use_cpu=True, bf16=False)
    this = SimpleNamespace(_tokenizer=tokenizer, _is_vision_dataset=False, calculate_KL=False)
    return list(trainer._prepare_dataset(this, Dataset.from_list(records), tokenizer, args, "train"))


@pytest.mark.parametrize("template", ["chat", "alpaca"])
def test_pairs_render_to_the_tokens_trl_trains(tiny_tokenizer, template):
    """The prompt and each reply, token for token, as TRL's DPO and KTO trainers build them."""
    renderer = Renderer(tiny_tokenizer, template, "")
    pairs = [Example(messages=({"role": "user", "content": PROMPT}, {"role": "assistant", "content": CHOSEN}),
                     rejected=REJECTED, system="Answer briefly."),
             Example(messages=({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                               {"role": "user", "content": PROMPT}, {"role": "assistant", "content": CHOSEN}),
                     rejected=REJECTED)]
    built = trl_tokens(tiny_tokenizer, [renderer.trl_record(e) for e in pairs], "dpo")
    for example, row in zip(pairs, built, strict=True):
        ours = renderer.encode_pair(example)
        assert (ours.prompt_ids, ours.chosen_ids, ours.rejected_ids) == \
               (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])
        assert ours.chosen_ids and ours.rejected_ids and ours.chosen_ids != ours.rejected_ids
    labelled = [Example(messages=e.messages, system=e.system, desirable=i == 0) for i, e in enumerate(pairs)]
    built = trl_tokens(tiny_tokenizer, [renderer.trl_record(e) for e in labelled], "kto")
    for example, row in zip(labelled, built, strict=True):
        ours = renderer.encode_pair(example)
        assert (ours.prompt_ids, ours.chosen_ids, ours.rejected_ids) == (row["prompt_ids"], row["completion_ids"], [])
