"""A workshop on one server: N simulated students against the app in public mode.

    python -m bench.workshop --students 30 [--model tiny|default] [--max-steps 3]
    python -m bench.workshop --students 4 --model default --preset quick-demo   # the class's figure of merit

With --preset, each student makes one real run of that preset on the bundled
demo data (as a class following the lesson does), and the class is run twice
on fresh servers: first serially (one run at a time, nothing reused:
FINETUNE_CONCURRENT_RUNS=1, FINETUNE_REUSE=off), then with the scheduler as it
is (runs side by side where the machine has room, before-answers reused). The
figure of merit is the time until the last student has their before/after
result; the final JSON line carries serial / scheduled as `last_result_ratio`,
with each's status latency p95, peak memory and the disk the class left.

Starts the app in public mode (as on a Space, or `FINETUNE_PUBLIC=1`) in a
subprocess, then runs one gradio_client per student, each in its own thread
with its own session (so its own owner). Each student:

1. uploads and loads a small dataset of their own: demo records plus one
   held-out prompt whose reference is a secret only this student knows (the
   secret is in the file name too);
2. queues one short run (`--max-steps`);
3. polls /training_status every 2 s until the run ends (through the REST API,
   with a session hash, as a browser tab polls; `--poll-with client` for gradio_client);
4. asks one question (/ask);
5. exports the model (/export) and reads the zip.

Reported, with a final JSON line on stdout:
- errors (every failed call, by step) and runs that did not complete;
- leaks: any student's responses or zip containing another student's secret
  (and, as a check that the search works, students who never saw their own);
- the server's peak resident memory (sampled from /proc, and its VmHWM), and
  its memory after the first and after the last run finished (bounded memory:
  finished runs keep no model per student);
- /training_status latency p50/p95 while runs wait or train;
- each student's queue wait and the last student's, and the total time.

The server machine is whatever this runs on: on a shared CPU the figures move
with the neighbours' load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.workshop_server import MemoryWatch, cpu_seconds, free_port, log, start_server, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo" / "demo.jsonl"
POLL_SECONDS = 2.0
TRAIN_RECORDS = 40  # enough for a split and a few steps; small, so the tiny model's runs take seconds
ACTIVE = ("queued", "loading", "baseline", "training", "finishing")
QUESTION = "Convert the date to ISO 8601: July 4, 1999"


# --------------------------------------------------------------------------- one student


@dataclass
class Student:
    index: int
    secret: str
    data: Path
    owner_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))  # as a browser keeps one
    errors: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # every response, as text, for the leak search
    status_latencies: list[float] = field(default_factory=list)  # while the run waits or trains
    submitted_at: float | None = None
    left_queue_at: float | None = None
    finished_at: float | None = None
    final_status: str | None = None

    @property
    def waited(self) -> float | None:
        if self.submitted_at is None or self.left_queue_at is None:
            return None
        return self.left_queue_at - self.submitted_at


def make_dataset(index: int, folder: Path, rng: random.Random) -> tuple[str, Path]:
    """Demo records plus a held-out prompt whose reference is this student's secret."""
    secret = f"SECRET{index:02d}x{secrets.token_hex(4)}"
    records = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = rng.sample([r for r in records if r.get("split") == "train"], TRAIN_RECORDS)
    held = [r for r in records if r.get("split") == "heldout"][:1]
    mine = {"instruction": f"What is the access code of student {index}?", "input": "", "output": secret,
            "split": "heldout", "category": "task", "task": "secret"}
    path = folder / f"student-{index:02d}-{secret}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train + held + [mine]), encoding="utf-8")
    return secret, path


