"""The app under what a public Space gets thrown at it: junk numbers through
the raw API, hostile model ids and paths, file requests outside its outputs,
closed browsers, and twenty clients at once while a run trains."""

import threading
import time
import urllib.error
import urllib.request

import pytest
from app_server import BOUNDARY, multipart, raw_call

from finetune.runs.records import list_runs
from ui.app import PUBLIC_MAX_FILE_MB, launch_options

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

TINY = dict(learning_rate=3e-3, batch_size=4, grad_accum=1, held_out=0, max_new_tokens=16, allow_out_of_range=True)


@pytest.fixture(scope="module")
def url(public_app):
    return public_app[0]


def client(url) -> Client:
    c = Client(url, verbose=False)
    c.predict("full", True, api_name="/set_ranges")  # the allow-out-of-range switch, for the tiny model's lr
    return c


@pytest.fixture
def run_count(public_app):
    """How many runs the app has recorded (a refused start records none)."""
    return lambda: len(list_runs(public_app[1]))


def wait_for(c: Client, predicate, timeout=240, key=None):
    """Poll until `predicate(status)`: only for what the run is sure to reach (its end)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = c.predict(owner_key=key, api_name="/training_status")
        if predicate(status):
            return status
        time.sleep(0.3)
    raise AssertionError(f"timed out: {status}")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "abc", 1e9, -1])
def test_junk_numbers_through_the_raw_api_start_no_run(url, run_count, value):
    before = run_count()
    stream = raw_call(url, "start_training", source="bundled", **{**TINY, "learning_rate": value})
    assert "event: error" in stream and "event: complete" not in stream, stream
    if value != value:  # NaN passes Gradio's slider bounds check; the engine must refuse it
        assert "learning_rate: NaN is not a finite number" in stream
    assert run_count() == before


@pytest.mark.parametrize("model, message", [("../../etc", "not allowed"), ("a--b", "invalid model id"),
                                            ("/tmp", "not allowed")])
def test_hostile_model_ids_and_paths_are_refused(url, run_count, model, message):
    before = run_count()
    with pytest.raises(AppError, match=message):
        client(url).predict(source="bundled", model=model, max_steps=1, **TINY, api_name="/start_training")
    assert run_count() == before


@pytest.mark.parametrize("path", ["/etc/passwd", __file__, "../../../../etc/hostname"])
def test_files_outside_the_app_outputs_are_forbidden(url, path):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10)
    assert err.value.code == 403


def test_a_wrong_file_type_is_refused_before_parsing(url, write):
    exe = write("setup.exe", b"MZ\x90\x00" * 100)
    with pytest.raises(AppError, match=r"(?i)invalid file type|unsupported file type"):
        Client(url, verbose=False).predict(source="upload", file=handle_file(str(exe)), api_name="/load_dataset")


def test_an_upload_over_the_limit_is_refused_and_the_limit_shown(url, tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"prompt": "a", "completion": "b"}\n' * (PUBLIC_MAX_FILE_MB * 2**20 // 35 + 10))
    limit = PUBLIC_MAX_FILE_MB * 2**20
    # The client reads the cap from the page and refuses at once...
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {limit} bytes"):
        Client(url, verbose=False).predict(source="upload", file=handle_file(str(big)), api_name="/load_dataset")
    # ...and the server refuses a hand-written upload that ignores it.
    request = urllib.request.Request(f"{url}gradio_api/upload", data=multipart("big.jsonl", big.read_bytes()),
                                     headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    page = urllib.request.urlopen(url, timeout=10).read().decode()
    assert f"{PUBLIC_MAX_FILE_MB} MB" in page or f"max {PUBLIC_MAX_FILE_MB}" in page


def test_public_launch_settings():
    options = launch_options(public=True)
    assert options["show_error"] is False and options["enable_monitoring"] is False
    assert options["mcp_server"] is False and options["max_file_size"] <= PUBLIC_MAX_FILE_MB * 2**20


def test_a_closed_page_leaves_the_run_training_and_its_owner_reattaches(url, holds):
    key = "owner-key-of-a-closed-page-0123456789"
    first = client(url)
    watcher = Client(url, verbose=False)  # the same person, back with the same key (kept by the browser)
    stranger = Client(url, verbose=False)
    with holds.at_step(3) as at_3, holds.at_step(5) as at_5:
        started = first.predict(source="bundled", max_steps=400, **TINY, owner_key=key, api_name="/start_training")
        first.close()  # the page goes away mid-run
        at_3.wait()  # held at the end of step 3: steps 1 and 2 are logged
        a = watcher.predict(owner_key=key, api_name="/training_status")
        at_3.release()
        at_5.wait()  # the run went on without its page
        b = watcher.predict(owner_key=key, api_name="/training_status")
        assert a["run_id"] == b["run_id"] == started["run_id"]
        assert (a["status"], a["step"], b["status"], b["step"]) == ("training", 2, "training", 4)
        assert len(b["history"]) > len(a["history"]) and b["history"][: len(a["history"])] == a["history"]
        # Someone else is told only that the trainer is busy.
        assert stranger.predict(api_name="/training_status") == {
            "status": "none", "finished": True, "trainer_busy": True,
            "message": "the trainer is busy with another person's run; yours would wait in the queue"}
        watcher.predict(owner_key=key, api_name="/stop_training")
    stopped = wait_for(watcher, lambda s: s["finished"], key=key)
    assert (stopped["status"], stopped["step"]) == ("stopped", 5)


def test_twenty_clients_poll_and_browse_while_a_run_trains(url, holds):
    trainer = client(url)
    errors, answers = [], []

    def visitor(n):
        try:
            c = Client(url, verbose=False)
            for _ in range(4):
                answers.append(c.predict(api_name="/training_status"))
                if n % 2 == 0:
                    out = c.predict(source="bundled", api_name="/load_dataset")
                    assert out[-1]["records"] == 380
        except Exception as err:  # collected: a failure in a thread must fail the test
            errors.append(f"client {n}: {type(err).__name__}: {err}")

    with holds.at_step(2) as hold:  # the run stays in training, between two steps, while the visitors come
        trainer.predict(source="bundled", max_steps=40, **TINY, api_name="/start_training")
        hold.wait()
        threads = [threading.Thread(target=visitor, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors
    # Every visitor got an answer, and none of them saw the trainer's run: only that the trainer is busy.
    assert len(answers) == 80 and all(a["status"] == "none" and "run_id" not in a for a in answers)
    assert all(a.get("trainer_busy") for a in answers)
    final = wait_for(trainer, lambda s: s["finished"], timeout=300)
    assert final["status"] == "completed" and final["step"] == 40
    assert [h["step"] for h in final["history"] if "loss" in h] == list(range(1, 41))
