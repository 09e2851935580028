"""The failure-mode detectors as a whole (finetune/diagnose/modes.py), on synthetic
runs: a healthy run is clear on every detector, the live screen runs only the
ones that read the history, too little data is "unknown" and never a crash,
and a finding is plain data. Each detector on the run built to show its
failure: test_diagnose_curves.py and test_diagnose_answers.py."""

import pytest
from synthetic_runs import CONFIG, by_name, final, healthy, train_step

from finetune.diagnose.base import CLEAR, UNKNOWN, Finding
from finetune.diagnose.modes import DETECTORS, LIVE, diagnose_final, diagnose_live
from finetune.train.config import TrainConfig

# ----------------------------------------------------------------- the whole record

def test_a_healthy_run_is_clear_on_every_detector_and_says_what_it_looked_at():
    findings = final()
    assert list(findings) == list(DETECTORS)
    for finding in findings.values():
        assert finding.status == CLEAR, finding
        assert any(ch.isdigit() for ch in finding.evidence), finding
        assert finding.advice == ""


def test_live_diagnosis_runs_only_the_detectors_that_read_the_history():
    assert [f.name for f in diagnose_live(healthy(), CONFIG)] == list(LIVE) == \
        ["divergence", "overfitting", "no_learning"]


@pytest.mark.parametrize("logged", [[], [train_step(1, 2.0)], None], ids=["empty", "one step", "none"])
def test_too_little_data_is_unknown_with_a_reason_never_a_crash(logged):
    findings = diagnose_final(logged, CONFIG, [], None, [], status="stopped")
    assert [f.status for f in findings] == [UNKNOWN] * len(DETECTORS)
    assert all(f.evidence.startswith("not enough data to judge: ") and len(f.evidence) > 30 for f in findings)


def test_a_finding_is_plain_data_for_json():
    finding = diagnose_live(healthy(), CONFIG)[0]
    assert isinstance(finding, Finding)
    assert finding.to_dict() == {"name": "divergence", "title": finding.title, "status": "clear",
                                 "evidence": finding.evidence, "explanation": finding.explanation,
                                 "advice": "", "step": None, "degraded": {}}


def test_a_config_object_is_read_like_its_dict():
    found = by_name(diagnose_live([train_step(1, 2.0)], TrainConfig(learning_rate=5e-5), error=
                                  "the training loss became nan at step 2; the run was halted."))
    assert "from 5e-05 to 2e-05" in found["divergence"].advice