def call(student: Student, step: str, client, *args, **kwargs):
    """One API call; a failure is counted against the step, never raised."""
    try:
        result = client.predict(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - every failure is a finding of the benchmark
        student.errors.append(f"{step}: {type(err).__name__}: {str(err)[:300]}")
        return None
    student.seen.append(json.dumps(result, default=str))
    return result


class HttpPoll:
    """/training_status through Gradio's REST API (POST, then read the event
    stream), as light as a browser's poll: with --poll-with http the simulated
    clients' own CPU, which a real class spends on its laptops, leaves the
    server's cores. Same endpoint, same owner key, same answer. Like a browser
    tab it sends one session hash on every call: without one, Gradio builds a
    new session (a config copy of every block) per call."""

    def __init__(self, url: str):
        self.url = url
        self.session_hash = secrets.token_hex(8)

    def predict(self, api_name: str, owner_key: str):
        body = json.dumps({"data": ["", owner_key], "session_hash": self.session_hash}).encode()
        request = urllib.request.Request(f"{self.url}gradio_api/call{api_name}", data=body,
                                         headers={"Content-Type": "application/json"})
        event = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
        stream = urllib.request.urlopen(f"{self.url}gradio_api/call{api_name}/{event}", timeout=60).read().decode()
        kind, _, data = stream.strip().partition("\ndata: ")
        if kind.strip() != "event: complete":
            raise RuntimeError(f"{api_name}: {stream[:300]}")
        return json.loads(data)[0]


def run_student(student: Student, url: str, max_steps: int, start_gate: threading.Event,
                poll_with: str = "http", skip: tuple[str, ...] = (), preset: str | None = None) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
    except Exception as err:  # noqa: BLE001
        student.errors.append(f"connect: {err}")
        return
    key = dict(owner_key=student.owner_key)
    if preset:  # the lesson's run: the bundled demo data and the preset's settings, as the page sends them
        from finetune.train.presets import PRESETS

        data = dict(source="bundled", bundled_dataset="demo/demo.jsonl", **key)
        settings = {**{k: v for k, v in PRESETS[preset].items() if k != "data"},
                    **({"max_steps": max_steps} if max_steps else {})}
    else:
        data = dict(source="upload", file=handle_file(str(student.data)), **key)
        settings = dict(held_out=2, max_steps=max_steps, max_new_tokens=16)
    start_gate.wait()
    call(student, "load", client, **data, **({} if preset else {"held_out": 2}), api_name="/load_dataset")
    student.submitted_at = time.time()
    status = call(student, "start", client, **data, allow_out_of_range=True, **settings,
                  api_name="/start_training")
    if status is None:
        return
    poll(student, client if poll_with == "client" else HttpPoll(url), status)
    if "ask" not in skip:
        call(student, "ask", client, QUESTION, 16, **key, api_name="/ask")
    exported = call(student, "export", client, **key, api_name="/export") if "export" not in skip else None
    if exported:
        student.seen.append(zip_text(exported[0]))


def poll(student: Student, client, status: dict) -> None:
    """/training_status every POLL_SECONDS until the run ends, timing each call."""
    while status.get("status") in ACTIVE:
        if status.get("status") != "queued" and student.left_queue_at is None:
            student.left_queue_at = time.time()
        time.sleep(POLL_SECONDS)
        began = time.perf_counter()
        latest = call(student, "status", client, owner_key=student.owner_key, api_name="/training_status")
        if latest is None:
            continue
        student.status_latencies.append(time.perf_counter() - began)
        status = latest
    student.left_queue_at = student.left_queue_at or time.time()
    student.finished_at = time.time()
    student.final_status = status.get("status")
    if status.get("status") != "completed":
        student.errors.append(f"run: ended {status.get('status')}: {status.get('error') or status.get('message')}")


def zip_text(path) -> str:
    """Every file in the exported zip, as text, for the leak search (weights included: bytes decoded loosely)."""
    parts = []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                parts.append(name)
                parts.append(archive.read(name).decode("utf-8", errors="ignore"))
    except (OSError, zipfile.BadZipFile) as err:
        parts.append(f"unreadable zip: {err}")
    return "\n".join(parts)


# --------------------------------------------------------------------------- the report


def leaks(students: list[Student]) -> tuple[list[str], list[int]]:
    """(who saw whose secret, students who never saw their own)."""
    found, blind = [], []
    for student in students:
        text = "\n".join(student.seen)
        for other in students:
            if other is not student and other.secret in text:
                found.append(f"student {student.index} saw student {other.index}'s secret")
        if student.secret not in text:
            blind.append(student.index)
    return found, blind


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def report(students: list[Student], watch: MemoryWatch, began: float, rss_marks: dict, args, cpu: dict) -> dict:
    latencies = [x for s in students for x in s.status_latencies]
    waits = [s.waited for s in students if s.waited is not None]
    leaked, blind = leaks(students)
    errors = [f"student {s.index}: {e}" for s in students for e in s.errors]
    finished = [s for s in students if s.final_status == "completed"]
    mib = 2**20
    return {
        "students": len(students), "model": args.model, "max_steps": args.max_steps, "poll_with": args.poll_with,
        "skipped": list(args.skip),
        "completed": len(finished), "errors": len(errors), "error_examples": errors[:10],
        "leaks": len(leaked), "leak_examples": leaked[:10], "never_saw_own_secret": blind,
        "server_peak_rss_mib": round(max(watch.peak, watch.hwm()) / mib, 1),
        "server_rss_after_first_run_mib": round(rss_marks.get("first", 0) / mib, 1),
        "server_rss_after_last_run_mib": round(rss_marks.get("last", 0) / mib, 1),
        "status_calls": len(latencies),
        "status_p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "status_p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "status_max_s": round(max(latencies), 3) if latencies else None,
        "last_student_waited_s": round(max(waits), 1) if waits else None,
        "median_wait_s": round(statistics.median(waits), 1) if waits else None,
        "last_finished_after_s": round(max(s.finished_at for s in finished) - began, 1) if finished else None,
        "seconds_per_run": round((max(s.finished_at for s in finished) - min(s.left_queue_at for s in finished))
                                 / len(finished), 1) if finished else None,
        # Where the machine's CPU went: the server, and the simulated students (this process).
        "server_cpu_s": round(cpu["server"], 1), "students_cpu_s": round(cpu["students"], 1),
        "cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def rss_marker(students: list[Student], watch: MemoryWatch, marks: dict, done: threading.Event) -> None:
    """The server's memory when the first run has finished, and when the last has."""
    while not done.is_set():
        finished = sum(1 for s in students if s.finished_at)
        if finished >= 1 and "first" not in marks:
            marks["first"] = watch.rss()
        if finished == len(students):
            marks["last"] = watch.rss()
        done.wait(0.5)


def one_class(students: list[Student], url: str, args, watch: MemoryWatch) -> tuple[float, dict]:
    """Every student of one class at once, to the end or the timeout; (start time, memory marks)."""
    gate, done, marks = threading.Event(), threading.Event(), {}
    steps = (url, args.max_steps, gate, args.poll_with, tuple(args.skip), args.preset)
    threads = [threading.Thread(target=run_student, args=(s, *steps), daemon=True) for s in students]
    for thread in threads:
        thread.start()
    began = time.time()
    gate.set()  # every student starts at once, as a class does when told "go"
    marker = threading.Thread(target=rss_marker, args=(students, watch, marks, done), daemon=True)
    marker.start()
    log(f"{len(students)} students started against {url}")
    deadline = began + args.timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    done.set()
    marker.join()
    marks.setdefault("last", watch.rss())
    for student, thread in zip(students, threads):
        if thread.is_alive():
            student.errors.append(f"timeout: still going after {args.timeout:.0f} s")
    return began, marks


def folder_mib(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def compared(args) -> dict:
    """The class twice on fresh servers: serially with nothing reused, then as the scheduler runs it."""
    serial = bench(args, {"FINETUNE_CONCURRENT_RUNS": "1", "FINETUNE_REUSE": "off"})
    scheduled = bench(args, {})
    keys = ("completed", "errors", "error_examples", "last_finished_after_s", "status_p50_s", "status_p95_s",
            "server_peak_rss_mib", "disk_left_mib", "seconds_per_run", "concurrent_runs")
    result = {"students": args.students, "model": args.model, "preset": args.preset,
              "serial": {k: serial.get(k) for k in keys}, "scheduled": {k: scheduled.get(k) for k in keys},
              "cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    a, b = serial.get("last_finished_after_s"), scheduled.get("last_finished_after_s")
    result["last_result_ratio"] = round(a / b, 2) if a and b else None
    result["completed"] = min(serial["completed"], scheduled["completed"])
    result["errors"] = serial["errors"] + scheduled["errors"]
    result["leaks"] = 0  # one shared dataset: nothing secret to leak
    return result


def bench(args, env: dict | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="workshop-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_server(args.model, work, port, env or {})
    try:
        wait_until_up(url, server)
        watch = MemoryWatch(server.pid)
        watch.start()
        rng = random.Random(0)
        data_dir = work / "students"
        data_dir.mkdir()
        cpu = {"server": cpu_seconds(server.pid), "students": time.process_time()}
        everyone, after_each = [], []
        # Classes one after another on the same server: does memory come back, or grow per class?
        for wave in range(args.classes):
            students = [Student(i, *make_dataset(i, data_dir, rng))
                        for i in range(wave * args.students, (wave + 1) * args.students)]
            began, marks = one_class(students, url, args, watch)
            everyone += students
            after_each.append(round(marks["last"] / 2**20, 1))
            if wave == 0:  # the first class is the one reported
                first_began, first_marks = began, marks
        watch.done.set()
        cpu = {"server": cpu_seconds(server.pid) - cpu["server"], "students": time.process_time() - cpu["students"]}
        result = report(everyone[:args.students], watch, first_began, first_marks, args, cpu)
        result["disk_left_mib"] = folder_mib(work / "runs") if (work / "runs").is_dir() else None
        result["concurrent_runs"] = (env or {}).get("FINETUNE_CONCURRENT_RUNS", "as the machine allows")
        if args.classes > 1:
            result["classes"] = args.classes
            result["server_rss_after_each_class_mib"] = after_each
            result["errors_all_classes"] = sum(len(s.errors) for s in everyone)
            result["leaks_all_classes"] = len(leaks(everyone)[0])
        return result
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--model", choices=("tiny", "default"), default="tiny")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="optimizer steps per student's run (default 3; with --preset, the preset's whole run)")
    parser.add_argument("--poll-with", choices=("http", "client"), default="http",
                        help="status polls through Gradio's REST API with a session hash, as light as a browser's "
                             "(default), or through gradio_client, whose own CPU (about 65 ms a call) then competes "
                             "with the server's on the same machine")
    parser.add_argument("--classes", type=int, default=1,
                        help="classes of --students one after another on the same server (memory over time)")
    parser.add_argument("--skip", nargs="*", choices=("ask", "export"), default=[],
                        help="leave these steps out, to see what each costs (memory, time)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before the benchmark gives up")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (runs, datasets)")
    parser.add_argument("--preset", default=None,
                        help="each student runs this preset on the bundled demo data, and the class is run "
                             "serially and then scheduled, compared (last_result_ratio)")
    args = parser.parse_args(argv)
    if args.max_steps is None and not args.preset:  # a preset's run is the lesson's: as long as the preset says
        args.max_steps = 3
    try:
        result = compared(args) if args.preset else bench(args)
    except Exception:  # noqa: BLE001 - the benchmark itself broke: say so in the JSON line too
        traceback.print_exc()
        print(json.dumps({"error": "the benchmark failed; see the traceback above"}))
        return 1
    ok = (result["completed"] == result["students"] and not result["errors"] and not result["leaks"]
          and not result.get("errors_all_classes") and not result.get("leaks_all_classes"))
    log("every student finished, no errors, no leaks" if ok else "PROBLEMS: see errors and leaks")
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
