"""The paper's linear-probing baseline, strategy ``lp`` (protocol.md, `paper`).

Features are the output of the frozen model's last block (before the final norm), mean-pooled
over all tokens (class token included) and L2-normalised per sample. Training features come
from one pass over the training split through the training transform (random-resized crop,
flip), in a seeded shuffled order; test features from the test split as evaluated. The
classifier is scikit-learn's ``make_pipeline(StandardScaler(), LogisticRegression(
max_iter=5000, random_state=seed))``, fitted once and scored once on test. Nothing trains by
SGD and no validation split is used: the record has ``test_acc`` and no validation accuracy.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.core import protocol as protocols
from bench.core.config import Recipe
from bench.job.plasticity import embed


@torch.no_grad()
def features(model, x: torch.Tensor) -> torch.Tensor:
    """(N, D): the last block's output, mean over tokens, divided by its L2 norm."""
    tokens = model.blocks(embed(model, x))
    f = tokens.float().mean(dim=1)
    return f / f.norm(dim=1, keepdim=True)


def _extract(model, batches) -> tuple[np.ndarray, np.ndarray]:
    fs, ys = [], []
    for x, y in batches:
        fs.append(features(model, x).cpu())
        ys.append(y.cpu())
    return torch.cat(fs).numpy(), torch.cat(ys).numpy()


def _train_batches(data, gen: torch.Generator, recipe: Recipe, batch: int, drop_last: bool):
    """One shuffled pass over the training split through the training transform."""
    order = torch.randperm(len(data), generator=gen)
    stop = len(order) - len(order) % batch if drop_last else len(order)
    for s in range(0, stop, batch):
        yield data.augmented(order[s:s + batch], gen, recipe.crop_scale, recipe.hflip)


def _test_batches(data, batch: int):
    for s in range(0, len(data), batch):
        yield data.batch(torch.arange(s, min(s + batch, len(data))))


def fit_score(train_f: np.ndarray, train_y: np.ndarray, test_f: np.ndarray,
              test_y: np.ndarray, seed: int) -> float:
    """The reference's classifier, fitted on the training features, its test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(),
                        LogisticRegression(max_iter=protocols.LP_MAX_ITER, random_state=seed))
    clf.fit(train_f, train_y)
    return float(clf.score(test_f, test_y))


def run(model, train, test, *, recipe: Recipe, seed: int, drop_last: bool) -> dict:
    """Fit the probe on ``train`` and score it on ``test`` (``bench.job.train.DeviceData``).

    ``drop_last``: the training pass drops its incomplete last batch of ``LP_BATCH``, as the
    reference's loader does (paper protocol). Returns the record's metrics.
    """
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    batch = protocols.LP_BATCH
    if drop_last and len(train) < batch:
        raise ValueError(f"lp: the training split has {len(train)} images, fewer than one "
                         f"batch of {batch} (the reference drops incomplete batches)")
    train_f, train_y = _extract(model, _train_batches(train, gen, recipe, batch, drop_last))
    test_f, test_y = _extract(model, _test_batches(test, recipe.eval_batch_size))
    acc = fit_score(train_f, train_y, test_f, test_y, seed)
    model.train(was_training)
    seconds = time.perf_counter() - t0
    return {"test_acc": acc, "best_val_acc": None, "best_step": None, "steps_done": 0,
            "train_seconds": seconds, "images_per_second": len(train_y) / seconds,
            "probe_train_images": int(len(train_y))}
