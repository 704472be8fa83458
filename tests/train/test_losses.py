import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixweave.train.losses import (
    CombinedLoss,
    FocalLoss,
    WeightedBCEWithLogitsLoss,
    calculate_effective_num_samples,
    calculate_pos_weights,
    combined_loss,
    focal_loss,
    get_class_balanced_weights,
    weighted_bce_with_logits,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=g, dtype=torch.float64) * 3
    targets = (torch.rand(64, 5, generator=g) < 0.3).to(torch.float64)
    return logits, targets


def test_pos_weights_formula():
    counts = torch.tensor([1, 10, 500, 999])
    got = calculate_pos_weights(counts, total_samples=1000)
    expected = torch.tensor([999 / 1, 990 / 10, 500 / 500, 1 / 999], dtype=torch.float32)
    torch.testing.assert_close(got, expected)
    assert got.dtype == torch.float32


@pytest.mark.parametrize(
    ("counts", "total", "match"),
    [
        ([5, 0, 3], 10, r"zero count for class\(es\) \[1\]"),
        ([5, 11], 10, r"exceeds total_samples=10"),
        ([5, -1], 10, "finite and >= 0"),
        ([5, 1], 0, "total_samples"),
    ],
)
def test_pos_weights_rejects_bad_counts(counts, total, match):
    with pytest.raises(ValueError, match=match):
        calculate_pos_weights(counts, total)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999, 0.9999])
def test_effective_number_is_the_geometric_sum(beta):
    counts = [0, 1, 2, 7, 50, 3000]
    got = calculate_effective_num_samples(counts, beta).numpy()
    reference = [sum(beta**k for k in range(n)) for n in counts]  # E_n = 1 + beta + ... + beta^(n-1)
    np.testing.assert_allclose(got, reference, rtol=1e-9)


def test_class_balanced_weights_follow_cui_et_al():
    counts = np.array([5000, 500, 50, 5])
    beta = 0.999
    raw = (1 - beta) / (1 - beta ** counts.astype(np.float64))
    expected = raw / raw.sum() * len(counts)
    got = get_class_balanced_weights(counts, beta)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert got.sum().item() == pytest.approx(4.0)
    # beta = 0 gives equal weights, beta -> 1 approaches inverse frequency
    assert torch.equal(get_class_balanced_weights(counts, 0.0), torch.ones(4))
    near = get_class_balanced_weights(counts, 1 - 1e-9).numpy()
    inv = (1 / counts) / (1 / counts).sum() * 4
    np.testing.assert_allclose(near, inv, rtol=1e-3)


def test_class_balanced_weights_reject_zero_count_and_bad_beta():
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        get_class_balanced_weights([3, 4, 0])
    for beta in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match=rf"`beta` must be a finite number in \[0, 1\), got {float(beta)}"):
            get_class_balanced_weights([3, 4], beta)
    with pytest.raises(TypeError, match=r"`beta` must be a real number, got str '0\.9'"):
        get_class_balanced_weights([3, 4], "0.9")


def test_weighted_bce_equals_torch(batch):
    logits, targets = batch
    pw = torch.tensor([0.5, 1.0, 2.0, 10.0, 100.0])
    for reduction in ("mean", "sum", "none"):
        ours = WeightedBCEWithLogitsLoss(pw, reduction=reduction)(logits, targets)
        ref = torch.nn.BCEWithLogitsLoss(pos_weight=pw.double(), reduction=reduction)(logits, targets)
        torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(
        WeightedBCEWithLogitsLoss()(logits, targets), F.binary_cross_entropy_with_logits(logits, targets)
    )


def _focal_reference(logits, y, alpha, gamma, pos_weight=None):
    """The paper's formula written out: -alpha_t (1 - p_t)^gamma log(p_t), pos_weight on the positive term."""
    p = torch.sigmoid(logits)
    pw = torch.ones(logits.shape[1], dtype=logits.dtype) if pos_weight is None else pos_weight.double()
    a = torch.as_tensor(alpha, dtype=logits.dtype)
    pos = -a * pw * (1 - p) ** gamma * F.logsigmoid(logits)
    neg = -(1 - a) * p**gamma * F.logsigmoid(-logits)
    return y * pos + (1 - y) * neg


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.5])
def test_focal_matches_the_formula(batch, gamma):
    logits, targets = batch
    got = FocalLoss(alpha=0.25, gamma=gamma, reduction="none")(logits, targets)
    torch.testing.assert_close(got, _focal_reference(logits, targets, 0.25, gamma))
    assert FocalLoss(0.25, gamma)(logits, targets).item() == pytest.approx(got.mean().item())
    assert FocalLoss(0.25, gamma, reduction="sum")(logits, targets).item() == pytest.approx(got.sum().item())


