"""Packing must not change what is learned: the packed loss and gradients equal
the unpacked reference, and a short run gives the same loss curve."""

import tiny
import torch
import torch.nn.functional as F

from finetune.data.collate import PackingCollator, plan_rows
from finetune.train.acceleration import compile_layers
from finetune.train.loss import linear_cross_entropy_sum, response_loss


def _features(tokenizer, texts_and_answers):
    features = []
    for prompt, answer in texts_and_answers:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        features.append({"input_ids": p + a, "labels": [-100] * len(p) + a})
    return features


PAIRS = [
    ("What is the capital of France?", "Paris."),
    ("Convert the date to ISO 8601: March 5, 2021", "2021-03-05"),
    ("Give a synonym for happy.", "Joyful, glad, cheerful and content."),
    ("Say hi", "hi"),
    ("The quick brown fox jumps over the lazy dog. Repeat it.", "The quick brown fox jumps over the lazy dog."),
]


def _reference_loss(model, features):
    """Each example alone through the plain model forward, summed CE over its response tokens."""
    total, count = 0.0, 0
    for f in features:
        ids = torch.tensor([f["input_ids"]])
        labels = torch.tensor(f["labels"])
        logits = model(input_ids=ids).logits[0, :-1]
        target = labels[1:]
        total = total + F.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
        count += int((target != -100).sum())
    return total / count


def test_rows_are_balanced_and_hold_every_example():
    lengths = [50, 90, 30, 70, 20, 80, 10, 40]
    rows = plan_rows(lengths, 100)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    sums = [sum(lengths[i] for i in row) for row in rows]
    assert len(rows) == 4 and max(sums) - min(sums) <= 10, sums
    assert plan_rows(lengths, 10_000) == [sorted(range(8), key=lambda i: -lengths[i])], "one row when it fits"
    assert len(plan_rows([300, 10, 10], 100)) == 1, "the longest example sets the least row size"


def test_packed_batch_is_denser_than_padding(tiny_tokenizer):
    features = _features(tiny_tokenizer, PAIRS)
    packed = PackingCollator(tiny_tokenizer.pad_token_id, pack=True)(features)
    padded = PackingCollator(tiny_tokenizer.pad_token_id, pack=False)(features)
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    assert packed["num_tokens"] == padded["num_tokens"] == sum(len(f["input_ids"]) for f in features)


def test_packed_loss_and_gradients_equal_unpacked_reference(tiny_tokenizer):
    model = tiny.build_model(tiny_tokenizer).float()
    features = _features(tiny_tokenizer, PAIRS)
    batch = PackingCollator(tiny_tokenizer.pad_token_id, pack=True)(features)
    assert batch["input_ids"].shape[0] < len(features), "examples should share rows"

    packed = response_loss(model, batch)
    packed.backward()
    packed_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    reference = _reference_loss(model, features)
    reference.backward()

    assert torch.allclose(packed, reference, atol=1e-5), (packed.item(), reference.item())
    for name, param in model.named_parameters():
        assert torch.allclose(packed_grads[name], param.grad, atol=1e-5, rtol=1e-4), name


def test_chunked_cross_entropy_matches_full_logits():
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    chunked = linear_cross_entropy_sum(hidden, weight, targets, chunk=8)
    chunked.backward()
    gh, gw = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    full = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    full.backward()
    assert torch.allclose(chunked, full, atol=1e-4)
    assert torch.allclose(gh, hidden.grad, atol=1e-5)
    assert torch.allclose(gw, weight.grad, atol=1e-5)


def test_no_example_learns_to_predict_its_neighbour(tiny_tokenizer):
    features = _features(tiny_tokenizer, PAIRS[:2])
    batch = PackingCollator(tiny_tokenizer.pad_token_id, pack=True)(features)
    row = batch["shift_labels"][0]
    first_len = len(max(features, key=lambda f: len(f["input_ids"]))["input_ids"])
    # The last position of the first example in the row has no target.
    assert row[first_len - 1] == -100
    assert batch["position_ids"][0, first_len] == 0


def test_compiled_decoder_gives_the_same_loss(tiny_tokenizer):
    """The GPU path compiles the decoder; its loss and gradients must match eager."""
    eager = tiny.build_model(tiny_tokenizer).float()
    compiled = tiny.build_model(tiny_tokenizer).float()
    assert compile_layers(compiled, "cpu", None), "the probe step should compile on this machine"
    for pairs in (PAIRS, PAIRS[:3]):  # two shapes, one dynamic graph
        batch = PackingCollator(tiny_tokenizer.pad_token_id, pack=True, pad_to_multiple=64)(_features(tiny_tokenizer, pairs))
        a, b = response_loss(eager, batch), response_loss(compiled, batch)
        a.backward()
        b.backward()
        assert torch.allclose(a, b, atol=1e-5), (a.item(), b.item())
        for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name
        eager.zero_grad()
        compiled.zero_grad()


def test_a_failed_compile_falls_back_to_eager(tiny_tokenizer, monkeypatch):
    import finetune.train.acceleration as acceleration

    model = tiny.build_model(tiny_tokenizer).float()

    def broken_probe(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(acceleration, "_probe", broken_probe)
    assert not acceleration.compile_layers(model, "cpu", None)
    assert all(layer._compiled_call_impl is None for layer in model.get_decoder().layers)
    batch = PackingCollator(tiny_tokenizer.pad_token_id)(_features(tiny_tokenizer, PAIRS))
    assert torch.isfinite(response_loss(model, batch))
