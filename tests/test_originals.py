"""The originals' tests and documented calls, ported as their users would write them against mixweave.

Each section re-states, in our own words, what a test or snippet of one original
checks (the originals are listed in ``docs/migrating.md``), and calls mixweave
the way that original is called: same names, same positional order, same
keywords. Where mixweave differs on purpose, the assertion checks mixweave's
behaviour and names the ``docs/migrating.md`` entry that documents it.
Statistical checks use a fixed seed; their tolerance is the original test's band.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm
from torch.utils.data import DataLoader, Dataset

from mixweave import (
    CombinedLoss,
    CurriculumState,
    DynamicCurriculumSampler,
    FocalLoss,
    JointSampler,
    MetricsTracker,
    StratifiedConcatDataset,
    TaskAwareSampler,
    UniformConcatDataset,
    WeightedBCEWithLogitsLoss,
    WeightedConcatDataset,
    calculate_auc_roc,
    calculate_pos_weights,
    compute_metrics,
    get_roc_curves,
)


# -- 000: pytorch_connectomics mixed datasets ----------------------------------------------------------------------
class Dummy(Dataset):
    """Items are ``{"index": i, "value": value}``: which source an item came from is its value."""

    def __init__(self, size: int, value: int) -> None:
        self.size, self.value = size, value

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> dict[str, int]:
        return {"index": idx, "value": self.value}


def values(ds) -> list[int]:
    return [ds[i]["value"] for i in range(len(ds))]


@pytest.mark.parametrize(
    ("weights", "bands"),
    [
        ([0.7, 0.3], [(650, 750), (250, 350)]),
        ([0.5, 0.5], [(450, 550), (450, 550)]),
        ([0.95, 0.05], [(900, 1000), (0, 100)]),
        ([0.5, 0.3, 0.2], [(450, 550), (250, 350), (150, 250)]),
    ],
    ids=["basic", "equal", "extreme", "three"],
)
def test_weighted_counts_fall_in_the_original_bands(weights, bands):
    sources = [Dummy(100 * (k + 1), k + 1) for k in range(len(weights))]
    ds = WeightedConcatDataset(datasets=sources, weights=weights, length=1000)
    assert len(ds) == 1000
    got = np.bincount(values(ds), minlength=len(weights) + 1)[1:]
    for count, (low, high) in zip(got, bands, strict=True):
        assert low < count < high


def test_weighted_default_length_is_the_total_size():
    # migrating.md "000: default length of WeightedConcatDataset": the original uses the smallest source (50)
    d1, d2 = Dummy(50, 1), Dummy(100, 2)
    assert len(WeightedConcatDataset([d1, d2], [0.5, 0.5])) == 150
    assert len(WeightedConcatDataset([d1, d2], [0.5, 0.5], length=min(len(d1), len(d2)))) == 50  # the one-line change


def test_weighted_errors_keep_the_original_words():
    d1, d2 = Dummy(5, 1), Dummy(5, 2)
    with pytest.raises(ValueError, match=r"Weights must sum to 1.0"):
        WeightedConcatDataset([d1, d2], [0.6, 0.5])
    with pytest.raises(ValueError, match=r"Number of datasets.*must match"):
        WeightedConcatDataset([d1, d2], [0.3, 0.3, 0.4])


def test_stratified_round_robin_as_the_original():
    assert values(StratifiedConcatDataset([Dummy(5, 1), Dummy(5, 2)])) == [1, 2] * 5
    assert values(StratifiedConcatDataset([Dummy(3, 1), Dummy(5, 2)], length=10)) == [1, 2] * 5
    assert len(StratifiedConcatDataset([Dummy(50, 1), Dummy(30, 2)])) == 80
    assert values(StratifiedConcatDataset([Dummy(3, 1), Dummy(3, 2), Dummy(3, 3)])) == [1, 2, 3] * 3
    with pytest.raises(ValueError, match="Must provide at least one dataset"):
        StratifiedConcatDataset([])


def test_stratified_document_order_and_equal_contribution():
    # the document: d1[0], d2[0], d3[0], d1[1], ...; each source contributes equally despite its size
    sources = [Dummy(500, 1), Dummy(200, 2), Dummy(100, 3)]
    in_order = StratifiedConcatDataset(sources, shuffle=False)
    assert [(in_order[i]["value"], in_order[i]["index"]) for i in range(4)] == [(1, 0), (2, 0), (3, 0), (1, 1)]
    # the original's counts over its default length (the sum of sizes): 267 / 267 / 266
    assert np.bincount(values(in_order))[1:].tolist() == [267, 267, 266]
    # migrating.md "000: StratifiedConcatDataset order": by default each pass through a source is shuffled
    shuffled = StratifiedConcatDataset(sources)
    assert np.bincount(values(shuffled))[1:].tolist() == [267, 267, 266]


def test_uniform_follows_sizes_within_the_original_bands():
    got = np.bincount(values(UniformConcatDataset([Dummy(100, 1), Dummy(100, 2)], length=1000)))[1:]
    assert all(450 < c < 550 for c in got)
    got = np.bincount(values(UniformConcatDataset([Dummy(100, 1), Dummy(300, 2)], length=1000)))[1:]
    assert 200 < got[0] < 300 and 700 < got[1] < 800
    assert len(UniformConcatDataset([Dummy(50, 1), Dummy(30, 2)])) == 80
    with pytest.raises(ValueError, match="Must provide at least one dataset"):
        UniformConcatDataset([])


def test_all_strategies_take_a_positional_length_and_feed_a_dataloader():
    d1, d2 = Dummy(100, 1), Dummy(100, 2)
    for ds in (
        WeightedConcatDataset([d1, d2], [0.5, 0.5], 100),
        StratifiedConcatDataset([d1, d2], 100),
        UniformConcatDataset([d1, d2], 100),
    ):
        assert len(ds) == 100
    batches = list(DataLoader(WeightedConcatDataset([d1, d2], [0.5, 0.5], length=100), batch_size=10))
    assert len(batches) == 10 and batches[0]["value"].shape == (10,)


# -- 001: X-Lite losses and metrics --------------------------------------------------------------------------------
DISEASES = ["Atelectasis", "Cardiomegaly", "Effusion", "Hernia"]


def _chest(n=400, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, 4)) < [0.2, 0.05, 0.3, 0.02]).astype(np.float32)
    logits = rng.normal(size=(n, 4)).astype(np.float32) + 2.0 * targets
    return torch.from_numpy(logits), torch.from_numpy(targets)


def test_documented_loss_calls():
    logits, targets = _chest()
    label_counts = targets.sum(0)
    pos_weights = calculate_pos_weights(label_counts, total_samples=targets.shape[0])
    # rarer diseases get larger weights (the document's "inverse frequency weighting")
    assert torch.all(pos_weights[torch.argsort(label_counts)].diff() < 0)
    criterion = WeightedBCEWithLogitsLoss(pos_weights=pos_weights)
    torch.testing.assert_close(
        criterion(logits, targets), F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weights)
    )
    focal = FocalLoss(alpha=0.25, gamma=2.0)(logits, targets)
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = 0.25 * targets + 0.75 * (1 - targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(focal, (alpha_t * (1 - p_t) ** 2 * bce).mean())
    # the original's keywords and positional order
    by_keyword = CombinedLoss(
        pos_weights=pos_weights, focal_alpha=0.25, focal_gamma=2.0, bce_weight=0.5, focal_weight=0.5
    )
    by_position = CombinedLoss(pos_weights, 0.25, 2.0, 0.5, 0.5)
    expected = 0.5 * criterion(logits, targets) + 0.5 * focal
    torch.testing.assert_close(by_keyword(logits, targets), expected)
    torch.testing.assert_close(by_position(logits, targets), expected)
    # migrating.md "001: CombinedLoss defaults": 0.7 BCE + 0.3 focal, as the document states
    torch.testing.assert_close(
        CombinedLoss(pos_weights)(logits, targets), 0.7 * criterion(logits, targets) + 0.3 * focal
    )


def test_documented_metrics_calls():
    logits, targets = _chest()
    predictions = torch.sigmoid(logits)
    with pytest.warns(DeprecationWarning, match="disease_labels"):
        metrics = compute_metrics(predictions, targets, disease_labels=DISEASES)
    for j, name in enumerate(DISEASES):
        expected = skm.roc_auc_score(targets[:, j].numpy(), predictions[:, j].numpy())
        assert metrics["auc_per_class"][name] == pytest.approx(expected)
    assert metrics["f1_macro"] == pytest.approx(
        skm.f1_score(targets.numpy(), (predictions >= 0.5).numpy(), average="macro", zero_division=0)
    )
    with pytest.warns(DeprecationWarning, match="disease_labels"):
        tracker = MetricsTracker(num_classes=4, disease_labels=DISEASES)
    for start in range(0, 400, 64):
        tracker.update(predictions[start : start + 64], targets[start : start + 64])
    epoch_metrics = tracker.compute()
    assert epoch_metrics == compute_metrics(predictions, targets, labels=DISEASES)
    with pytest.warns(DeprecationWarning, match="disease_labels"):
        auc = calculate_auc_roc(predictions.numpy(), targets.numpy(), disease_labels=DISEASES)
    assert auc["Macro_AUC"] == pytest.approx(np.mean([auc[d] for d in DISEASES]))
    assert tracker.get_auc_scores() == auc
    with pytest.warns(DeprecationWarning, match="disease_labels"):
        curves = get_roc_curves(predictions.numpy(), targets.numpy(), disease_labels=DISEASES)
    # migrating.md "001: get_roc_curves": a dict per class instead of the original's (fpr, tpr, auc) tuple
    fpr, tpr = curves["Effusion"]["fpr"], curves["Effusion"]["tpr"]
    assert skm.auc(fpr, tpr) == pytest.approx(auc["Effusion"])


# -- 002: OpenADMET curriculum, task-aware and joint samplers ------------------------------------------------------
def test_curriculum_state_defaults_and_empty_qualities():
    state = CurriculumState()
    assert state.patience == 3 and state.qualities == ("high", "medium", "low") and state.phase == "warmup"
    assert math.isinf(state.best)
    with pytest.raises(ValueError, match="non-empty"):
        CurriculumState(qualities=[])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_every_phase_is_a_distribution(n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # more than three qualities: equal weights, warned
        state = CurriculumState(qualities=[f"q{i}" for i in range(n)], min_epochs_per_phase=0)
    for phase in state.phase_names:
        state.set_phase(phase)
        probs = np.array(list(state.sampling_probs().values()))
        assert probs.sum() == pytest.approx(1.0) and (probs >= 0).all()


def test_no_phase_change_while_the_loss_improves():
    state = CurriculumState(patience=1)
    for loss in np.linspace(1.0, 0.1, 20):
        state.update(float(loss))
    assert state.phase == "warmup"


T_SIZES = np.array([600, 200, 50])


def _targets():
    rows = np.repeat(np.arange(3), T_SIZES)
    y = np.full((rows.size, 3), np.nan)
    y[np.arange(rows.size), rows] = 1.0
    return y, rows


def test_task_aware_sampler_as_the_original_tests_it():
    y, rows = _targets()
    s = TaskAwareSampler(y, alpha=0.5, seed=42)
    drawn = np.array(list(s))
    assert len(s) == y.shape[0] and drawn.min() >= 0 and drawn.max() < y.shape[0]
    assert np.array_equal(drawn, np.array(list(TaskAwareSampler(y, alpha=0.5, seed=42))))
    assert not np.array_equal(drawn, np.array(list(TaskAwareSampler(y, alpha=0.5, seed=7))))
    many = TaskAwareSampler(y, alpha=0.0, num_samples=30_000, seed=42)
    shares = np.bincount(rows[many.plan()], minlength=3) / 30_000
    assert np.abs(shares - 1 / 3).max() < 0.02  # the original's 2% band
    rare = TaskAwareSampler(y, alpha=1.0, num_samples=30_000, seed=42)
    shares = np.bincount(rows[rare.plan()], minlength=3) / 30_000
    assert shares[2] > shares[1] > shares[0]


def test_joint_sampler_minimal_calls_and_oversampling():
    y, rows = _targets()
    s = JointSampler(targets=y, task_alpha=0.5, seed=42)
    assert len(s) == y.shape[0]
    small = JointSampler(targets=y, num_samples=100, seed=42)
    assert len(list(small)) == 100
    heavy = JointSampler(targets=y, task_alpha=1.0, num_samples=30_000, seed=42)
    share = np.mean(rows[heavy.plan()] == 2)
    assert share > 2 * T_SIZES[2] / T_SIZES.sum()  # the rare task is oversampled more than 2x
    with pytest.warns(UserWarning, match=r"outside \[0, 1\]"):
        JointSampler(targets=y, task_alpha=1.5)


def test_dynamic_curriculum_sampler_follows_the_phase():
    rng = np.random.default_rng(0)
    labels = rng.choice(["high", "medium", "low"], 3000, p=[0.3, 0.4, 0.3])
    state = CurriculumState()
    s = DynamicCurriculumSampler(labels, state, num_samples=20_000, seed=1)
    assert np.mean(labels[s.plan()] == "high") > 0.85
    state.set_phase("expand")
    assert np.mean(labels[s.plan()] == "high") < 0.75
    first = s.plan(0)
    assert not np.array_equal(first, s.plan(1))  # a new draw per epoch (seed incremented)
    fixed = DynamicCurriculumSampler(labels, state, num_samples=500, seed=1, increment_seed_per_epoch=False)
    assert np.array_equal(fixed.plan(0), fixed.plan(1))
    with pytest.raises(ValueError, match="cannot be empty"):
        DynamicCurriculumSampler([], state)
