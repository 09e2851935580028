"""What a run measures besides its training, before and after it: the
held-out answers, the general probe, the standard benchmarks, the judge and
each validation example's loss. Each runs on the main process while the others
wait at a barrier, and each is a diagnostic: one that fails is reported and
the run goes on without it.
"""

from __future__ import annotations

from ..data.render import Renderer
from ..evaluate import benchmarks as bench
from ..evaluate import judge as judging
from ..evaluate import probe
from ..evaluate.generate import generate
from ..sources import models
from ..train import device, ranks
from ..train.config import TrainConfig
from . import validation_losses
from .job import Job


def general_probe(config: TrainConfig, publish) -> probe.Probe | None:
    if not config.general_probe:
        return None
    try:
        return probe.load_probe()
    except probe.ProbeError as err:  # a broken install loses the probe, not the run
        publish(message=f"the general-capability probe is left out: {err}")
        return None


def probe_on_main(general, model, tokenizer, prepared, config: TrainConfig, hardware, publish,
                   side: str) -> probe.ProbeSide | None:
    """The general probe on the main process (the others wait at the barrier).
    A diagnostic only: if it fails, the run goes on without it and says so."""
    if general is None:
        return None
    measured = None
    if ranks.is_main():
        publish(message=f"answering the general-capability probe {side} training")
        try:
            renderer = Renderer(tokenizer, prepared.template, config.system_prompt)
            measured = probe.measure(model, tokenizer, general, renderer, config.max_new_tokens,
                                     hardware.autocast_dtype)
        except Exception as err:  # noqa: BLE001 -- the probe must never fail the run it measures
            publish(message=f"the general-capability probe failed and is left out: {type(err).__name__}: {err}")
    ranks.barrier()
    return measured


def validation_losses_on_main(model, prepared, hardware, publish) -> dict | None:
    """Each validation example's loss under the final model (main process; the
    others wait), for comparing runs example by example. Like the probe, a
    measurement only: if it fails, the run goes on without it and says so."""
    found = None
    if ranks.is_main() and model is not None and prepared.validation:
        publish(message="measuring each validation example's loss under the trained model")
        try:
            found = validation_losses.per_example_losses(model, prepared.validation, hardware.autocast_dtype)
        except Exception as err:  # noqa: BLE001 -- never fail the run it measures
            publish(message=f"the per-example validation losses are left out: {type(err).__name__}: {err}")
    ranks.barrier()
    return found


def benchmarks_on_main(config: TrainConfig, model, tokenizer, hardware, publish, side: str,
                        failed: dict[str, str]) -> dict[str, bench.TaskScores] | None:
    """The bundled standard benchmarks on the main process (the others wait at
    the barrier). Like the probe, a diagnostic: a failure is reported (and noted
    in `failed`), never fatal."""
    if not config.benchmarks:
        return None
    measured = None
    if ranks.is_main():
        publish(message=f"scoring the standard benchmarks {side} training ({len(bench.TASKS)} tasks of 100 items)")
        try:
            measured = bench.run_benchmarks(model, tokenizer, autocast_dtype=hardware.autocast_dtype)
        except Exception as err:  # noqa: BLE001 -- the benchmarks must never fail the run they measure
            why = f"the standard benchmarks failed {side} training: {type(err).__name__}: {err}"
            failed.setdefault("benchmarks", why)  # the first failure: the second often repeats it
            publish(message=f"{why}; the run goes on without them")
    ranks.barrier()
    return measured


def judge_on_main(job: Job, token: str | None, prepared, before, after, hardware, publish,
                   failed: dict[str, str]) -> dict | None:
    """The judge compares the held-out answers on the main process, loading its
    model for this and letting it go after. Never fails the run (a failure is noted in `failed`)."""
    if job.judge is None:
        return None
    record = None
    if ranks.is_main() and before is not None and after is not None and prepared.held_out:
        is_base = judging.is_base(job.judge, job.source)
        label = f"{job.source.label} (the base model)" if is_base else job.judge.label
        publish(message=f"the judge {label} is comparing the trained and the base model's answers")
        try:
            record = _judge(job.judge, token, prepared.held_out, before, after, hardware, label, is_base, publish)
        except Exception as err:  # noqa: BLE001 -- the judge must never fail the run it judges
            failed["judge"] = f"the judge failed: {type(err).__name__}: {err}"
            publish(message=f"{failed['judge']}; the run goes on without it")
        finally:
            device.release_memory()
    ranks.barrier()
    return record


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
