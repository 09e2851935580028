import os
import sys
from pathlib import Path

# No test downloads anything: the hub is off for every test.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Runs train one at a time unless a test asks for more (tests/experiments/test_concurrency.py): the
# queue tests check first-in-first-out on any machine, whatever its cores.
os.environ.setdefault("FINETUNE_CONCURRENT_RUNS", "1")

import pytest  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import tiny  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "assets" / "demo" / "demo.jsonl"  # bundled: end-to-end tests run on a bare clone
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Public datasets, for tests of their quirks only (a clone has no ../shared)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("exercises public datasets' quirks: needs ../shared/data, which a clone does not have")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return tiny.build_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return tiny.save_tiny(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def write(tmp_path):
    """write("name.csv", text_or_bytes) -> path in a fresh folder."""

    def _write(name: str, content) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def dates_jsonl(write):
    """The date-conversion pairs as a JSONL file (tiny_runs.DATE_PAIRS)."""
    import json

    from tiny_runs import DATE_PAIRS

    return write("dates.jsonl", "\n".join(json.dumps(r) for r in DATE_PAIRS))


class KeepTrainedModel(TrainerCallback):
    """Hands a test the model the Trainer trained (runs keep no model once finished)."""

    model = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


@pytest.fixture(scope="module")
def holds():
    """The holds (tests/holds.py) of the module's app: arm one to hold a run at a known step."""
    from holds import Holds

    return Holds()


@pytest.fixture(scope="module")
def public_app(tiny_model_dir, tmp_path_factory, holds):
    """A public-mode app (as on a Space) with the tiny model as its default: (url, runs folder).
    Its runs can be held at a known step through the `holds` fixture.

    One per test module, so the runs one module makes never show up in another's."""
    from app_server import running_app  # starts a server: imported only by the modules that use it

    runs = tmp_path_factory.mktemp("runs")
    with running_app(tiny_model_dir, runs, public=True, holds=holds) as url:
        yield url, runs
