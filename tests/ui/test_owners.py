"""Two people on one public deployment: each sees and controls only their own
runs, uploads and files. A's held-out records carry a secret; nothing B can
reach (any endpoint, any file URL, any tab of a fresh browser) may show it,
and B cannot stop, cancel, export, ask or load A's runs or uploads. B's start
waits in the queue behind A's and trains after it."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
from app_server import raw_call, upload

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

SECRET = "SECRET-7f3a9c-only-for-alice"
TINY = dict(source="upload", learning_rate=3e-3, batch_size=4, grad_accum=1, max_new_tokens=16,
            allow_out_of_range=True)
ALICE, BOB = "alice-owner-key-0123456789abcdef", "bob-owner-key-0123456789abcdefgh"


@pytest.fixture(scope="module")
def secret_data(tmp_path_factory) -> Path:
    """Alice's dataset: 40 training records and 4 held-out ones that carry the secret."""
    rows = [{"instruction": f"Repeat the number {n}.", "output": str(n), "split": "train"} for n in range(40)]
    rows += [{"instruction": f"What is the code word {n}?", "output": f"{SECRET} {n}", "split": "heldout"}
             for n in range(4)]
    path = tmp_path_factory.mktemp("alice") / "alice-private.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


class Recorder:
    """A client whose every answer is kept, to search for what it must not see."""

    def __init__(self, url: str, key: str):
        self.client = Client(url, verbose=False)
        self.key = key
        self.answers: list[str] = []
        self.client.predict("full", True, api_name="/set_ranges")

    def __call__(self, *args, api_name: str, **kwargs):
        try:
            answer = self.client.predict(*args, owner_key=self.key, api_name=api_name, **kwargs)
        except AppError as err:
            self.answers.append(str(err))
            raise
        self.answers.append(json.dumps(answer, default=str))
        return answer

    def status(self, run_id=None) -> dict:
        return self(run_id=run_id, api_name="/training_status")


