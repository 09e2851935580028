"""What a run measures besides its training, before and after it: the
held-out answers, the general probe, the preference evidence (on preference
pairs), the standard benchmarks, the judge and each validation example's
loss. Each runs on the main process while the others wait at a barrier, and
each is a diagnostic: one that fails is reported and the run goes on without it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, TypeVar

from ..data.render import Renderer
from ..evaluate import benchmarks as bench
from ..evaluate import judge as judging
from ..evaluate import preference, probe
from ..evaluate.generate import generate
from ..sources import models
from ..train import device, ranks
from ..train.config import TrainConfig
from . import reuse, validation_losses
from .job import Job

T = TypeVar("T")


def general_probe(config: TrainConfig, publish) -> probe.Probe | None:
    if not config.general_probe:
        return None
    try:
        return probe.load_probe()
    except probe.ProbeError as err:  # a broken install loses the probe, not the run
        publish(message=f"the general-capability probe is left out: {err}")
        return None


def measured_on_main(publish, message: str, measure: Callable[[], T], left_out: Callable[[str], str],
                     when: bool = True) -> T | None:
    """`measure()` on the main process while the others wait at the barrier (every
    process reaches it, whatever happens). A diagnostic: a failure is published as
    left_out(its reason) and gives None; it never fails the run it measures."""
    result = None
    if when and ranks.is_main():
        publish(message=message)
        try:
            result = measure()
        except Exception as err:  # noqa: BLE001 -- a measurement must never fail the run it measures
            publish(message=left_out(f"{type(err).__name__}: {err}"))
    ranks.barrier()
    return result


def before_key(job: Job, kind: str, hardware, **inputs) -> str:
    """The key a 'before' measurement is kept under (runs/reuse.py): the base model's files, the
    device and precision it ran in, the weights' precision, and what it was asked."""
    return reuse.key_of(kind, model=reuse.model_fingerprint(job.source.location), device=hardware.device,
                        precision=hardware.precision, weights=job.config.weights, **inputs)


def answers_before(job: Job, model, tokenizer, prompts: list[str], hardware) -> tuple[list[str] | None, str | None]:
    """The base model's answers to the held-out prompts, and the key they were kept under when
    they were reused (the same model asked the same prompts the same way before); on the main
    process, the others waiting at its barrier."""
    config = job.config
    if job.reused is None or not prompts:
        return answers_on_main(model, tokenizer, prompts, config, hardware), None
    key = before_key(job, "held-out-answers", hardware, prompts=prompts, max_new_tokens=config.max_new_tokens)
    answers, reused = None, False
    if ranks.is_main():
        answers, reused = job.reused.get(key, lambda: generate(model, tokenizer, prompts, config.max_new_tokens,
                                                               autocast_dtype=hardware.autocast_dtype))
    ranks.barrier()
    return answers, key if reused else None


def probe_before_training(job: Job, general, model, tokenizer, prepared, hardware,
                          publish) -> tuple[probe.ProbeSide | None, str | None]:
    """The general probe on the base model, and its key when it was reused."""
    config = job.config
    if general is None or job.reused is None:
        return probe_on_main(general, model, tokenizer, prepared, config, hardware, publish, "before"), None
    renderer = Renderer(tokenizer, prepared.template, config.system_prompt)
    key = before_key(job, "probe-before", hardware, prompts=probe.probe_prompts(general, renderer),
                     answers=list(general.answers), reference=general.reference,
                     max_new_tokens=min(config.max_new_tokens, probe.PROBE_NEW_TOKENS))
    found = measured_on_main(
        publish, "answering the general-capability probe before training",
        lambda: job.reused.get(key, lambda: probe.measure(model, tokenizer, general, renderer, config.max_new_tokens,
                                                          hardware.autocast_dtype),
                               encode=dataclasses.asdict, decode=lambda d: probe.ProbeSide(
                                   tuple(d["answers"]), d["scores"], d["perplexity"])),
        lambda why: f"the general-capability probe failed and is left out: {why}")
    return (found[0], key if found[1] else None) if found else (None, None)


def probe_on_main(general, model, tokenizer, prepared, config: TrainConfig, hardware, publish,
                  side: str) -> probe.ProbeSide | None:
    """The general probe, before or after training."""
    if general is None:
        return None

    def measure():
        renderer = Renderer(tokenizer, prepared.template, config.system_prompt)
        return probe.measure(model, tokenizer, general, renderer, config.max_new_tokens, hardware.autocast_dtype)

    return measured_on_main(publish, f"answering the general-capability probe {side} training", measure,
                            lambda why: f"the general-capability probe failed and is left out: {why}")


def preference_pairs(prepared) -> list | None:
    """The pairs the preference evidence is measured on (held-out, then validation), or None
    when the data has no pairs (supervised data, KTO's unpaired replies): nothing is measured."""
    if getattr(prepared, "kind", "sft") != "pair":
        return None
    return preference.unseen_pairs(prepared) or None


