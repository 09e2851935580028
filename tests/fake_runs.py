"""Run folders written as files, no training: three learning rates whose
answers are known (which converges fastest, which overfits), for the tests of
comparisons, lessons and the app's tabs."""

import json

from finetune.runs.records import write_record
from finetune.train.config import TrainConfig

EVAL_STEPS = list(range(10, 101, 10))
# Validation loss per run at steps 10..100, built so that the answers are known:
# 5e-05 is within 5% of its own best (1.18 at 40) by step 30 but ends 12% above it;
# 2e-05 reaches the lowest loss (1.12 at 100) and is within 5% of it by step 60;
# 1e-05 is still falling and gets within 5% of its best only at step 80.
VALIDATION = {
    1e-5: [2.0, 1.8, 1.65, 1.55, 1.47, 1.41, 1.37, 1.34, 1.32, 1.30],
    2e-5: [1.8, 1.5, 1.35, 1.25, 1.2, 1.17, 1.15, 1.14, 1.13, 1.12],
    5e-5: [1.5, 1.25, 1.2, 1.18, 1.19, 1.22, 1.25, 1.28, 1.3, 1.32],
}


def history_for(lr: float, validation=True) -> list[dict]:
    """Training loss falling all the way (every 5 steps), the validation loss above every 10."""
    entries = []
    for step in range(5, 101, 5):
        entries.append({"step": step, "epoch": step / 50, "loss": 2.2 - step * lr * 200,
                        "learning_rate": lr * (1 - step / 200), "grad_norm": 1.0, "tokens_per_second": 250.0,
                        "tokens_seen": step * 800, "time": step * 1.0})
        if validation and step in EVAL_STEPS:
            entries.append({"step": step, "epoch": step / 50, "eval_loss": VALIDATION[lr][EVAL_STEPS.index(step)],
                            "time": step * 1.0})
    return entries


def make_run(root, run_id, lr, *, created_at, status="completed", data_name="dates.jsonl", history=None, **record):
    folder = root / run_id
    folder.mkdir(parents=True)
    config = TrainConfig(data=f"/srv/uploads/{run_id}/data.jsonl", learning_rate=lr).to_dict()
    (folder / "config.json").write_text(json.dumps({**config, "resolved": {"model": "SmolLM2-135M-Instruct"}}))
    history = history_for(lr) if history is None else history
    (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / "summary.json").write_text(json.dumps({
        "status": status, "steps": 100, "final_train_loss": history[-2]["loss"] if history else None,
        "duration_seconds": 157.0,
        "scores": {"all": {"prompts": 20, "before_normalised": 0.0, "after_normalised": 1.0}},
    }))
    write_record(folder, status=status, created_at=created_at, data_name=data_name, **record)
    return folder
