"""Every loss form and reduction against a slow elementwise reference (what mutation testing found untested)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixweave import CombinedLoss, FocalLoss, WeightedBCEWithLogitsLoss
from mixweave.train.losses import combined_loss, focal_loss, weighted_bce_with_logits


def slow_focal(logits, y, alpha, gamma, pos_weight=None):
    """-alpha_t (1 - p_t)^gamma log(p_t), element by element in Python floats."""
    n, c = logits.shape
    out = torch.zeros(n, c, dtype=torch.float64)
    for i in range(n):
        for j in range(c):
            x, t = float(logits[i, j]), float(y[i, j])
            p = 1 / (1 + math.exp(-x))
            pw = 1.0 if pos_weight is None else float(pos_weight[j])
            a = 1.0 if alpha is None else float(alpha if not torch.is_tensor(alpha) or alpha.ndim == 0 else alpha[j])
            pos = -pw * math.log(p) * (1 - p) ** gamma * (a if alpha is not None else 1.0)
            neg = -math.log(1 - p) * p**gamma * ((1 - a) if alpha is not None else 1.0)
            out[i, j] = t * pos + (1 - t) * neg
    return out


def slow_bce(logits, y, pos_weight=None):
    """BCE is the focal loss without alpha and with gamma 0: -pw t log p - (1 - t) log(1 - p)."""
    return slow_focal(logits, y, None, 0.0, pos_weight)


def reduce(x, reduction):
    return x.mean() if reduction == "mean" else x.sum() if reduction == "sum" else x


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 4, generator=g, dtype=torch.float64) * 2
    y = (torch.rand(12, 4, generator=g) < 0.4).to(torch.float64)
    return logits, y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0, None, "per-class"])
def test_focal_every_reduction_and_alpha(data, reduction, alpha):
    logits, y = data
    a = torch.tensor([0.1, 0.5, 0.9, 0.3]) if alpha == "per-class" else alpha
    want = reduce(slow_focal(logits, y, a, 1.5), reduction)
    torch.testing.assert_close(focal_loss(logits, y, a, 1.5, reduction), want)
    torch.testing.assert_close(FocalLoss(a, 1.5, reduction)(logits, y), want)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_every_reduction(data, reduction):
    logits, y = data
    pw = torch.tensor([1.0, 2.0, 0.5, 4.0])
    want = reduce(slow_bce(logits, y, pw), reduction)
    torch.testing.assert_close(weighted_bce_with_logits(logits, y, pw, reduction), want)
    torch.testing.assert_close(WeightedBCEWithLogitsLoss(pw, reduction)(logits, y), want)
    torch.testing.assert_close(WeightedBCEWithLogitsLoss()(logits, y), slow_bce(logits, y).mean())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_combined_function_and_module_every_reduction(data, reduction):
    logits, y = data
    pw = torch.tensor([1.0, 3.0, 1.0, 0.5])
    want = reduce(0.6 * slow_bce(logits, y, pw) + 0.4 * slow_focal(logits, y, 0.3, 2.0), reduction)
    torch.testing.assert_close(combined_loss(logits, y, pw, 0.6, 0.4, 0.3, 2.0, reduction), want)
    torch.testing.assert_close(CombinedLoss(pw, 0.3, 2.0, 0.6, 0.4, reduction=reduction)(logits, y), want)
    # the function's defaults: 0.7 / 0.3, alpha 0.25, gamma 2, mean
    default = 0.7 * slow_bce(logits, y) + 0.3 * slow_focal(logits, y, 0.25, 2.0)
    torch.testing.assert_close(combined_loss(logits, y), default.mean())
    with pytest.raises(ValueError, match=r"`focal_weight` must be a finite number >= 0, got -1"):
        combined_loss(logits, y, focal_weight=-1)


def test_defaults_are_pinned(data):
    logits, y = data
    focal = FocalLoss()
    assert (focal.gamma, focal.reduction, float(focal.alpha), focal.pos_weight) == (2.0, "mean", 0.25, None)
    torch.testing.assert_close(focal(logits, y), slow_focal(logits, y, 0.25, 2.0).mean())
    combined = CombinedLoss()
    assert (combined.bce_weight, combined.focal_weight) == (0.7, 0.3)
    assert combined.bce.pos_weights is None and combined.bce.reduction == "mean"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_dtype_follows_the_logits(data, dtype):
    logits, y = data
    for loss in (FocalLoss(), WeightedBCEWithLogitsLoss(torch.ones(4)), CombinedLoss(torch.ones(4))):
        assert loss(logits.to(dtype), y).dtype == dtype
        assert loss(logits.to(dtype), y.to(torch.int64)).dtype == dtype  # integer multi-hot targets


def test_class_ids_that_do_not_cover_every_class(data):
    logits, _ = data
    ids = torch.tensor([0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2])  # classes 1 and 3 never occur
    hot = F.one_hot(ids, 4).to(torch.float64)
    assert hot[:, 1].sum() == 0 and hot.shape == (12, 4)
    for loss in (FocalLoss(), WeightedBCEWithLogitsLoss(), CombinedLoss()):
        torch.testing.assert_close(loss(logits, ids), loss(logits, hot))
    with pytest.raises(ValueError, match=r"class-id `targets` must be in \[0, 3\], got 4"):
        FocalLoss()(logits, torch.full((12,), 4))
    with pytest.raises(ValueError, match=r"class-id `targets` must be in \[0, 3\], got -1"):
        FocalLoss()(logits, torch.full((12,), -1))
    with pytest.raises(ValueError, match=r"class-id `targets` must have 12 entries, got 3"):
        FocalLoss()(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"`targets` must be labels in \[0, 1\], got 2\.0"):
        FocalLoss()(logits, torch.full((12, 4), 2.0))
    with pytest.raises(ValueError, match=r"`logits` must have shape \(N, C\), got \(12,\)"):
        FocalLoss()(logits[:, 0], ids)


def test_weight_helpers_defaults_dtypes_and_errors():
    from mixweave import calculate_effective_num_samples, calculate_sampled_pos_weights, get_class_balanced_weights

    counts = torch.tensor([1000, 10])
    eff = calculate_effective_num_samples(counts)  # default beta 0.9999
    want = [(1 - 0.9999**n) / (1 - 0.9999) for n in (1000, 10)]
    torch.testing.assert_close(eff, torch.tensor(want, dtype=torch.float64))
    cb = get_class_balanced_weights(counts)
    inv = [1 / w for w in want]
    torch.testing.assert_close(cb, torch.tensor([2 * v / sum(inv) for v in inv], dtype=torch.float32))
    assert cb.dtype == torch.float32
    with pytest.raises(ValueError, match=r"`label_counts` has zero count for class\(es\) \[1\]: the class-balanced"):
        get_class_balanced_weights([5, 0])
    y = torch.tensor([[1, 0], [0, 1], [0, 1], [0, 1]])
    sampled = calculate_sampled_pos_weights(y, [3.0, 1.0, 1.0, 1.0])
    assert sampled.dtype == torch.float32 and sampled.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"`sample_weights` has 3 entries but `labels` has 4 rows"):
        calculate_sampled_pos_weights(y, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"`sample_weights` must be non-negative, got -1\.0 at position 0"):
        calculate_sampled_pos_weights(y, [-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"class\(es\) \[0\] are never drawn under these `sample_weights`"):
        calculate_sampled_pos_weights(y, [0.0, 1.0, 1.0, 1.0])
