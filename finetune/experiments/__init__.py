"""Many runs, compared: the lab's reason to exist.

    scheduler.py  one trainer and a first-in-first-out queue in front of it; who owns which run
    sweep.py      one setting, several values, one queued run each
    compare.py    the settings that differ, a table of outcomes, overlaid curves, a verdict in words
    report.py     a comparison as one standalone HTML file
    lessons.py    the tutorial's exercises, answered from a student's own runs
"""
