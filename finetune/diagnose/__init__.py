"""The failure modes of fine-tuning (divergence, overfitting, no learning,
mode collapse, forgetting, memorisation; and a preference run's own), named
from what a run recorded.
Detectors are pure functions; the app and the CLI only render their findings.

    curves.py        facts read off a logged history: best validation loss, convergence, overfitting onset
    base.py          what every detector shares: Finding, RunFacts, the wording of evidence and advice
    curve_modes.py   the detectors that read the loss curves (they also run live)
    answer_modes.py  the detectors that read the answers and the probe (at the end)
    preference_modes.py  a preference run's own: likelihood displacement, margin runaway, length, no preference
    modes.py         the registry of detectors; diagnose_live and diagnose_final
    findings.py      running them inside a run, where a detector that raises is "unknown", never a failure
"""
