"""A run says whether its change is bigger than the noise: summary.json carries
each category's before -> after change with its 95% interval, and the run
keeps each validation example's loss for comparing runs example by example."""

import json
import math

import pytest

from finetune.evaluate.metrics import METRICS
from finetune.export.bundle import model_card
from finetune.runs.outputs import VALIDATION_LOSSES_FILE
from finetune.runs.run import TrainingRun
from finetune.runs.validation_losses import per_example_losses
from finetune.train.config import TrainConfig

ROWS = [{"prompt": f"Convert to ISO 8601: March {d}, 2021", "completion": f"2021-03-{d:02d}"} for d in range(1, 29)]


@pytest.fixture
def data_file(write):
    return write("dates.jsonl", "\n".join(json.dumps(r) for r in ROWS))


def test_summary_carries_each_change_with_its_interval(tiny_model_dir, data_file, tmp_path):
    config = TrainConfig(model=str(tiny_model_dir), data=str(data_file), learning_rate=3e-3, batch_size=8,
                         grad_accum=1, epochs=2, held_out=6, validation_fraction=0.2, eval_steps=1,
                         max_new_tokens=8, seed=3, precision="fp32", warmup_ratio=0.05)
    snap = TrainingRun(config, tmp_path / "run", allow_out_of_range=True).start().wait(timeout=300)
    assert snap.status == "completed", snap.error
    folder = tmp_path / "run"
    summary = json.loads((folder / "summary.json").read_text())
    changes = summary["changes"]
    assert set(changes) == set(summary["scores"]) == {"all", "general_probe"}  # the scores' keys, unchanged
    assert summary["scores"]["all"]["prompts"] >= 4
    for category in ("all", "general_probe"):
        count = summary["scores"][category]["prompts"]
        for name in METRICS:
            found = changes[category][name]
            assert found["n"] == count and found["low"] <= found["change"] <= found["high"], (category, name)
            assert found["before"] == pytest.approx(summary["scores"][category][f"before_{name}"], abs=1e-4)
            assert found["after"] == pytest.approx(summary["scores"][category][f"after_{name}"], abs=1e-4)
    assert changes["general_probe"]["normalised"]["n"] == 45
    assert " on all held-out prompts (normalised): " in changes["all"]["normalised"]["sentence"]
    assert " on the general-knowledge probe (token F1): " in changes["general_probe"]["token_f1"]["sentence"]
    # Each category's one reading, on its headline metric: the probe's open questions on "contains".
    assert changes["all"]["reading"]["metric"] == "normalised" and changes["general_probe"]["reading"]["metric"] == \
        "contains"
    assert " on the general-knowledge probe" in changes["general_probe"]["reading"]["sentence"]
    probe = json.loads((folder / "probe.json").read_text())
    assert all(set(a["after_score"]) == set(METRICS) for a in probe["answers"])

    # Each validation example's loss under the final model; weighted by its tokens they
    # make the validation loss logged at the last step (one batch holds them all).
    stored = json.loads((folder / VALIDATION_LOSSES_FILE).read_text())
    validation = json.loads((folder / "config.json").read_text())["resolved"]["validation_examples"]
    assert len(stored["ids"]) == len(set(stored["ids"])) == len(stored["losses"]) == validation
    assert 2 <= validation <= config.batch_size
    last = [h for h in snap.history if "eval_loss" in h][-1]
    assert last["step"] == snap.step
    weighted = sum(loss * n for loss, n in zip(stored["losses"], stored["tokens"])) / sum(stored["tokens"])
    assert weighted == pytest.approx(last["eval_loss"], rel=1e-3)

    card = model_card(folder)
    assert "change on its headline metric (95% interval)" in card and "on the general-knowledge probe" in card


def test_each_examples_loss_is_its_response_tokens_cross_entropy(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from finetune.data.render import IGNORE, Encoded

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train()
    prompt_only = Encoded([5, 6, 7], [IGNORE] * 3)
    examples = [Encoded([5, 6, 7, 8, 9], [IGNORE, IGNORE, IGNORE, 8, 9]), prompt_only,
                Encoded([3, 4, 5, 6], [IGNORE, IGNORE, 5, 6])]
    found = per_example_losses(model, examples)
    assert model.training, "the model is handed back in the mode it came in"
    assert len(found["ids"]) == 2 and found["tokens"] == [2, 2]  # the example without a response is left out
    with torch.no_grad():
        model.eval()
        logits = model(torch.tensor([[5, 6, 7, 8, 9]])).logits[0]
        shorter = model(torch.tensor([[3, 4, 5, 6]])).logits[0]  # padded in the batch: the padding changes nothing
    expected = torch.nn.functional.cross_entropy(logits[2:4], torch.tensor([8, 9])).item()
    assert found["losses"][0] == pytest.approx(expected, rel=1e-4)
    expected = torch.nn.functional.cross_entropy(shorter[1:3], torch.tensor([5, 6])).item()
    assert found["losses"][1] == pytest.approx(expected, rel=1e-4) and math.isfinite(found["losses"][1])
    assert found["ids"] == per_example_losses(model, examples)["ids"]  # the same tokens, the same id