def wait_finished(who: Recorder, run_id: str, timeout: float = 240) -> dict:
    """Poll until the run has ended (every run does; the timeout is for a broken one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = who.status(run_id)
        if status["finished"]:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish: {status}")


def fetch(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code


def test_two_people_see_and_touch_only_their_own_runs(public_app, holds, secret_data, tmp_path):
    url, runs = public_app
    alice, bob = Recorder(url, ALICE), Recorder(url, BOB)
    secret_file = handle_file(str(secret_data))
    loaded = alice(source="upload", file=secret_file, api_name="/load_dataset")
    assert loaded[-1]["split"]["held_out"] == 4
    with holds.at_step(1):  # Alice's run trains on its first step while Bob queues and tries her run
        a_run = alice(file=secret_file, max_steps=12, **TINY, api_name="/start_training")
        b_run = bob(max_steps=2, **{**TINY, "source": "bundled"}, api_name="/start_training")
        assert b_run["status"] == "queued" and "number 1 in the queue" in b_run["message"]

        # Bob is told the trainer is busy, never whose run it is or what it holds.
        assert b_run["run_id"] != a_run["run_id"]
        for action, kwargs in [("/training_status", {}), ("/stop_training", {}), ("/cancel_run", {}),
                               ("/export", {}), ("/ask", {"prompt": "hello", "max_new_tokens": 16})]:
            with pytest.raises(AppError, match="no such run"):
                bob(run_id=a_run["run_id"], api_name=action, **kwargs)
        with pytest.raises(AppError, match="no such run"):
            bob([a_run["run_id"]], api_name="/compare_runs")
        assert [r["run"] for r in bob(api_name="/list_runs")] == [b_run["run_id"]]

    # Alice's upload: its Gradio cache path is gone, and Bob cannot load it by its path.
    # (Raw calls: gradio_client would upload a file again rather than send a server path.)
    alice_upload_path = upload(url, secret_data.name, secret_data.read_bytes())  # as Alice's page uploads it
    as_file = {"path": alice_upload_path, "meta": {"_type": "gradio.FileData"}}
    claimed = raw_call(url, "load_dataset", source="upload", file=as_file, owner_key=ALICE)
    assert "event: complete" in claimed and "alice-private.jsonl" in claimed  # her first use claims it
    refused = raw_call(url, "load_dataset", source="upload", file=as_file, owner_key=BOB)
    bob.answers.append(refused)
    assert "event: error" in refused and "event: complete" not in refused
    assert fetch(f"{url}gradio_api/file={alice_upload_path}") in (403, 404)

    a_done = wait_finished(alice, a_run["run_id"])
    b_done = wait_finished(bob, b_run["run_id"])
    assert a_done["status"] == b_done["status"] == "completed"
    a_record = json.loads((runs / a_run["run_id"] / "run.json").read_text())
    b_record = json.loads((runs / b_run["run_id"] / "run.json").read_text())
    assert b_record["started_at"] >= a_record["finished_at"]  # Bob's run waited for Alice's
    assert a_record["owner"] != b_record["owner"] and ALICE not in json.dumps(a_record)  # a hash, not the key

    # After the runs, Bob still gets nothing of Alice's; her files are not served to anyone.
    with pytest.raises(AppError, match="no such run"):
        bob(run_id=a_run["run_id"], api_name="/export")
    for name in ("comparison.json", "config.json", "metrics.jsonl", "summary.json", "run.json"):
        for path in (runs / a_run["run_id"] / name, Path("runs") / a_run["run_id"] / name):
            assert fetch(f"{url}gradio_api/file={path}") == 403, path
    bob(run_id=b_run["run_id"], api_name="/export")
    bob("hello", 16, api_name="/ask")
    assert not any(SECRET in answer for answer in bob.answers), "Bob saw Alice's held-out data"

    # Alice sees her own, with the file's name and never a server path.
    status = alice.status(a_run["run_id"])
    assert any(SECRET in row["reference"] for row in status["comparison"])
    config = json.loads((runs / a_run["run_id"] / "config.json").read_text())
    assert config["data"] == "alice-private.jsonl"
    assert json.loads((runs / a_run["run_id"] / "summary.json").read_text())["data"] == "alice-private.jsonl"
    assert not any(str(runs) in answer or str(tmp_path) in answer for answer in alice.answers + bob.answers)


def test_a_fresh_browser_shows_nothing_of_anyone_elses(public_app, secret_data):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed")
    url, _ = public_app
    alice = Recorder(url, ALICE)
    started = alice(file=handle_file(str(secret_data)), max_steps=2, **TINY, api_name="/start_training")
    wait_finished(alice, started["run_id"])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium),
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(url)
            for tab in ("4 · Compare", "3 · Train", "6 · Experiments", "5 · Export"):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(1500)
                assert SECRET not in page.content(), tab
            sync_api.expect(page.locator("#run-status")).to_contain_text("no run yet")
        finally:
            browser.close()


def test_a_public_upload_is_one_owners_and_is_deleted_after_an_hour_unused(tmp_path, tiny_model_dir):
    """A claimed upload leaves Gradio's served cache, answers to its uploader only,
    and does not fill a public server's disk: an hour unused, it is gone."""
    import os

    from finetune.sources.files import Limits
    from ui.lab import UPLOAD_KEEP_SECONDS, Lab

    lab = Lab(str(tiny_model_dir), tmp_path / "runs", None, Limits(), public=True)
    cache = tmp_path / "gradio-cache"
    cache.mkdir()
    first, second = cache / "a.jsonl", cache / "b.jsonl"
    first.write_text('{"prompt": "p", "completion": "c"}\n')
    second.write_text('{"prompt": "q", "completion": "d"}\n')
    kept = lab.claim_upload(str(first), "alice")
    assert kept.is_file() and not first.exists()
    with pytest.raises(gr.Error, match="no such file"):
        lab.claim_upload(str(first), "bob")
    old = kept.stat().st_mtime - UPLOAD_KEEP_SECONDS - 1
    os.utime(kept, (old, old))
    lab.claim_upload(str(second), "bob")
    assert not kept.exists()
