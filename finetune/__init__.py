"""The fine-tuning engine: everything the app and `python -m finetune` do,
without a user interface (it never imports gradio).

Its packages, lowest first; a package imports only from those before it, so
each can be read knowing only what lies below it (tests/test_layout.py checks):

    sources      reading untrusted inputs safely: dataset files, hub datasets, model specs
    data         what records mean: formats, rendering with a template, the split, batches, advice
    memory       how much memory a run needs (the arithmetic) and took (the measured peak)
    evaluate     answers and their scores: generation, metrics, significance, the general probe, one question
    train        one training: settings, the plan, the device, the Trainer and its loss
    diagnose     the failure modes, named from a run's curves and answers
    runs         one run's life: the background thread, its folder on disk, its record
    experiments  many runs: the queue in front of the trainer, sweeps, comparisons, lessons
    export       a finished run leaving the lab
    cli          `python -m finetune ...`, on top of all of them
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# The bundled data, lessons, probe and benchmarks: at a checkout's top level, beside
# the engine; installed as a package (pyproject.toml maps assets/ to finetune.assets),
# inside it. The package's own copy is looked for first, so an installed lab never
# reads a stray top-level `assets` folder some other package put in site-packages.
ASSETS = _PACKAGE / "assets" if (_PACKAGE / "assets").is_dir() else _PACKAGE.parent / "assets"

LAYERS = ("sources", "data", "memory", "evaluate", "train", "diagnose", "runs", "experiments", "export", "cli")