def test_focal_per_class_alpha_and_pos_weight(batch):
    logits, targets = batch
    alpha = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    pw = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    got = FocalLoss(alpha=alpha, gamma=2.0, reduction="none", pos_weight=pw)(logits, targets)
    torch.testing.assert_close(got, _focal_reference(logits, targets, alpha.double(), 2.0, pw))


def test_focal_without_alpha_and_gamma_zero_is_bce(batch):
    logits, targets = batch
    torch.testing.assert_close(
        FocalLoss(alpha=None, gamma=0.0)(logits, targets), F.binary_cross_entropy_with_logits(logits, targets)
    )


def test_focal_down_weights_easy_examples():
    easy, hard = torch.tensor([[6.0]]), torch.tensor([[0.0]])
    y = torch.ones(1, 1)
    ratio_focal = FocalLoss(gamma=2.0)(easy, y) / FocalLoss(gamma=2.0)(hard, y)
    ratio_bce = F.binary_cross_entropy_with_logits(easy, y) / F.binary_cross_entropy_with_logits(hard, y)
    assert ratio_focal < ratio_bce / 100


def test_class_id_targets_are_one_hot(batch):
    logits, _ = batch
    ids = torch.arange(64) % 5
    hot = F.one_hot(ids, 5).double()
    torch.testing.assert_close(FocalLoss()(logits, ids), FocalLoss()(logits, hot))
    torch.testing.assert_close(WeightedBCEWithLogitsLoss()(logits, ids), WeightedBCEWithLogitsLoss()(logits, hot))


def test_combined_is_the_weighted_sum(batch):
    logits, targets = batch
    pw = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    got = CombinedLoss(pos_weights=pw, bce_weight=0.6, focal_weight=0.4, focal_alpha=0.3, focal_gamma=1.5)
    ref = (
        0.6 * F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pw.double())
        + 0.4 * _focal_reference(logits, targets, 0.3, 1.5).mean()
    )
    torch.testing.assert_close(got(logits, targets), ref)
    # the original X-Lite positional order: (pos_weights, focal_alpha, focal_gamma, bce_weight, focal_weight)
    torch.testing.assert_close(CombinedLoss(pw, 0.3, 1.5, 0.6, 0.4)(logits, targets), ref)
    # mixweave 0.x's spellings still work, with a DeprecationWarning
    with pytest.warns(DeprecationWarning) as caught:
        old = CombinedLoss(pos_weights=pw, bce_weight=0.6, focal_weight=0.4, alpha=0.3, gamma=1.5)
    assert [str(w.message) for w in caught] == [
        "`alpha=` is deprecated; write `focal_alpha=`",
        "`gamma=` is deprecated; write `focal_gamma=`",
    ]
    torch.testing.assert_close(old(logits, targets), ref)
    with pytest.raises(TypeError, match=r"give `focal_alpha` or its deprecated spelling `alpha`, not both"):
        CombinedLoss(focal_alpha=0.5, alpha=0.3)
    # defaults: the document's 0.7 BCE + 0.3 focal, alpha 0.25, gamma 2, mean reduction
    default = CombinedLoss(pos_weights=pw)(logits, targets)
    ref_default = (
        0.7 * F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pw.double())
        + 0.3 * _focal_reference(logits, targets, 0.25, 2.0).mean()
    )
    torch.testing.assert_close(default, ref_default)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_combined_reductions_against_the_reference(batch, reduction):
    logits, targets = batch
    pw = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    got = CombinedLoss(pw, 0.4, 1.0, 0.5, 0.5, reduction=reduction)(logits, targets)
    per = 0.5 * F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=pw.double(), reduction="none"
    ) + 0.5 * _focal_reference(logits, targets, 0.4, 1.0)
    torch.testing.assert_close(got, per.sum() if reduction == "sum" else per)


def test_losses_backpropagate_and_move_with_the_module(batch):
    logits, targets = batch
    logits = logits.float().requires_grad_()
    loss = CombinedLoss(pos_weights=torch.ones(5))
    assert "bce.pos_weights" in dict(loss.named_buffers())
    loss(logits, targets.float()).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FocalLoss(alpha=1.5), r"`alpha` must be in \[0, 1\]"),
        (lambda: FocalLoss(gamma=-1), "`gamma` must be a finite number >= 0, got -1.0"),
        (lambda: FocalLoss(reduction="avg"), "`reduction` must be one of"),
        (lambda: WeightedBCEWithLogitsLoss(pos_weights=[1.0, -2.0]), "`pos_weights` must be finite and >= 0"),
        (lambda: CombinedLoss(bce_weight=0, focal_weight=0), "must not both be 0"),
        (lambda: CombinedLoss(bce_weight=-1), "`bce_weight`"),
    ],
)
def test_bad_arguments_fail_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match=r"`targets` must be class ids of shape \(4,\) or match `logits` \(4, 3\)"):
        FocalLoss()(torch.zeros(4, 3), torch.zeros(4, 2))


