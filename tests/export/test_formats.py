"""Every export format of a trained LoRA run loads back and answers one
held-out-style prompt exactly as the run's own model does: the merged
folder, the adapters over the base (peft), and the GGUF file (read by
transformers' GGUF loader, and by llama.cpp when llama-cpp-python is
installed)."""

import importlib.util
import zipfile

import pytest
import torch
from tiny_runs import RECORDS, run_to_end, tiny_config

from finetune.export.bundle import export_run
from finetune.export.checkpoint import ExportError
from finetune.export.formats import FORMATS

PROMPT = [{"role": "user", "content": "Convert the date to ISO 8601: March 7, 2021"}]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    import json

    folder = tmp_path_factory.mktemp("lora")
    data = folder / "dates.json"
    data.write_text(json.dumps(RECORDS))
    run_to_end(tiny_config(tiny_model_dir, data, method="lora", learning_rate=3e-3, lora_r=8, epochs=1,
                           keep_best="off"), folder / "run")
    return folder / "run"


def _unzip(path, target):
    with zipfile.ZipFile(path) as archive:
        archive.extractall(target)
    return target


def _greedy(model, tokenizer, tokens=10):
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.generate(ids, max_new_tokens=tokens, do_sample=False)[0, ids.shape[1]:].tolist()


@pytest.fixture(scope="module")
def reference(lora_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(lora_run / "model")
    tokenizer = AutoTokenizer.from_pretrained(lora_run / "model")
    return _greedy(model, tokenizer), tokenizer


def test_the_merged_zip_answers_as_the_run(lora_run, reference, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = _unzip(export_run(lora_run, fmt="merged"), tmp_path)
    assert _greedy(AutoModelForCausalLM.from_pretrained(folder), reference[1]) == reference[0]


def test_the_adapters_alone_load_over_the_base_and_answer_as_the_run(lora_run, reference, tmp_path,
                                                                     tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = export_run(lora_run, fmt="adapter")
    folder = _unzip(path, tmp_path)
    assert (folder / "adapter_config.json").is_file() and path.stat().st_size < 200_000  # adapters, not a model
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), folder)
    assert _greedy(model, AutoTokenizer.from_pretrained(folder)) == reference[0]
    assert "PeftModel.from_pretrained" in (folder / "README.md").read_text()


def test_the_gguf_zip_answers_as_the_run_and_carries_a_modelfile(lora_run, reference, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _unzip(export_run(lora_run, fmt="gguf-f16"), tmp_path)
    assert (folder / "Modelfile").read_text().startswith("FROM ./model-f16.gguf")
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model-f16.gguf", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="model-f16.gguf")
    assert _greedy(model, tokenizer) == reference[0]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (it builds llama.cpp from source; .ci/setup tries)")
def test_llama_cpp_answers_from_the_gguf_as_the_run(lora_run, reference, tmp_path):
    from llama_cpp import Llama

    folder = _unzip(export_run(lora_run, fmt="gguf-f16"), tmp_path)
    tokenizer = reference[1]
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    llm = Llama(model_path=str(folder / "model-f16.gguf"), n_ctx=256, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    assert tokens == tokenizer(text).input_ids  # the same vocabulary and merges
    answer = []
    for token in llm.generate(tokens, temp=0.0, top_k=1):
        if len(answer) == 10:
            break
        answer.append(token)
    assert answer[:len(reference[0])] == reference[0][:len(answer)]


def test_a_full_run_has_no_adapters_and_an_unknown_format_is_refused(tiny_model_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "run" / "model")
    with pytest.raises(ExportError, match="only LoRA and QLoRA runs"):
        export_run(tmp_path / "run", fmt="adapter")
    with pytest.raises(ExportError, match="unknown export format"):
        export_run(tmp_path / "run", fmt="onnx")
    assert set(FORMATS) == {"merged", "adapter", "gguf-f16", "gguf-bf16", "gguf-q8_0"}
    assert not list((tmp_path / "run").glob("export/*"))
