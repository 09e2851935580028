"""Many runs, compared: the lab's reason to exist.

    scheduler.py  the trainer and a first-in-first-out queue in front of it; who owns which run
    admission.py  which waiting run may start beside the ones training: the machine's memory and cores
    sweep.py      one setting, several values, one queued run each
    labels.py     the settings that differ between runs, and each run's name from them
    compare.py    a table of outcomes and a verdict in words
    noise.py      whether a lead is bigger than the noise (validation losses, held-out answers)
    figures.py    the runs' curves overlaid
    report.py     a comparison as one standalone HTML file
    lessons.py    the tutorial's exercises, answered from a student's own runs
"""
