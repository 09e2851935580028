"""A preference run continued from a supervised one, driven as a user's script
drives the public app (gradio_client's default Client): a tiny supervised run,
/continue_from on it, a DPO run started from the model it gives; the DPO run's
record names its parent, and /list_runs shows the chain. Only one's own runs
can be continued from, or named as a model."""

import json
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from api_contract import finished  # noqa: E402

KEY, OTHER = "continue-test-owner-key-0123456789", "continue-test-someone-else-0123456"
# Short runs inside the recommended ranges, validation at every step so a best checkpoint is kept.
RUN = dict(source="upload", max_steps=2, batch_size=4, grad_accum=1, held_out=4, validation_fraction=0.1,
           eval_steps=1, max_new_tokens=16, general_probe=False)
PAIRS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "chosen": f"2021-03-{d:02d}",
          "rejected": f"{d}/3/2021, I think"} for d in range(1, 29)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("continue-data")
    sft = folder / "dates.jsonl"
    sft.write_text("\n".join(json.dumps({"prompt": p["prompt"], "completion": p["chosen"]}) for p in PAIRS))
    pairs = folder / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(p) for p in PAIRS))
    return sft, pairs


def test_a_dpo_run_continued_from_a_supervised_one_names_its_parent(public_app, data):
    url, runs = public_app
    sft_file, pairs_file = data
    client = Client(url, verbose=False)
    sft = client.predict(file=handle_file(str(sft_file)), owner_key=KEY, **RUN, api_name="/start_training")
    done = finished(client, sft["run_id"], KEY)
    assert done["status"] == "completed" and done["best_checkpoint"], done["error"]

    found = client.predict(run_id=sft["run_id"], which="best", owner_key=KEY, api_name="/continue_from")
    assert set(found) == {"model", "parent", "message"}
    assert found["parent"] == {"run_id": sft["run_id"], "which": "best"}
    assert found["model"].endswith(f"{sft['run_id']}/best") and sft["run_id"] in found["message"]

    # Someone else can neither continue from it nor name its folder as their model.
    with pytest.raises(AppError, match="no such run"):
        client.predict(run_id=sft["run_id"], owner_key=OTHER, api_name="/continue_from")
    with pytest.raises(AppError, match="model: no such run"):
        client.predict(file=handle_file(str(pairs_file)), model=found["model"], objective="dpo", owner_key=OTHER,
                       **RUN, api_name="/start_training")
    with pytest.raises(AppError, match="which: 'newest' is not one of best, final"):
        client.predict(run_id=sft["run_id"], which="newest", owner_key=KEY, api_name="/continue_from")

    dpo = client.predict(file=handle_file(str(pairs_file)), model=found["model"], objective="dpo", owner_key=KEY,
                         **RUN, api_name="/start_training")
    done = finished(client, dpo["run_id"], KEY)
    assert done["status"] == "completed", done["error"]
    assert any("rewards/margins" in h for h in done["history"])  # trained by DPO
    record = json.loads((runs / dpo["run_id"] / "run.json").read_text())
    assert record["parent"] == {"run_id": sft["run_id"], "which": "best"}

    rows = {row["run"]: row for row in client.predict(owner_key=KEY, api_name="/list_runs")}
    assert rows[dpo["run_id"]]["from"] == f"{sft['run_id']} (best)" and rows[sft["run_id"]]["from"] == ""
    assert rows[dpo["run_id"]]["model"] == f"{sft['run_id']}/best"
