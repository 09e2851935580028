"""A finished run's models for a chat: found from its folder (best or final, the
run's template and system prompt), held while a conversation uses them and let
go when idle or when room is needed, never while one answers; and its GGUF,
answered by llama.cpp, gives the greedy answer transformers gives."""

import importlib.util
import json
import shutil
import threading

import pytest
import torch

from finetune.evaluate.sampling import Sampling
from finetune.export.chat_models import HeldModels, Loaded, load_gguf, load_transformers, run_models
from finetune.export.checkpoint import ExportError
from finetune.sources.models import ModelSource


class Closing(Loaded):
    """A held model that says when it is let go."""

    def __init__(self, name):
        super().__init__(model=name, tokenizer=None)
        self.closed = threading.Event()

    def close(self):
        self.closed.set()


@pytest.fixture
def run_folder(tmp_path, tiny_model_dir):
    folder = tmp_path / "20261201-000000-abcd"
    shutil.copytree(tiny_model_dir, folder / "model")
    (folder / "config.json").write_text(json.dumps({"model": str(tiny_model_dir), "system_prompt": "Be brief.",
                                                    "resolved": {"template": "alpaca"}}))
    return folder


def test_a_runs_models_are_found_in_its_folder(run_folder, tiny_model_dir):
    found = run_models(run_folder, "best")
    assert found.which == "final" and found.trained == run_folder / "model"  # it kept no best: the final model
    assert found.base.location == str(tiny_model_dir)
    assert (found.template, found.system_prompt) == ("alpaca", "Be brief.")
    shutil.copytree(tiny_model_dir, run_folder / "best")
    (run_folder / "best" / "best.json").write_text(json.dumps({"step": 3, "eval_loss": 1.5}))
    assert run_models(run_folder, "best").trained == run_folder / "best"
    assert run_models(run_folder, "final").trained == run_folder / "model"
    shutil.rmtree(run_folder / "model")
    with pytest.raises(ExportError, match="has no final model"):
        run_models(run_folder, "final")


def test_a_held_model_is_loaded_once_and_let_go_when_idle():
    held, loads = HeldModels(idle_seconds=0.2), []
    model = Closing("base")

    def load():
        loads.append(1)
        return model

    with held.use(("base",), load) as first:
        pass
    with held.use(("base",), load) as again:
        assert again is first and len(loads) == 1
    assert model.closed.wait(timeout=10), "an idle model is let go"
    assert held.held() == []


def test_a_model_answering_is_never_let_go_and_the_least_recently_used_makes_room():
    held = HeldModels(idle_seconds=3600, most=2)
    models = {name: Closing(name) for name in ("a", "b", "c")}
    with held.use(("a",), lambda: models["a"]):
        held.idle_seconds = 0
        held.release_idle()
        assert held.held() == [("a",)] and not models["a"].closed.is_set()  # in use: kept
    held.idle_seconds = 3600
    with held.use(("b",), lambda: models["b"]):
        pass
    with held.use(("a",), lambda: models["a"]):
        pass
    with held.use(("c",), lambda: models["c"]):
        pass
    assert models["b"].closed.is_set() and not models["a"].closed.is_set()  # b was used least recently
    held.release_all()
    assert models["a"].closed.is_set() and models["c"].closed.is_set() and held.held() == []


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (it builds llama.cpp from source; .ci/setup tries)")
def test_the_gguf_answers_as_the_transformers_model_does(tmp_path, tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    # Untied output weights: the tied tiny model only ever repeats the prompt's last token.
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=tiny_tokenizer.eos_token_id,
                         pad_token_id=tiny_tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    greedy = Sampling(greedy=True, max_new_tokens=12, repetition_penalty=1.0)
    gguf = load_gguf(tmp_path)
    try:
        *_, from_gguf = gguf.answer(messages, "auto", greedy)
    finally:
        gguf.close()
    assert not gguf.scratch.exists()  # the exported file goes with the model
    *_, from_transformers = load_transformers(ModelSource("local", str(tmp_path), "t")).answer(messages, "auto", greedy)
    # A byte-level token that is half a character: transformers shows U+FFFD, llama.cpp waits for the rest.
    assert len(from_gguf) >= 8 and from_gguf == from_transformers.replace("\ufffd", "")