def preference_on_main(pairs, model, config: TrainConfig, hardware, publish, side: str,
                       job: Job | None = None) -> list | None:
    """Each unseen pair's chosen and rejected mean log-probability per token under `model`,
    before or after training (evaluate/preference.py); None when there are no pairs. Before
    training, the base model's are reused when it measured the same pairs before (runs/reuse.py)."""
    if not pairs:
        return None

    def measure():
        return preference.measure(model, pairs, config.max_length, hardware.autocast_dtype)

    found = measure
    if side == "before" and job is not None and job.reused is not None:
        key = before_key(job, "preference-before", hardware, max_length=config.max_length,
                         pairs=[[e.prompt_ids, e.chosen_ids, e.rejected_ids] for _, _, e in pairs])
        found = lambda: job.reused.get(key, measure, decode=lambda kept: [tuple(pair) for pair in kept])[0]  # noqa: E731
    return measured_on_main(
        publish, f"measuring which reply of {len(pairs)} unseen preference pairs the model prefers, {side} training",
        found, lambda why: f"the preference evidence is left out: {why}")


def validation_losses_on_main(model, prepared, hardware, publish, objective: str = "sft") -> dict | None:
    """Each validation example's loss under the final model, for comparing runs example by example.
    Supervised runs only: a preference run's validation loss is TRL's loss on pairs, not this one."""
    return measured_on_main(
        publish, "measuring each validation example's loss under the trained model",
        lambda: validation_losses.per_example_losses(model, prepared.validation, hardware.autocast_dtype),
        lambda why: f"the per-example validation losses are left out: {why}",
        when=model is not None and bool(prepared.validation) and objective == "sft")


def benchmarks_on_main(config: TrainConfig, model, tokenizer, hardware, publish, side: str,
                       failed: dict[str, str]) -> dict[str, bench.TaskScores] | None:
    """The bundled standard benchmarks, before or after training; a failure is also noted in `failed`."""
    if not config.benchmarks:
        return None

    def left_out(why: str) -> str:
        why = f"the standard benchmarks failed {side} training: {why}"
        failed.setdefault("benchmarks", why)  # the first failure: the second often repeats it
        return f"{why}; the run goes on without them"

    return measured_on_main(
        publish, f"scoring the standard benchmarks {side} training ({len(bench.TASKS)} tasks of 100 items)",
        lambda: bench.run_benchmarks(model, tokenizer, autocast_dtype=hardware.autocast_dtype), left_out)


def judge_on_main(job: Job, token: str | None, prepared, before, after, hardware, publish,
                  failed: dict[str, str]) -> dict | None:
    """The judge compares the held-out answers, loading its model for this and
    letting it go after; a failure is also noted in `failed`."""
    if job.judge is None:
        return None
    is_base = judging.is_base(job.judge, job.source)
    label = f"{job.source.label} (the base model)" if is_base else job.judge.label

    def measure() -> dict:
        try:
            return _judge(job.judge, token, prepared.held_out, before, after, hardware, label, is_base, publish)
        finally:
            device.release_memory()

    def left_out(why: str) -> str:
        failed["judge"] = f"the judge failed: {why}"
        return f"{failed['judge']}; the run goes on without it"

    answered = before is not None and after is not None and bool(prepared.held_out)
    return measured_on_main(publish, f"the judge {label} is comparing the trained and the base model's answers",
                            measure, left_out, when=answered)


def _judge(source, token, held_out, before, after, hardware, label: str, is_base: bool, publish) -> dict:
    # On a GPU the judge's weights are in the autocast dtype: an fp32 7B judge would take 28 GB.
    dtype = hardware.autocast_dtype if hardware.torch_device.type == "cuda" else None
    model, tokenizer = models.load(source, token=token, dtype=dtype, progress=lambda text: publish(message=text))
    place(model, hardware)
    result = judging.judge_answers(model, tokenizer, [h.question for h in held_out], [h.reference for h in held_out],
                                   before, after, autocast_dtype=hardware.autocast_dtype)
    return judging.judge_record(result, label, is_base)


def place(model, hardware: device.Hardware) -> None:
    """Move the model to this process's device (a quantized model is placed when loaded)."""
    if getattr(model, "hf_quantizer", None) is None:
        model.to(hardware.torch_device)


def answers_on_main(model, tokenizer, prompts: list[str], config: TrainConfig, hardware) -> list[str] | None:
    """Greedy answers from the main process; the others wait for them at a barrier."""
    answers = None
    if ranks.is_main():
        answers = generate(model, tokenizer, prompts, config.max_new_tokens, autocast_dtype=hardware.autocast_dtype)
    ranks.barrier()
    return answers
