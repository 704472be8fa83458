"""Losses for imbalanced multi-label (and multi-class) training, and the class weights they take.

The modules follow ``torch.nn`` conventions: they take raw logits of shape
``(N, C)``, targets of the same shape (multi-hot, floats in ``[0, 1]``) or, for
convenience, a 1-D tensor of integer class ids that is one-hot encoded, and a
``reduction`` of ``"mean"``, ``"sum"`` or ``"none"``. Each has a functional
form of the same name in snake case.

Example:
    >>> import torch
    >>> counts = torch.tensor([900, 90, 10])
    >>> calculate_pos_weights(counts, total_samples=1000)
    tensor([ 0.1111, 10.1111, 99.0000])
    >>> loss = CombinedLoss(pos_weights=calculate_pos_weights(counts, 1000))
    >>> logits, targets = torch.zeros(4, 3), torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    >>> bool(loss(logits, targets) > 0)
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import as_numpy, check_choice, check_real, check_weights, show, warn_renamed
from ..core.names import LOSS_REDUCTIONS
from ..core.weights import as_multihot

__all__ = [
    "CombinedLoss",
    "FocalLoss",
    "WeightedBCEWithLogitsLoss",
    "calculate_effective_num_samples",
    "calculate_pos_weights",
    "calculate_sampled_pos_weights",
    "combined_loss",
    "focal_loss",
    "get_class_balanced_weights",
    "weighted_bce_with_logits",
]

REDUCTIONS = LOSS_REDUCTIONS


def _counts(counts: Any, name: str) -> torch.Tensor:
    """Class counts as a 1-D float64 tensor of finite, non-negative numbers."""
    values = torch.as_tensor(np.asarray(as_numpy(counts)))
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence of counts, got shape {tuple(values.shape)}")
    if not (values.dtype.is_floating_point or values.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"`{name}` must hold numbers, got dtype {values.dtype}")
    values = values.to(torch.float64)
    if not torch.isfinite(values).all() or (values < 0).any():
        bad = int(torch.nonzero(~torch.isfinite(values) | (values < 0))[0])
        raise ValueError(f"`{name}` must be finite and >= 0, got {values[bad].item()} at class {bad}")
    return values


def _require_positive(counts: torch.Tensor, name: str, what: str) -> None:
    zero = torch.nonzero(counts == 0).flatten().tolist()
    if zero:
        raise ValueError(
            f"`{name}` has zero count for class(es) {zero}: {what} is undefined (infinite) for a class with no "
            "positive sample; drop those classes or give them an explicit weight"
        )


def calculate_pos_weights(label_counts: Any, total_samples: int) -> torch.Tensor:
    """``pos_weight`` for :class:`torch.nn.BCEWithLogitsLoss`: ``(total - count) / count`` per class.

    Args:
        label_counts: number of positive samples per class, shape ``(C,)``.
        total_samples: number of samples the counts were taken over.

    Returns:
        float32 tensor of shape ``(C,)``.

    Raises:
        ValueError: for a zero count (the weight would be infinite) or a count above ``total_samples``.
    """
    counts = _counts(label_counts, "label_counts")
    total = check_real(total_samples, "total_samples", low=0.0, low_open=True)
    _require_positive(counts, "label_counts", "the positive weight")
    over = torch.nonzero(counts > total).flatten().tolist()
    if over:
        raise ValueError(f"`label_counts` exceeds total_samples={total_samples} for class(es) {over}")
    return ((total - counts) / counts).to(torch.float32)


def calculate_sampled_pos_weights(labels: Any, sample_weights: Any) -> torch.Tensor:
    """``pos_weight`` of the label distribution a weighted sampler draws, not of the raw counts.

    NOTE [ Rarity counted twice ]: a class-balanced sampler already shows the
    model rare classes far more often. ``pos_weight`` from the raw counts
    (:func:`calculate_pos_weights`) then weighs those same rare positives up
    again (ChestX-ray14's Hernia: drawn about 30x more often *and* weighted
    about 419x). Use this instead, with the weights the sampler draws from:
    the positive rate of class ``c`` among the draws is
    ``p_c = sum_i w_i y_ic / sum_i w_i``, and ``pos_weight_c = (1 - p_c) / p_c``.

    Args:
        labels: ``(N, C)`` multi-hot matrix (or ``(N,)`` class ids).
        sample_weights: ``(N,)`` the sampler's weights (e.g. ``sampler.weights`` or
            :func:`~mixweave.get_sample_weights`).

    Returns:
        float32 tensor of shape ``(C,)``.

    Raises:
        ValueError: if a class is never drawn (its weight would be infinite) or the shapes disagree.

    Example:
        >>> import numpy as np
        >>> y = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
        >>> calculate_sampled_pos_weights(y, np.ones(4)).tolist()   # raw rates 1/4, 3/4
        [3.0, 0.3333333432674408]
        >>> calculate_sampled_pos_weights(y, [3, 1, 1, 1]).tolist()  # balanced draws: 1/2 each
        [1.0, 1.0]
    """
    hot = as_multihot(labels).astype(np.float64)
    w = check_weights(sample_weights, "sample_weights")
    if w.shape[0] != hot.shape[0]:
        raise ValueError(f"`sample_weights` has {w.shape[0]} entries but `labels` has {hot.shape[0]} rows")
    rate = (w @ hot) / w.sum()
    never = np.flatnonzero(rate <= 0).tolist()
    if never:
        raise ValueError(f"class(es) {never} are never drawn under these `sample_weights`: no positive weight exists")
    return torch.from_numpy((1.0 - rate) / rate).to(torch.float32)


def _check_beta(beta: Any) -> float:
    return check_real(beta, "beta", low=0.0, high=1.0, high_open=True)


def calculate_effective_num_samples(label_counts: Any, beta: float = 0.9999) -> torch.Tensor:
    """Effective number of samples ``(1 - beta**n) / (1 - beta)`` per class (Cui et al., 2019).

    It grows like ``n`` for small counts and saturates at ``1 / (1 - beta)``.
    A zero count has effective number 0.

    Returns:
        float64 tensor of shape ``(C,)``.
    """
    n = _counts(label_counts, "label_counts")
    b = _check_beta(beta)
    if b == 0.0:
        return (n > 0).to(torch.float64)
    return -torch.expm1(n * np.log(b)) / (1.0 - b)


def get_class_balanced_weights(label_counts: Any, beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights ``∝ 1 / effective number``, scaled to sum to the number of classes.

    ``beta = 0`` gives equal weights; ``beta → 1`` approaches inverse frequency.
    Use them as ``weight=`` of :class:`torch.nn.CrossEntropyLoss`, ``pos_weights``
    of :class:`WeightedBCEWithLogitsLoss` or ``alpha`` of :class:`FocalLoss`.

    Raises:
        ValueError: for a zero count, naming the classes.

    Example:
        >>> get_class_balanced_weights([100, 10], beta=0.0)
        tensor([1., 1.])
    """
    counts_t = _counts(label_counts, "label_counts")
    _require_positive(counts_t, "label_counts", "the class-balanced weight")
    inverse = 1.0 / calculate_effective_num_samples(counts_t, beta)
    return (inverse * (counts_t.numel() / inverse.sum())).to(torch.float32)