def test_sampled_pos_weights_equal_a_slow_loop_over_the_draws():
    from mixweave import calculate_sampled_pos_weights, get_sample_weights

    rng = np.random.default_rng(0)
    labels = rng.random((300, 4)) < [0.4, 0.1, 0.03, 0.01]
    labels[0] = True
    weights = get_sample_weights(labels)
    expected = []
    for c in range(4):  # the positive rate of class c among draws in proportion to the weights
        rate = sum(w for w, row in zip(weights, labels, strict=True) if row[c]) / sum(weights)
        expected.append((1 - rate) / rate)
    np.testing.assert_allclose(calculate_sampled_pos_weights(labels, weights).numpy(), expected, rtol=1e-6)
    raw = calculate_pos_weights(labels.sum(axis=0), 300)
    assert (calculate_sampled_pos_weights(labels, weights) < raw).all()  # the sampler did most of the balancing
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] are never drawn"):
        calculate_sampled_pos_weights(np.array([[1, 0], [1, 0]]), [1.0, 1.0])
    with pytest.raises(ValueError, match="`sample_weights` has 3 entries but `labels` has 2 rows"):
        calculate_sampled_pos_weights(np.array([[1, 0], [0, 1]]), [1.0, 1.0, 1.0])


# -- reliability (#19): no NaN gradient, no unchecked functional form, no raw torch error ------------------------


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9, 1.0, 2.0])
def test_focal_gradient_is_finite_for_confident_logits(gamma):
    logits = torch.tensor([[20.0, -20.0, 40.0, -60.0, 0.3]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    loss = FocalLoss(gamma=gamma, alpha=None, reduction="sum")(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # the value still equals the definition, computed in float64 where it is representable
    x, y = logits.detach().double(), targets.double()
    p = torch.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert loss.item() == pytest.approx(float((ce * (1 - p_t) ** gamma).sum()), rel=1e-5, abs=1e-30)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda x, y: focal_loss(x, y, reduction="avg"),
            ValueError,
            "`reduction` must be one of 'mean', 'sum', 'none'",
        ),
        (lambda x, y: focal_loss(x, y, alpha=5), ValueError, r"`alpha` must be in \[0, 1\], got 5\.0"),
        (lambda x, y: focal_loss(x, y, gamma=-2), ValueError, r"`gamma` must be a finite number >= 0, got -2\.0"),
        (lambda x, y: combined_loss(x, y, reduction="avg"), ValueError, "`reduction` must be one of"),
        (lambda x, y: combined_loss(x, y, bce_weight=-1), ValueError, r"`bce_weight` must be a finite number >= 0"),
        (lambda x, y: weighted_bce_with_logits(x, y, reduction="avg"), ValueError, "`reduction` must be one of"),
        (lambda x, y: focal_loss(x, y * 2), ValueError, r"`targets` must be labels in \[0, 1\], got 2\.0"),
        (lambda x, y: focal_loss(x, y * float("nan")), ValueError, r"`targets` must be labels in \[0, 1\], got nan"),
        (
            lambda x, y: focal_loss(x, torch.tensor([0, 3])),
            ValueError,
            r"class-id `targets` must be in \[0, 2\], got 3",
        ),
        (
            lambda x, y: focal_loss(x, torch.tensor([-1, 0])),
            ValueError,
            r"class-id `targets` must be in \[0, 2\], got -1",
        ),
        (
            lambda x, y: WeightedBCEWithLogitsLoss(pos_weights=[1.0, 2.0])(x, y),
            ValueError,
            r"`pos_weights` must have one value per class \(3\), got 2",
        ),
        (
            lambda x, y: FocalLoss(pos_weight=[1.0, 2.0, 3.0, 4.0])(x, y),
            ValueError,
            r"`pos_weight` must have one value per class \(3\), got 4",
        ),
        (
            lambda x, y: weighted_bce_with_logits(x, y, pos_weights=torch.tensor([1.0, -2.0, 1.0])),
            ValueError,
            r"`pos_weights` must be finite and >= 0, got -2\.0",
        ),
        (
            lambda x, y: focal_loss(x, y, pos_weight=torch.tensor([1.0, float("nan"), 1.0])),
            ValueError,
            r"`pos_weight` must be finite and >= 0, got nan",
        ),
        (
            lambda x, y: focal_loss(x, y, alpha=torch.tensor([0.25, 0.5])),
            ValueError,
            r"`alpha` must be one number or one per class \(3\), got 2",
        ),
    ],
)
def test_function_forms_check_what_the_classes_check(call, error, match):
    logits, targets = torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    with pytest.raises(error, match=match):
        call(logits, targets)
