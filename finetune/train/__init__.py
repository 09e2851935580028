"""One training: the settings, what they will do, and the Trainer that does
it on this hardware.

    config.py        TrainConfig: every setting with its range and help (the app's widgets, the CLI's flags)
    presets.py       named starting settings, each value with its reason
    plan.py          steps, warmup, tokens and the learning-rate curve, before a run starts
    device.py        which device and precision, and what the hardware cannot do
    ranks.py         which process this is when several train together
    levers.py        the memory levers as the libraries take them (dtype, optimizer, checkpointing, attention)
    loss.py          the response-only cross-entropy, in chunks
    acceleration.py  torch.compile, where it pays off
    objectives.py    what a run optimises (sft, dpo, kto): the data each takes and the signals each logs
    arguments.py     the Trainer's arguments for a config, the lab's Trainer and TRL's alike
    trainer.py       transformers' Trainer with that loss, checkpoints and a NaN guard, built for a config
    preference.py    TRL's DPO and KTO trainers for a preference run, with the same arguments and callbacks
    loggers.py       the metrics also sent to TensorBoard or Trackio (report_to), through their own libraries
"""