def _targets_like(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets as ``logits``-shaped floats in [0, 1]: class ids are one-hot encoded; anything else is an error."""
    if logits.ndim != 2:
        raise ValueError(f"`logits` must have shape (N, C), got {tuple(logits.shape)}")
    num_classes = logits.shape[1]
    if targets.ndim == 1 and not targets.dtype.is_floating_point:
        if targets.numel() != logits.shape[0]:
            raise ValueError(f"class-id `targets` must have {logits.shape[0]} entries, got {targets.numel()}")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            bad = int(targets.min()) if int(targets.min()) < 0 else int(targets.max())
            raise ValueError(f"class-id `targets` must be in [0, {num_classes - 1}], got {bad}")
        return F.one_hot(targets.long(), num_classes).to(logits.dtype)
    if targets.shape != logits.shape:
        raise ValueError(
            f"`targets` must be class ids of shape ({logits.shape[0]},) or match `logits` {tuple(logits.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    y = targets.to(logits.dtype)
    outside = ~torch.isfinite(y) | (y < 0) | (y > 1)
    if outside.any():
        raise ValueError(f"`targets` must be labels in [0, 1], got {y[outside][0].item()}")
    return y


def _check_pos_weight(pos_weight: torch.Tensor | None, logits: torch.Tensor, name: str) -> torch.Tensor | None:
    """``pos_weight`` on the logits' device and dtype; one value or one per class (checked when C is known)."""
    if pos_weight is None:
        return None
    checked = _per_class(pos_weight, name)  # finite and >= 0, as the classes check at construction
    assert checked is not None
    pw = checked.to(device=logits.device, dtype=logits.dtype)
    if pw.numel() not in (1, logits.shape[1]):
        raise ValueError(f"`{name}` must have one value per class ({logits.shape[1]}), got {pw.numel()}")
    return pw


def _check_call(reduction: str, alpha: Any, gamma: Any) -> None:
    """The checks the loss classes make at construction, for the functional forms at each call."""
    check_choice(reduction, "reduction", REDUCTIONS)
    _per_class(alpha, "alpha", upper=1.0)
    _check_gamma(gamma)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _per_class(value: Any, name: str, *, upper: float | None = None) -> torch.Tensor | None:
    """A per-class tensor argument as float32 (or None), checked to be finite and >= 0 (and <= upper)."""
    if value is None:
        return None
    raw = as_numpy(value)
    if isinstance(raw, (str, bytes, bool, np.bool_)):
        raise TypeError(f"`{name}` must be a number or a 1-D per-class tensor, got {type(raw).__name__} {show(raw)}")
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a number or a 1-D per-class tensor of numbers, got {show(raw)}") from exc
    if np.asarray(raw).dtype.kind not in ("i", "u", "f"):
        raise TypeError(f"`{name}` must hold numbers, got dtype {np.asarray(raw).dtype}")
    if arr.size == 0:
        raise ValueError(f"`{name}` must be a number or a non-empty 1-D per-class tensor, got an empty one")
    t = torch.as_tensor(arr)
    t = t.to(torch.float32)
    if t.ndim > 1:
        raise ValueError(f"`{name}` must be a number or a 1-D per-class tensor, got shape {tuple(t.shape)}")
    bad = ~torch.isfinite(t) | (t < 0)
    if upper is not None:
        bad |= t > upper
    if bad.any():
        allowed = f"in [0, {upper:g}]" if upper is not None else "finite and >= 0"
        raise ValueError(f"`{name}` must be {allowed}, got {t.flatten()[bad.flatten()][0].item()}")
    return t


def weighted_bce_with_logits(
    logits: torch.Tensor, targets: torch.Tensor, pos_weights: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Binary cross-entropy on logits with a per-class weight on the positive term.

    Equal to ``F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weights)``,
    with class-id targets accepted.
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    y = _targets_like(logits, targets)
    pw = _check_pos_weight(pos_weights, logits, "pos_weights")
    return F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction=reduction)


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | torch.Tensor | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid focal loss of Lin et al. (2017): ``-alpha_t (1 - p_t)**gamma log(p_t)`` per element.

    ``alpha`` weighs positives (``1 - alpha`` weighs negatives); it may be one
    number, a per-class tensor of shape ``(C,)``, or ``None`` for no weighting.
    ``pos_weight`` further multiplies the positive term, as in
    :class:`torch.nn.BCEWithLogitsLoss`.

    The modulating factor ``(1 - p_t)**gamma`` is computed as
    ``exp(gamma * log(1 - p_t))`` with ``log(1 - p_t)`` from log-sigmoids, so its
    gradient stays finite for confident logits also when ``0 < gamma < 1``
    (where the power's own derivative is infinite at ``p_t = 1``).
    """
    _check_call(reduction, alpha, gamma)
    y = _targets_like(logits, targets)
    pw = _check_pos_weight(pos_weight, logits, "pos_weight")
    ce = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
    # log(1 - p_t) with 1 - p_t = y * sigmoid(-x) + (1 - y) * sigmoid(x); the log of a 0 target
    # weight is -inf, which logaddexp handles (it has no gradient: targets are constants)
    log_y, log_not_y = torch.log(y), torch.log1p(-y)
    log_miss = torch.logaddexp(log_y + F.logsigmoid(-logits), log_not_y + F.logsigmoid(logits))
    loss = ce * torch.exp(gamma * log_miss)
    if alpha is not None:
        a = torch.as_tensor(alpha, device=logits.device, dtype=logits.dtype)
        if a.numel() not in (1, logits.shape[1]):
            raise ValueError(f"`alpha` must be one number or one per class ({logits.shape[1]}), got {a.numel()}")
        loss = loss * (a * y + (1 - a) * (1 - y))
    return _reduce(loss, reduction)


def combined_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pos_weights: torch.Tensor | None = None,
    bce_weight: float = 0.7,
    focal_weight: float = 0.3,
    alpha: float | torch.Tensor | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """``bce_weight * weighted BCE + focal_weight * focal loss`` (the focal term takes no ``pos_weight``)."""
    for name, value in (("bce_weight", bce_weight), ("focal_weight", focal_weight)):
        check_real(value, name, low=0.0)
    bce = weighted_bce_with_logits(logits, targets, pos_weights, reduction)
    focal = focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    return bce_weight * bce + focal_weight * focal


_UNSET: Any = object()


class _Default(float):
    """A default value that can be told apart from the same number passed explicitly (``is``, not ``==``)."""


_FOCAL_ALPHA = _Default(0.25)
_FOCAL_GAMMA = _Default(2.0)


def _renamed(old: Any, old_name: str, new: Any, new_name: str, default: Any) -> Any:
    """``new``, or ``old`` given under its deprecated name (with a ``DeprecationWarning``); both is an error."""
    if old is _UNSET:
        return float(new) if new is default else new
    if new is not default:
        raise TypeError(
            f"give `{new_name}` or its deprecated spelling `{old_name}`, not both; got {new_name}={show(new)} "
            f"and {old_name}={show(old)}"
        )
    warn_renamed(old_name, new_name, stacklevel=3)
    return old


def _check_gamma(gamma: Any) -> float:
    return check_real(gamma, "gamma", low=0.0)


class WeightedBCEWithLogitsLoss(nn.Module):
    """:class:`torch.nn.BCEWithLogitsLoss` with per-class positive weights, e.g. from :func:`calculate_pos_weights`.

    Args:
        pos_weights: ``(C,)`` weights of the positive term; ``None`` for plain BCE.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    pos_weights: torch.Tensor | None

    def __init__(self, pos_weights: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.register_buffer("pos_weights", _per_class(pos_weights, "pos_weights"))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return weighted_bce_with_logits(logits, targets, self.pos_weights, self.reduction)


class FocalLoss(nn.Module):
    """Sigmoid focal loss (Lin et al., 2017) with per-class ``alpha`` and optional ``pos_weight``.

    Args:
        alpha: weight of positives in ``[0, 1]``: a number, a ``(C,)`` tensor, or ``None`` for none.
        gamma: focusing parameter ``>= 0``; 0 gives (alpha-weighted) BCE.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        pos_weight: optional ``(C,)`` multiplier of the positive term.
    """

    alpha: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(self, alpha: Any = 0.25, gamma: float = 2.0, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__()
        self.gamma = _check_gamma(gamma)
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.register_buffer("alpha", _per_class(alpha, "alpha", upper=1.0))
        self.register_buffer("pos_weight", _per_class(pos_weight, "pos_weight"))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.alpha, self.gamma, self.reduction, self.pos_weight)


class CombinedLoss(nn.Module):
    """Weighted sum of :class:`WeightedBCEWithLogitsLoss` and :class:`FocalLoss`.

    The positional order is the original X-Lite class's, so an original
    positional call binds to the same parameters; the defaults (0.7 BCE,
    0.3 focal) are the ones its document states.

    Args:
        pos_weights: ``(C,)`` positive weights of the BCE term.
        focal_alpha, focal_gamma: ``alpha`` and ``gamma`` of the focal term.
        bce_weight, focal_weight: non-negative mixing weights, not both zero.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (keyword only).
        alpha, gamma: deprecated spellings of ``focal_alpha``/``focal_gamma`` (mixweave 0.x).
    """

    def __init__(
        self,
        pos_weights: Any = None,
        focal_alpha: Any = _FOCAL_ALPHA,
        focal_gamma: float = _FOCAL_GAMMA,
        bce_weight: float = 0.7,
        focal_weight: float = 0.3,
        *,
        reduction: str = "mean",
        alpha: Any = _UNSET,
        gamma: Any = _UNSET,
    ) -> None:
        super().__init__()
        focal_alpha = _renamed(alpha, "alpha", focal_alpha, "focal_alpha", _FOCAL_ALPHA)
        focal_gamma = _renamed(gamma, "gamma", focal_gamma, "focal_gamma", _FOCAL_GAMMA)
        # checked here under the names the caller wrote (FocalLoss checks them again as alpha/gamma)
        _per_class(focal_alpha, "focal_alpha" if alpha is _UNSET else "alpha", upper=1.0)
        check_real(focal_gamma, "focal_gamma" if gamma is _UNSET else "gamma", low=0.0)
        for name, value in (("bce_weight", bce_weight), ("focal_weight", focal_weight)):
            check_real(value, name, low=0.0)
        if bce_weight == 0 and focal_weight == 0:
            raise ValueError("`bce_weight` and `focal_weight` must not both be 0")
        self.bce_weight = float(bce_weight)
        self.focal_weight = float(focal_weight)
        self.bce = WeightedBCEWithLogitsLoss(pos_weights, reduction)
        self.focal = FocalLoss(focal_alpha, focal_gamma, reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.bce_weight * self.bce(logits, targets) + self.focal_weight * self.focal(logits, targets)
