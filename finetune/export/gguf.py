"""A trained model as one GGUF file, for llama.cpp and Ollama, written with the
`gguf` package (llama.cpp's own Python library) in the layout llama.cpp's
convert_hf_to_gguf.py gives a Llama-family model: its tensor names, the q/k
rows permuted for its rotary layout, 1-D tensors in f32, the byte-level BPE
vocabulary with its merges, the special tokens and the chat template.

Types: f32, f16, bf16 and q8_0 (a tensor whose rows are not a multiple of the
q8_0 block of 32 stays f16, as llama.cpp's converter does). Llama-shaped models
only (Llama, SmolLM, Mistral, TinyLlama): anything else is refused in one line,
pointing at llama.cpp's converter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

OUTTYPES = ("f16", "bf16", "q8_0", "f32")
LLAMA_LIKE = ("llama", "mistral")  # model_type values that share llama.cpp's "llama" architecture
HEADROOM = 1.05  # free disk asked for beyond the file's own size


class GGUFError(ValueError):
    """The model cannot be written as GGUF; the message is one line for the user."""


def export_gguf(model_dir: str | Path, target: str | Path, outtype: str = "f16", name: str | None = None,
                pre_tokenizer: str | None = None) -> Path:
    """Write `model_dir` (a transformers model folder: safetensors and tokenizer)
    as one GGUF file at `target`, atomically; returns the path. `pre_tokenizer`
    names llama.cpp's pre-tokenizer (how text is split before BPE); None reads
    it off tokenizer.json (pre_tokenizer_name)."""
    import gguf

    model_dir, target = Path(model_dir), Path(target)
    if outtype not in OUTTYPES:
        raise GGUFError(f"unknown GGUF type {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    config = _llama_config(model_dir)
    tensors = _tensors(model_dir, config)
    _check_disk(target, sum(_bytes_for(t, outtype) for t in tensors.values()))
    partial = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        writer = gguf.GGUFWriter(partial, arch="llama")
        _write_hyperparameters(writer, config, outtype, name or model_dir.name)
        _write_vocabulary(writer, model_dir, config, pre_tokenizer or pre_tokenizer_name(model_dir))
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
        for hf_name, array in tensors.items():
            _add_tensor(writer, names, hf_name, array, config, outtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        partial.replace(target)  # a half-written file never takes the final name
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise GGUFError(f"could not write {target.name}: {err.strerror or err}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


def _llama_config(model_dir: Path) -> dict:
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise GGUFError(f"{model_dir.name} is not a model folder (no readable config.json)") from None
    if config.get("model_type") not in LLAMA_LIKE:
        raise GGUFError(f"GGUF export covers Llama-shaped models (Llama, SmolLM, Mistral); this one is "
                        f"{config.get('model_type')!r}: use llama.cpp's convert_hf_to_gguf.py on the exported folder")
    return config


def _tensors(model_dir: Path, config: dict) -> dict[str, np.ndarray]:
    """Every weight as float32 numpy (bf16 has no numpy dtype), in file order;
    the output layer is left out when it is tied to the embeddings."""
    import torch
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise GGUFError(f"{model_dir.name} has no safetensors weights to convert")
    tensors = {}
    for path in files:
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                if key.endswith("rotary_emb.inv_freq") or (key == "lm_head.weight"
                                                            and config.get("tie_word_embeddings", False)):
                    continue
                tensors[key] = handle.get_tensor(key).to(torch.float32).numpy()
    return tensors


def _bytes_for(array: np.ndarray, outtype: str) -> int:
    per_value = {"f32": 4, "f16": 2, "bf16": 2, "q8_0": 34 / 32}[outtype] if array.ndim > 1 else 4
    return int(array.size * per_value)


def _check_disk(target: Path, needed: int) -> None:
    folder = target.parent if target.parent.exists() else Path(".")
    free = shutil.disk_usage(folder).free
    if free < needed * HEADROOM:
        raise GGUFError(f"not enough disk space for {target.name}: it needs about {needed / 2**20:,.0f} MB and "
                        f"{free / 2**20:,.0f} MB are free")


def _write_hyperparameters(writer, config: dict, outtype: str, name: str) -> None:
    import gguf

    heads = config["num_attention_heads"]
    rope = config.get("rope_parameters") or {}
    writer.add_name(name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_rope_dimension_count(config.get("head_dim") or config["hidden_size"] // heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-5)))
    writer.add_vocab_size(config["vocab_size"])
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_vocabulary(writer, model_dir: Path, config: dict, pre_tokenizer: str) -> None:
    """The byte-level BPE vocabulary as llama.cpp reads it ("gpt2" model):
    every id's token, its type (added special tokens are control tokens), the
    merges, the special token ids and the chat template."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    size = config["vocab_size"]
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    special = set(tokenizer.all_special_tokens)
    tokens, types = [], []
    for i in range(size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in special or (token in added and token.startswith("<|"))
                         else gguf.TokenType.USER_DEFINED if token in added else gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special_vocab = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=size)
    if not special_vocab.merges:
        raise GGUFError(f"{model_dir.name}'s tokenizer has no BPE merges: GGUF export covers byte-level BPE "
                        "tokenizers (Llama 3, SmolLM, Mistral's tekken); use llama.cpp's converter for this one")
    special_vocab.chat_template = tokenizer.chat_template  # a chat_template.jinja file is read by transformers
    special_vocab.add_to_gguf(writer, quiet=True)


# Llama 3's split pattern, as its tokenizer.json spells it: llama.cpp's "llama-bpe".
LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"


def pre_tokenizer_name(model_dir: Path) -> str:
    """llama.cpp's name for how this tokenizer splits text before BPE, read off
    tokenizer.json: GPT-2's regex ("gpt-2": a plain byte-level pre-tokenizer: SmolLM,
    GPT-2-style tokenizers) or Llama 3's; "default" otherwise (llama.cpp then
    warns and may split some text differently)."""
    try:
        pre = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return "default"
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    if any(LLAMA3_PATTERN in text for text in _strings(pre)):
        return "llama-bpe"
    return "default"


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [text for item in items for text in _strings(item)]


def _add_tensor(writer, names, hf_name: str, array: np.ndarray, config: dict, outtype: str) -> None:
    import gguf

    new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if new_name is None:
        raise GGUFError(f"no GGUF name for the weight {hf_name!r}: this model is not Llama-shaped")
    heads = config["num_attention_heads"]
    if hf_name.endswith("self_attn.q_proj.weight"):
        array = permute_for_rope(array, heads, heads)
    elif hf_name.endswith("self_attn.k_proj.weight"):
        array = permute_for_rope(array, heads, config.get("num_key_value_heads", heads))
    if array.ndim < 2 or outtype == "f32":  # norms stay f32, as llama.cpp keeps every 1-D tensor
        writer.add_tensor(new_name, array.astype(np.float32))
    elif outtype == "f16" or (outtype == "q8_0" and array.shape[-1] % 32):
        writer.add_tensor(new_name, array.astype(np.float16))
    else:
        qtype = gguf.GGMLQuantizationType.BF16 if outtype == "bf16" else gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(new_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)


def permute_for_rope(weights: np.ndarray, heads: int, kv_heads: int) -> np.ndarray:
    """llama.cpp's rotary layout for the q and k projections (the inverse of
    transformers' reverse permutation when it reads a GGUF back)."""
    if kv_heads != heads:
        heads = kv_heads
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))
