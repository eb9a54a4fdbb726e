"""The recipe: schedule, augmentation, best-validation selection, test used once, resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bench.job import apply, train
from tests.conftest import RECIPE, random_data


def _data(n=48, seed=0):
    return random_data(n, seed)


def test_warmup_then_cosine_to_zero():
    assert train.lr_at(1, 1.0, 4, 10) == pytest.approx(0.25)
    assert train.lr_at(4, 1.0, 4, 10) == pytest.approx(1.0)
    assert train.lr_at(7, 1.0, 4, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert train.lr_at(10, 1.0, 4, 10) == pytest.approx(0.0, abs=1e-12)
    assert train.lr_at(1, 0.1, 0, 10) < 0.1


def test_rrc_flip_identity_when_full_crop_no_flip():
    x = torch.randn(4, 3, 16, 16)
    out = train.rrc_flip(x, torch.Generator().manual_seed(0), (1.0, 1.0), False, ratio=(1, 1))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


def test_rrc_flip_flips():
    """With a full crop, each image comes out either as it was or mirrored left to right
    (never anything else), about half of them mirrored; with hflip off, none is."""
    x = torch.arange(16.0).repeat(1, 3, 16, 1) + 100 * torch.arange(3.0).view(1, 3, 1, 1)
    batch = x.repeat(64, 1, 1, 1)  # value = column index (+ 100 per channel)
    out = train.rrc_flip(batch, torch.Generator().manual_seed(1), (1.0, 1.0), True, ratio=(1, 1))
    same = [torch.allclose(o, x[0], atol=1e-4) for o in out]
    mirrored = [torch.allclose(o, x[0].flip(-1), atol=1e-4) for o in out]
    assert all(a != b for a, b in zip(same, mirrored))  # one or the other, every image
    assert 10 < sum(mirrored) < 54  # about half, seeded
    kept = train.rrc_flip(batch, torch.Generator().manual_seed(1), (1.0, 1.0), False,
                          ratio=(1, 1))
    torch.testing.assert_close(kept, batch, atol=1e-4, rtol=1e-4)


def test_test_accuracy_is_the_best_validation_state(tiny_vit, monkeypatch):
    """Validation accuracies are scripted: the best is the 2nd evaluation (step 6). The test
    evaluation must see exactly the parameters the model had then, and run once."""
    apply.apply_strategy(tiny_vit, "full")
    val, test = _data(seed=1), _data(seed=2)
    scripted = iter([0.5, 0.9, 0.7])
    snapshots, test_calls = [], []

    def fake_evaluate(model, data, batch_size, precision="auto"):
        state = {n: p.detach().clone() for n, p in model.named_parameters()}
        if data is test:
            test_calls.append(state)
            return 0.123
        snapshots.append(state)
        return next(scripted)

    monkeypatch.setattr(train, "evaluate", fake_evaluate)
    res = train.finetune(tiny_vit, _data(), val, test, recipe=RECIPE, lr=0.1, seed=0)
    assert res.best_step == 6 and res.best_val_acc == 0.9 and res.test_acc == 0.123
    assert len(test_calls) == 1
    for n, t in test_calls[0].items():
        assert torch.equal(t, snapshots[1][n]), n
    assert not torch.equal(snapshots[1]["head.weight"], snapshots[2]["head.weight"])


def test_test_split_influences_no_choice():
    import timm

    from tests.conftest import TINY_KWARGS

    runs = []
    for test_seed in (3, 4):  # two different test sets
        torch.manual_seed(0)
        m = timm.create_model("vit_tiny_patch16_224", num_classes=10, **TINY_KWARGS)
        apply.apply_strategy(m, "full")
        res = train.finetune(m, _data(), _data(seed=1), _data(seed=test_seed), recipe=RECIPE,
                             lr=0.1, seed=0)
        runs.append((res, {n: p.detach().clone() for n, p in m.named_parameters()}))
    (a, pa), (b, pb) = runs
    assert a.curves == b.curves and a.best_step == b.best_step
    assert all(torch.equal(pa[n], pb[n]) for n in pa)


def test_resume_from_checkpoint_gives_the_same_result(tmp_path):
    import timm

    from tests.conftest import TINY_KWARGS

    def model():
        torch.manual_seed(0)
        m = timm.create_model("vit_tiny_patch16_224", num_classes=10, **TINY_KWARGS)
        apply.apply_strategy(m, "mha")
        return m

    recipe = dataclasses.replace(RECIPE, checkpoint_every=4)
    whole = train.finetune(model(), _data(), _data(seed=1), _data(seed=2), recipe=recipe,
                           lr=0.1, seed=0)
    ck = tmp_path / "ck.pt"

    class Stop(Exception):
        pass

    calls = 0

    def interrupt(n):
        nonlocal calls
        calls += 1
        if calls == 5:  # after step 5: the checkpoint of step 4 exists
            raise Stop

    with pytest.raises(Stop):
        train.finetune(model(), _data(), _data(seed=1), _data(seed=2), recipe=recipe, lr=0.1,
                       seed=0, checkpoint=ck, progress=interrupt)
    assert ck.is_file()
    resumed = train.finetune(model(), _data(), _data(seed=1), _data(seed=2), recipe=recipe,
                             lr=0.1, seed=0, checkpoint=ck)
    assert resumed.curves == whole.curves
    assert (resumed.test_acc, resumed.best_step) == (whole.test_acc, whole.best_step)


def test_nan_loss_is_diverged(tiny_vit):
    with torch.no_grad():
        tiny_vit.head.weight.fill_(float("nan"))
    apply.apply_strategy(tiny_vit, "linear")
    with pytest.raises(train.Diverged, match="step 1"):
        train.finetune(tiny_vit, _data(), _data(), None, recipe=RECIPE, lr=0.1, seed=0)
