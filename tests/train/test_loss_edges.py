"""Edges of the losses that mutation testing found unpinned: float64 paths, defaults, boundaries, error wording."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from mixweave import CombinedLoss, FocalLoss, WeightedBCEWithLogitsLoss
from mixweave.train.losses import (
    calculate_effective_num_samples,
    calculate_pos_weights,
    combined_loss,
    focal_loss,
    get_class_balanced_weights,
)

from .test_loss_forms import slow_focal


def _data(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 3, generator=g) * 3).to(dtype)
    y = (torch.rand(6, 3, generator=g) < 0.4).to(dtype)
    return logits, y


def test_float64_logits_stay_float64_with_alpha_and_pos_weight():
    logits, y = _data()
    pw = torch.tensor([0.5, 2.0, 3.0])  # float32 weights, as the classes store them
    got = focal_loss(logits, y, alpha=0.3, gamma=1.5, reduction="none", pos_weight=pw)
    assert got.dtype == torch.float64
    ref = slow_focal(logits, y, 0.3, 1.5, pos_weight=pw.double())
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-14)  # alpha 0.3 in float32 would miss by ~1e-8
    bce = WeightedBCEWithLogitsLoss(pos_weights=[0.3, 1.0, 7.0], reduction="none")(logits, y)
    assert bce.dtype == torch.float64
    assert torch.allclose(bce, slow_focal(logits, y, None, 0.0, pos_weight=torch.tensor([0.3, 1.0, 7.0]).float()))


def test_defaults_are_pinned():
    logits, y = _data()
    assert torch.equal(focal_loss(logits, y), focal_loss(logits, y, alpha=0.25, gamma=2.0, reduction="mean"))
    got = combined_loss(logits, y, alpha=0.3, gamma=0.0)  # gamma reaches the focal term
    want = 0.7 * slow_focal(logits, y, None, 0.0).mean() + 0.3 * slow_focal(logits, y, 0.3, 0.0).mean()
    assert torch.allclose(got, want, rtol=1e-12)
    loss = FocalLoss()
    assert (loss.gamma, loss.reduction, loss.alpha.item(), loss.pos_weight) == (2.0, "mean", 0.25, None)
    assert loss.alpha.dtype == torch.float32
    assert FocalLoss(alpha=[0.1, 0.9]).alpha.dtype == torch.float32
    assert FocalLoss(alpha=np.array([0, 1], dtype=np.uint8)).alpha.tolist() == [0.0, 1.0]  # unsigned ints are numbers


def test_counts_checks_name_the_class_and_value():
    with pytest.raises(ValueError, match=r"`label_counts` must be finite and >= 0, got -1.0 at class 2"):
        calculate_pos_weights([0, 5, -1], 10)
    with pytest.raises(ValueError, match=r"`label_counts` must be finite and >= 0, got inf at class 1"):
        calculate_pos_weights([3, float("inf")], 10)
    with pytest.raises(ValueError, match=r"must be a non-empty 1-D sequence of counts, got shape \(1, 2\)"):
        calculate_pos_weights([[1, 2]], 10)
    with pytest.raises(ValueError, match=r"must be a non-empty 1-D sequence of counts, got shape \(0,\)"):
        get_class_balanced_weights([])
    with pytest.raises(TypeError, match=r"`label_counts` must hold numbers, got dtype torch.bool"):
        calculate_effective_num_samples([True, False])
    with pytest.raises(ValueError, match=r"^`label_counts` must be finite and >= 0, got -1.0 at class 0$"):
        get_class_balanced_weights([-1.0])
    assert calculate_pos_weights([5], 10).tolist() == [1.0]  # one class is fine


def test_pos_weight_boundaries():
    assert calculate_pos_weights([10, 4], 10).tolist() == [0.0, 1.5]  # a class in every row weighs 0
    assert calculate_pos_weights([0.5], 0.5).tolist() == [0.0]  # any positive total
    with pytest.raises(ValueError, match=r"`total_samples` must be"):
        calculate_pos_weights([1], 0)
    with pytest.raises(ValueError, match=r"`label_counts` exceeds total_samples=10 for class\(es\) \[1\]"):
        calculate_pos_weights([3, 11], 10)
    with pytest.raises(
        ValueError,
        match=r"`label_counts` has zero count for class\(es\) \[1\]: the positive weight is undefined \(infinite\) "
        r"for a class with no positive sample; drop those classes or give them an explicit weight",
    ):
        calculate_pos_weights([3, 0], 10)
    with pytest.raises(ValueError, match=r"class\(es\) \[0\]: the class-balanced weight is undefined"):
        get_class_balanced_weights([0, 3])


def test_effective_numbers_at_beta_zero_are_float64_indicators():
    out = calculate_effective_num_samples([0, 3, 7], beta=0.0)
    assert out.dtype == torch.float64 and out.tolist() == [0.0, 1.0, 1.0]


def test_per_class_arguments():
    with pytest.raises(ValueError, match=r"`alpha` must be a number or a 1-D per-class tensor, got shape \(2, 2\)"):
        FocalLoss(alpha=[[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(TypeError, match=r"`alpha` must hold numbers, got dtype bool"):
        FocalLoss(alpha=[True, False])
    with pytest.raises(TypeError, match=r"a 1-D per-class tensor of numbers, got \[\(0.1\+1j\)\]"):
        FocalLoss(alpha=[0.1 + 1j])
    with pytest.raises(TypeError, match=r"`alpha` must be a number or a 1-D per-class tensor of numbers, got \['x'\]"):
        FocalLoss(alpha=["x"])
    with pytest.raises(ValueError, match=r"`pos_weight` must be finite and >= 0, got -1.0"):
        FocalLoss(pos_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"`reduction`"):
        WeightedBCEWithLogitsLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"`targets` must be labels in \[0, 1\], got 2.0"):
        focal_loss(torch.zeros(2, 2), torch.tensor([[0.0, 2.0], [1.0, 0.0]]))


def test_combined_loss_argument_names():
    assert CombinedLoss(bce_weight=0.0).bce_weight == 0.0  # one zero weight is fine
    assert CombinedLoss(focal_weight=0.0).focal_weight == 0.0
    with pytest.raises(ValueError, match=r"^`bce_weight` and `focal_weight` must not both be 0$"):
        CombinedLoss(bce_weight=0.0, focal_weight=0.0)
    with pytest.raises(ValueError, match=r"`focal_weight`"):
        CombinedLoss(focal_weight=-1.0)
    with pytest.raises(ValueError, match=r"`focal_alpha` must be in \[0, 1\], got 2.0"):
        CombinedLoss(focal_alpha=2.0)
    with pytest.raises(ValueError, match=r"`focal_gamma`"):
        CombinedLoss(focal_gamma=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\], got 2.0"):  # the name the caller wrote
            CombinedLoss(alpha=2.0)
        with pytest.raises(ValueError, match=r"`gamma`"):
            CombinedLoss(gamma=-1.0)
    with pytest.warns(DeprecationWarning, match=r"`alpha=` is deprecated; write `focal_alpha=`") as record:
        CombinedLoss(alpha=0.5)
    assert not record[0].filename.endswith(os.path.join("mixweave", "train", "losses.py"))  # at the caller


def test_half_precision_logits_use_pos_weight_in_their_dtype():
    logits = torch.tensor([[2.5, -1.0]], dtype=torch.float16)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float16)
    pw = torch.tensor([0.3, 3.7])
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pw.half(), reduction="none")
    assert torch.equal(WeightedBCEWithLogitsLoss(pw, reduction="none").half()(logits, y), want)  # torch's own module
    from mixweave.train.losses import weighted_bce_with_logits

    assert torch.equal(weighted_bce_with_logits(logits, y, pw, reduction="none"), want)
