"""GGUF for llama.cpp and Ollama: the file reads back with the gguf reader
tensor for tensor, transformers' own GGUF loader answers exactly as the model
folder did, and the Modelfile's template renders as the tokenizer's does."""

import errno

import numpy as np
import pytest
import tiny
import torch
from safetensors.torch import load_file

from finetune.export import gguf as gguf_export
from finetune.export.gguf import GGUFError, export_gguf, permute_for_rope
from finetune.export.ollama import TemplateError, chat_segments, modelfile

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def _greedy(model, tokenizer, tokens=8):
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=tokens, do_sample=False)[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("outtype", ["f32", "f16", "bf16", "q8_0"])
def test_every_tensor_reads_back_with_the_gguf_reader(tiny_model_dir, tmp_path, outtype):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    path = export_gguf(tiny_model_dir, tmp_path / "tiny.gguf", outtype)
    reader = GGUFReader(str(path))
    weights = load_file(tiny_model_dir / "model.safetensors")
    read = {t.name: dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape)])
            for t in reader.tensors}
    assert len(read) == len([k for k in weights if k != "lm_head.weight"])  # tied output layer not repeated
    q = weights["model.layers.1.self_attn.q_proj.weight"].numpy()
    tolerance = {"f32": 0, "f16": 1e-3, "bf16": 1e-2, "q8_0": 2e-2}[outtype]
    np.testing.assert_allclose(read["blk.1.attn_q.weight"], permute_for_rope(q, 4, 4), atol=tolerance)
    np.testing.assert_allclose(read["token_embd.weight"], weights["model.embed_tokens.weight"].numpy(),
                               atol=tolerance)
    assert read["blk.0.attn_norm.weight"].dtype == np.float32  # norms stay f32 whatever the type
    fields = {name: reader.fields[name].contents() for name in ("general.architecture", "llama.block_count",
                                                                  "llama.attention.head_count_kv",
                                                                  "tokenizer.ggml.model")}
    assert fields == {"general.architecture": "llama", "llama.block_count": 2, "llama.attention.head_count_kv": 2,
                      "tokenizer.ggml.model": "gpt2"}
    assert reader.fields["tokenizer.chat_template"].contents() == tiny.CHAT_TEMPLATE
    assert reader.fields["tokenizer.ggml.pre"].contents() == "gpt-2"  # a plain byte-level split: llama.cpp's name


def test_transformers_reads_the_gguf_back_and_answers_the_same(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export_gguf(tiny_model_dir, tmp_path / "tiny.gguf", "f32")
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf")
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file="tiny.gguf")
    assert _greedy(loaded, loaded_tokenizer) == _greedy(original, tokenizer)
    ids = tokenizer("The capital of France is Paris.", return_tensors="pt").input_ids
    assert loaded_tokenizer("The capital of France is Paris.", return_tensors="pt").input_ids.tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, original(ids).logits)


def test_a_model_that_is_not_llama_shaped_is_refused_in_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(GGUFError, match="Llama-shaped.*convert_hf_to_gguf"):
        export_gguf(tmp_path, tmp_path / "x.gguf")
    with pytest.raises(GGUFError, match="unknown GGUF type"):
        export_gguf(tmp_path, tmp_path / "x.gguf", "q4_k")


def test_a_full_disk_leaves_no_file_behind(tiny_model_dir, tmp_path, monkeypatch):
    import gguf

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    with pytest.raises(GGUFError, match="No space left on device"):
        export_gguf(tiny_model_dir, tmp_path / "out" / "tiny.gguf")
    assert list((tmp_path / "out").iterdir()) == []


def test_too_little_free_space_is_refused_before_writing(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_export.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(GGUFError, match="not enough disk space for tiny.gguf: it needs about"):
        export_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    assert not list(tmp_path.glob("*tiny.gguf*"))


@pytest.mark.parametrize("messages", [
    PROMPT,
    [{"role": "system", "content": "Be brief."}, *PROMPT, {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "And of Italy?"}],
])
def test_the_modelfile_template_renders_as_the_tokenizer_does(tiny_tokenizer, messages):
    segments = chat_segments(tiny_tokenizer)
    for generation in (False, True):
        expected = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        assert segments.render(messages, generation) == expected
    text = modelfile(tiny_tokenizer, "model.gguf")
    assert text.startswith("FROM ./model.gguf\n")
    assert '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in text
    assert 'SYSTEM """You are a tiny test model."""' in text and 'PARAMETER stop "<|im_end|>"' in text


def test_the_modelfile_carries_the_system_prompt_training_used(tiny_tokenizer):
    assert 'SYSTEM """Answer in French."""' in modelfile(tiny_tokenizer, "m.gguf", system="Answer in French.")


def test_a_template_without_turns_is_refused_in_one_line():
    no_template = tiny.build_tokenizer(chat_template=False)
    with pytest.raises(TemplateError, match="no chat template"):
        modelfile(no_template, "m.gguf")
    reversed_turns = tiny.build_tokenizer(chat_template=False)
    reversed_turns.chat_template = "{% for m in messages | reverse %}{{ m['content'] }}|{% endfor %}"
    with pytest.raises(TemplateError, match="turn by turn"):
        chat_segments(reversed_turns)
