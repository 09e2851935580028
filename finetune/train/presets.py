"""Named starting points for a run's settings: `--preset NAME` on the command
line, the Preset picker in the app, a lesson's button. A preset sets only the
fields it names; config.build fills in the rest and checks them all.

Presets are plain data, and the values in each are chosen for a reason given
beside it (measured on the bundled demo data and the default model, on a
2-core CPU, unless it says otherwise).
"""

from __future__ import annotations

from typing import Any

from .. import ASSETS

DEMO_DATA = str(ASSETS / "demo" / "demo.jsonl")
PREFERENCE_DATA = str(ASSETS / "preference" / "pairs.jsonl")  # assets/preference/make_pairs.py

PRESETS: dict[str, dict[str, Any]] = {
    "classic": {
        "method": "full", "learning_rate": 2e-5, "batch_size": 4, "grad_accum": 8, "epochs": 3,
        "warmup_ratio": 0.05, "weight_decay": 0.1, "min_lr_ratio": 0.1,
    },
    # Sized to finish on a 2-core CPU in a few minutes on the bundled demo data.
    "quick-demo": {
        "data": DEMO_DATA, "method": "full", "learning_rate": 5e-5, "batch_size": 8, "grad_accum": 1, "epochs": 2,
        "warmup_ratio": 0.05, "weight_decay": 0.0, "min_lr_ratio": 0.1, "max_length": 256,
        "max_new_tokens": 48,
    },
    # The tutorial's learning-rate exercise on the demo data: one epoch per run, so
    # a sweep of three (sweep.DEFAULT_VALUES) finishes in minutes on a 2-core CPU,
    # with validation often enough to draw a curve.
    "lr-sweep-demo": {
        "data": DEMO_DATA, "method": "full", "learning_rate": 2e-5, "batch_size": 8, "grad_accum": 1, "epochs": 1,
        "warmup_ratio": 0.05, "weight_decay": 0.0, "min_lr_ratio": 0.1, "max_length": 256, "max_new_tokens": 32,
        # The exercise compares curves: the general probe (answered twice per run) is left off to fit 12 minutes.
        "eval_steps": 5, "general_probe": False,
    },
    # Preference tuning on the bundled pairs (128 to train, 32 held out; a prompt with its
    # longer reply is under 150 tokens), sized like quick-demo for a 2-core CPU. DPO moves a
    # model far per step: full fine-tuning wants a learning rate below supervised
    # fine-tuning's (published recipes use 5e-7 to 1e-6 on 1-7B models; a 135M model takes
    # more, 1e-5, inside the recommended range), one epoch (pairs seen again drive the margin
    # up without learning more), beta 0.1 (DPO's usual start). Validation pairs are evaluated
    # ~10 times (eval_steps 0) so the preference accuracy has a curve; answers are short (the
    # chosen replies are a few tokens), long enough to show a chatty one. Measured on the idle
    # 2-core VM (bench/preference_demo.py, bench/results/preference-demo-*-2026-12-07.json):
    # from the base model, 16 steps, 375 s in all, the chosen reply preferred on 56% -> 76% of
    # the 50 unseen pairs (+20 points, 95% interval +9 to +31); continued from a quick-demo run,
    # which already prefers it on 80%, no change (80% -> 80%). At 5e-5 for 2 epochs: from the
    # base model 56% -> 92% but margin runaway (57 nats from the reference), from quick-demo
    # 80% -> 94% (interval 0 to +28), 487-519 s: 1e-5 stays the preset.
    "dpo-demo": {
        "data": PREFERENCE_DATA, "objective": "dpo", "beta": 0.1, "dpo_loss": "sigmoid", "precompute_ref": True,
        "method": "full", "learning_rate": 1e-5, "batch_size": 8, "grad_accum": 1, "epochs": 1,
        "warmup_ratio": 0.1, "weight_decay": 0.0, "min_lr_ratio": 0.1, "max_length": 256, "max_new_tokens": 32,
    },
    # KTO on the same pairs, each split into its desirable and its undesirable reply (twice the
    # examples, each one sequence: about DPO's compute per epoch); equal counts of both, so the
    # weights stay 1. A batch of 8 holds 4 of each, which KTO's KL estimate needs.
    "kto-demo": {
        "data": PREFERENCE_DATA, "objective": "kto", "beta": 0.1, "precompute_ref": True, "desirable_weight": 1.0,
        "undesirable_weight": 1.0, "method": "full", "learning_rate": 1e-5, "batch_size": 8, "grad_accum": 1,
        "epochs": 1, "warmup_ratio": 0.1, "weight_decay": 0.0, "min_lr_ratio": 0.1, "max_length": 256,
        "max_new_tokens": 32,
    },
    "lora": {"method": "lora", "learning_rate": 2e-4, "batch_size": 8, "grad_accum": 4, "epochs": 3,
             "lora_r": 16, "lora_alpha": 32, "warmup_ratio": 0.05},
    # The failure modes as a lesson: each provokes one failure on the bundled demo
    # data in minutes on a 2-core CPU, with values outside the recommended ranges
    # (run them with the allow switch); the diagnosis names the failure. Those whose
    # failure shows in the loss curve or the held-out answers leave the general
    # probe off and generate few tokens: on a CPU, generation is most of a short run.
    #
    # Divergence: the warmup climbs by 1e-3 a step to 1e-2 (200x the recommended
    # maximum) with gradient clipping off: the first steps still learn, then the
    # loss blows up against its running median. (2e-3 did not: the default model's
    # loss wobbled up to 2.9x its median and came back.)
    "fail-diverge": {
        "data": DEMO_DATA, "method": "full", "learning_rate": 1e-2, "warmup_ratio": 0.5, "max_grad_norm": 0.0,
        "weight_decay": 0.0, "min_lr_ratio": 0.1, "batch_size": 8, "grad_accum": 1, "max_steps": 20,
        "max_length": 256, "max_new_tokens": 8, "eval_steps": 10, "general_probe": False,
    },
    # Overfitting: half the records held for validation leave ~175 to train on,
    # passed over four times at 10x the recommended learning rate, held to the end:
    # the training loss falls towards zero while the validation loss climbs back up.
    # (2e-4 for 2.3 epochs only wobbled the validation loss by 0.004 nats.)
    "fail-overfit": {
        "data": DEMO_DATA, "method": "full", "learning_rate": 5e-4, "validation_fraction": 0.5, "epochs": 4,
        "warmup_ratio": 0.05, "weight_decay": 0.0, "min_lr_ratio": 1.0, "batch_size": 8,
        "grad_accum": 1, "max_length": 256, "max_new_tokens": 8, "eval_steps": 11, "general_probe": False,
    },
    # Mode collapse: 100x the recommended maximum learning rate, held to the end
    # (min_lr_ratio 1.0), wipes out what the prompt means to the model: it gives
    # one answer whatever it is asked. (At 1e-3 only the general prompts collapsed,
    # all to "2000-01-11"; the task prompts were still answered.)
    "fail-collapse": {
        "data": DEMO_DATA, "method": "full", "learning_rate": 5e-3, "warmup_ratio": 0.1, "min_lr_ratio": 1.0,
        "weight_decay": 0.0, "batch_size": 4, "grad_accum": 1, "max_steps": 24, "max_length": 256,
        "max_new_tokens": 16, "eval_steps": 12, "general_probe": False,
    },
    # Forgetting (the alignment tax): full fine-tuning of every weight at 6x the
    # recommended learning rate on five narrow tasks; the general probe and the
    # reference text's perplexity, measured before and after, show the cost.
    "fail-forget": {
        "data": DEMO_DATA, "method": "full", "learning_rate": 3e-4, "warmup_ratio": 0.05, "min_lr_ratio": 0.5,
        "weight_decay": 0.0, "batch_size": 4, "grad_accum": 1, "max_steps": 24, "max_length": 256,
        "max_new_tokens": 16, "eval_steps": 12,
    },
}
