"""One module per tab, in the order a user works; each builds its widgets and
wires their handlers to the Lab and the engine.

    data_tab.py         1 Data: choose a dataset, see how the engine reads it
    params_tab.py       2 Hyperparameters: presets, every setting, the run they make, its memory
    train_tab.py        3 Train: start or queue a run, stop it, follow it live
    compare_tab.py      4 Compare: a run's held-out answers before and after; your own question
    chat_tab.py         4b Chat: a finished run's base and trained model side by side, streamed; marks and edits as data
    export_tab.py       5 Export: a finished run as a zip with its model card
    experiments_tab.py  6 Experiments: your runs compared, sweeps, the learning-rate exercise
    lessons_tab.py      7 Lessons: the tutorial's exercises, answered from your runs
    continuing.py       Compare and Experiments: continue from a run (its model the next run's base)
"""
