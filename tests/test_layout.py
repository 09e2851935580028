"""The layout shows the architecture: the engine never imports gradio, no
module imports itself through others (no import circles, function-level
imports included), and a package imports only from packages below it
(finetune.LAYERS, lowest first; ui sits on top of the engine, and within ui
views and the lab's state know no tab, tabs know no app).

The imports are read with ast, so the checks need no import of the code."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

import finetune

UI_LAYERS = {  # part of ui -> the parts of ui it must not import
    "ui.views": ("ui.tabs", "ui.app", "ui.lab"),
    "ui.lab": ("ui.views", "ui.tabs", "ui.app"),
    "ui.limits": ("ui.views", "ui.tabs", "ui.app"),
    "ui.space": ("ui.views", "ui.tabs", "ui.app", "ui.lab", "finetune"),
    "ui.tabs": ("ui.app",),
    "ui.boundary": ("ui.views", "ui.tabs", "ui.app", "ui.lab"),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path, known: set[str]) -> set[str]:
    """Every project module `path` imports, at any depth of the file (a lazy
    import inside a function is still a dependency)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known
            found |= submodules or {base}  # `from package import module` depends on the module
    return {m for m in found if m in known and m != name}


def import_graph(root: Path, packages=("finetune", "ui")) -> dict[str, set[str]]:
    files = [p for package in packages for p in sorted((root / package).rglob("*.py"))]
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): imported_modules(p, root, known) for p in files}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it (depth-first search)."""
    found, state = [], {}  # state: 1 on the current path, 2 finished

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def layer_of(module: str, layers: tuple[str, ...]) -> int | None:
    parts = module.split(".")
    if parts[0] != "finetune" or len(parts) < 2:
        return None
    return layers.index(parts[1]) if parts[1] in layers else None


def upward_imports(graph: dict[str, set[str]], layers: tuple[str, ...]) -> list[str]:
    """Imports from an engine package to one later in `layers`, and any import
    of ui from the engine."""
    wrong = []
    for module, targets in graph.items():
        if not module.startswith("finetune"):
            continue
        mine = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if target.split(".")[0] == "ui" or (mine is not None and theirs is not None and theirs > mine):
                wrong.append(f"{module} -> {target}")
    return wrong


# --------------------------------------------------------------- the project itself

def test_the_engine_never_imports_gradio():
    offenders = []
    for path in sorted((ROOT / "finetune").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "gradio"]
    assert not offenders, offenders


def test_every_engine_module_lives_in_a_named_package():
    loose = [p.name for p in (ROOT / "finetune").glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    packages = sorted(p.name for p in (ROOT / "finetune").iterdir() if (p / "__init__.py").is_file())
    assert not loose, f"modules outside a package: {loose}; put each in one of {finetune.LAYERS}"
    assert packages == sorted(finetune.LAYERS), "finetune.LAYERS must name every package, in order"


def test_no_import_circles():
    assert circles(import_graph(ROOT)) == []


def test_engine_packages_import_only_from_lower_ones():
    assert upward_imports(import_graph(ROOT), finetune.LAYERS) == []


@pytest.mark.parametrize("part, forbidden", UI_LAYERS.items())
def test_ui_parts_import_only_from_lower_ones(part, forbidden):
    graph = import_graph(ROOT)
    wrong = [f"{m} -> {t}" for m, targets in graph.items() if m == part or m.startswith(part + ".")
             for t in targets if any(t == f or t.startswith(f + ".") for f in forbidden)]
    assert not wrong, wrong


def test_every_package_says_what_it_offers():
    for init in sorted([*(ROOT / "finetune").rglob("__init__.py"), *(ROOT / "ui").rglob("__init__.py")]):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        modules = [p.stem for p in init.parent.glob("*.py") if not p.name.startswith("__")]
        missing = [m for m in modules if m not in doc]
        assert not missing, f"{init.relative_to(ROOT)} does not name {missing}"


# ------------------------------------------------- the checks catch what they should

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    root = _tree(tmp_path, {
        "finetune/__init__.py": "", "finetune/runs/__init__.py": "",
        "finetune/runs/run.py": "def start():\n    from .worker import execute\n",
        "finetune/runs/worker.py": "from .run import Job\n",
    })
    assert circles(import_graph(root)) == [["finetune.runs.run", "finetune.runs.worker", "finetune.runs.run"]]


def test_an_upward_import_is_found_whatever_its_spelling(tmp_path):
    root = _tree(tmp_path, {
        "finetune/__init__.py": "", "finetune/data/__init__.py": "", "finetune/runs/__init__.py": "",
        "finetune/runs/records.py": "", "finetune/data/dataset.py": "from ..runs import records\n",
        "finetune/data/formats.py": "import finetune.runs.records\n",
        "finetune/data/render.py": "from finetune.data import formats\n",  # sideways: allowed
    })
    assert upward_imports(import_graph(root), ("data", "runs")) == [
        "finetune.data.dataset -> finetune.runs.records", "finetune.data.formats -> finetune.runs.records"]
