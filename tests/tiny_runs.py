"""Training runs on the tiny model, shared by the tests of several packages:
the dates data, a config for it, and a run taken to its end."""

from finetune.runs.run import TrainingRun
from finetune.train.config import TrainConfig

RECORDS = [
    {"instruction": f"Convert the date to ISO 8601: March {d}, 2021", "output": f"2021-03-{d:02d}"}
    for d in range(1, 29)
]


# The same dates as prompt/completion pairs in JSONL (the `dates_jsonl` fixture writes them).
DATE_PAIRS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "completion": f"2021-03-{d:02d}"}
              for d in range(1, 29)]


def tiny_config(model_dir, data, **changes):
    values = dict(model=str(model_dir), data=str(data), learning_rate=3e-3, batch_size=4, grad_accum=1, epochs=2,
                  held_out=3, validation_fraction=0.1, max_new_tokens=8, warmup_ratio=0.05, seed=1)
    values.update(changes)
    return TrainConfig(**values)


def run_to_end(config, output, **kwargs):
    run = TrainingRun(config, output, allow_out_of_range=True, **kwargs).start()
    snapshot = run.wait(timeout=300)
    assert snapshot.finished, f"run did not finish: {snapshot.status}"
    return run, snapshot
