"""On a public server that keeps weights for a while only (issue 26), the
Export tab says so beforehand, and a run whose weights are gone says plainly
when they went and how to keep a model next time, for the zip and the Hub
push alike (no server: the tab's parts, on a fake clock)."""

import pytest
from fake_runs import make_run

gr = pytest.importorskip("gradio")

from finetune.runs.disk import DiskPolicy  # noqa: E402
from finetune.sources.files import Limits  # noqa: E402
from ui.lab import Lab  # noqa: E402
from ui.tabs import export_tab  # noqa: E402


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def public(tmp_path):
    lab = Lab("default", tmp_path / "runs", None, Limits(), public=True)
    clock = Clock()
    lab.scheduler.disk = DiskPolicy(keep_hours=24, clock=clock)
    return lab, clock


def test_the_tab_says_how_long_weights_are_kept(public):
    lab, _ = public
    with gr.Blocks() as page:
        export_tab.build(lab)
    notes = [b.value for b in page.blocks.values() if getattr(b, "elem_id", None) == "export-retention"]
    assert notes and "**24 hours** after the run ends" in notes[0] and "export or push" in notes[0]


def test_a_run_whose_weights_went_says_when_and_how_to_keep_a_model(public):
    lab, clock = public
    owner = lab.scheduler.owner("my-own-owner-key-0123")
    folder = make_run(lab.output_root, "r1", 2e-5, created_at=clock.now, owner=owner)
    (folder / "model").mkdir()
    (folder / "model" / "model.safetensors").write_bytes(b"\0" * 1000)
    clock.now += 25 * 3600
    assert lab.scheduler.expire(force=True) == ["r1"] and not (folder / "model").exists()
    for attempt in (lambda: export_tab.export(lab, owner, "r1", "best"),
                    lambda: export_tab.push_run(lab, owner, "r1", "best", "me/model", "hf_x", True, False, "")):
        with pytest.raises(gr.Error) as refused:
            attempt()
        said = str(refused.value.message)
        assert said.startswith("The weights and checkpoints of run r1 were removed 24 hours after it ended")
        assert "export it or push it to the Hub soon after its run ends" in said and "own machine" in said
