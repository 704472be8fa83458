import itertools
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mixweave.train.metrics import (
    MetricsTracker,
    calculate_auc_roc,
    compute_metrics,
    get_roc_curves,
    label_ranking_average_precision,
    plot_roc_curves,
)


def _data(n=500, c=6, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.05, 0.5, c)).astype(np.int64)
    p = np.clip(0.35 * y + rng.random((n, c)) * 0.65, 0, 1)
    if ties:
        p = np.round(p, 1)
    return p, y


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_compute_metrics_equals_sklearn(threshold):
    p, y = _data()
    m = compute_metrics(p, y, threshold=threshold)
    yhat = (p >= threshold).astype(int)
    assert m["auc_macro"] == pytest.approx(skm.roc_auc_score(y, p, average="macro"))
    assert m["auc_micro"] == pytest.approx(skm.roc_auc_score(y, p, average="micro"))
    assert list(m["auc_per_class"].values()) == pytest.approx(list(skm.roc_auc_score(y, p, average=None)))
    for name, fn in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)):
        for avg in ("macro", "micro"):
            assert m[f"{name}_{avg}"] == pytest.approx(fn(y, yhat, average=avg, zero_division=0)), (name, avg)
        assert list(m[f"{name}_per_class"].values()) == pytest.approx(list(fn(y, yhat, average=None, zero_division=0)))
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, yhat))
    assert m["label_ranking_ap"] == pytest.approx(skm.label_ranking_average_precision_score(y, p))
    assert m["coverage_error"] == pytest.approx(skm.coverage_error(y, p))
    assert list(m["support_per_class"].values()) == y.sum(axis=0).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_label_ranking_ap_equals_sklearn_with_ties_and_trivial_rows(seed):
    p, y = _data(n=300, c=5, seed=seed, ties=True)
    y[:10] = 0  # rows with no positive label
    y[10:20] = 1  # rows with every label positive
    got = label_ranking_average_precision(y, p, chunk_size=64)  # several chunks
    assert got == pytest.approx(skm.label_ranking_average_precision_score(y, p), rel=1e-12)


def test_class_without_positives_is_nan_warned_and_left_out_of_macro():
    p, y = _data()
    y[:, 2] = 0
    with pytest.warns(UserWarning, match=r"undefined for class\(es\) \['Hernia'\]"):
        m = compute_metrics(p, y, labels=["a", "b", "Hernia", "d", "e", "f"])
    assert np.isnan(m["auc_per_class"]["Hernia"])
    rest = [0, 1, 3, 4, 5]
    assert m["auc_macro"] == pytest.approx(skm.roc_auc_score(y[:, rest], p[:, rest], average="macro"))
    yhat = (p >= 0.5).astype(int)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y[:, rest], yhat[:, rest], average="macro", zero_division=0))


def test_tensors_and_logits_are_accepted():
    p, y = _data()
    logits = np.log(p.clip(1e-6, 1 - 1e-6) / (1 - p.clip(1e-6, 1 - 1e-6)))
    a = compute_metrics(p, y)
    b = compute_metrics(torch.tensor(logits), torch.tensor(y), from_logits=True)
    assert b["auc_macro"] == pytest.approx(a["auc_macro"])
    assert b["f1_micro"] == pytest.approx(a["f1_micro"])


def test_bad_input_is_clear():
    p, y = _data()
    with pytest.raises(ValueError, match="from_logits=True"):
        compute_metrics(p * 4 - 2, y)
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        compute_metrics(p, y[:, :3])
    with pytest.raises(ValueError, match="multi-hot"):
        compute_metrics(p, y * 2)
    with pytest.raises(ValueError, match=r"`threshold` must be a finite number in \(0, 1\), got 1\.0"):
        compute_metrics(p, y, threshold=1.0)
    with pytest.raises(TypeError, match=r"`threshold` must be a real number, got str '0\.5'"):
        compute_metrics(p, y, threshold="0.5")
    with pytest.raises(ValueError, match="`labels` must name 6 classes"):
        compute_metrics(p, y, labels=["a"])


def test_tracker_equals_one_shot_over_uneven_batches():
    p, y = _data(n=1000)
    tracker = MetricsTracker(num_classes=6, labels=list("abcdef"), threshold=0.4)
    cuts = [0, 7, 300, 301, 999, 1000]
    for a, b in itertools.pairwise(cuts):
        tracker.update(torch.tensor(p[a:b]), torch.tensor(y[a:b]))
    assert tracker.num_samples == 1000
    got, expected = tracker.compute(), compute_metrics(p, y, labels=list("abcdef"), threshold=0.4)
    assert got == expected
    tracker.reset()
    with pytest.raises(RuntimeError, match=r"MetricsTracker has no batches: call update\(\) before compute\(\)"):
        tracker.compute()
    with pytest.raises(ValueError, match=r"shape \(B, 6\)"):
        tracker.update(p[:, :2], y[:, :2])


def test_roc_curves_match_sklearn_and_plot(tmp_path):
    p, y = _data()
    y[:, 0] = 1
    with pytest.warns(UserWarning, match=r"\['0'\]"):
        curves = get_roc_curves(p, y)
    assert list(curves) == ["1", "2", "3", "4", "5"]
    fpr, tpr, thr = skm.roc_curve(y[:, 3], p[:, 3])
    np.testing.assert_array_equal(curves["3"]["fpr"], fpr)
    np.testing.assert_array_equal(curves["3"]["tpr"], tpr)
    np.testing.assert_array_equal(curves["3"]["thresholds"], thr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc = calculate_auc_roc(p, y)
    assert np.isnan(auc["0"]) and auc["3"] == pytest.approx(skm.auc(fpr, tpr))
    out = tmp_path / "plots" / "roc.png"
    fig = plot_roc_curves(curves, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob("*.tmp"))
    assert len(fig.axes[0].lines) == len(curves) + 1  # one per class and the diagonal
    unsaved = plot_roc_curves(curves)  # no path: nothing written, the figure returned
    assert type(unsaved).__name__ == "Figure" and sorted(p.name for p in out.parent.iterdir()) == ["roc.png"]


def test_memory_grows_with_n_times_c_not_c_squared():
    """N=4,000 x C=800 (12 MiB of float32 scores) peaked at 5.2 GiB when ranking built (N, C, C) arrays."""
    import tracemalloc

    rng = np.random.default_rng(0)
    p = rng.random((4000, 800)).astype(np.float32)
    y = (rng.random((4000, 800)) < 0.05).astype(np.int8)
    y[0] = 1  # no class without positives or negatives: no warnings
    y[1] = 0
    tracemalloc.start()
    try:
        m = compute_metrics(p, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # numpy reports its buffers to tracemalloc
    assert m["label_ranking_ap"] == pytest.approx(skm.label_ranking_average_precision_score(y, p), rel=1e-9)


def test_tracker_rejects_targets_that_are_not_multi_hot():
    tracker = MetricsTracker(2)
    for bad in (0.7, float("nan"), 256):
        with pytest.raises(ValueError, match=r"`targets` must be multi-hot \(0 or 1\)"):
            tracker.update(np.full((3, 2), 0.5), np.full((3, 2), bad))
    assert tracker.num_samples == 0  # nothing was added


def test_ranking_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"must both have shape \(N, C\), N > 0, got \(3, 2\) and \(3, 4\)"):
        label_ranking_average_precision(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="`scores` must be finite"):
        label_ranking_average_precision(np.ones((2, 2)), np.array([[0.1, np.nan], [0.2, 0.3]]))


def test_min_rank_equals_scipy_rankdata_min():
    from scipy.stats import rankdata

    from mixweave.train.metrics import _min_rank

    rng = np.random.default_rng(3)
    a = np.round(rng.random((200, 17)), 1)  # many ties
    a[rng.random(a.shape) < 0.2] = -np.inf
    np.testing.assert_array_equal(_min_rank(a), rankdata(a, method="min", axis=1))


def test_original_x_lite_calls_work():
    # as the original's users call it: positional threshold, `disease_labels=`, `Macro_AUC`
    p, y = _data(n=400, c=4, seed=3)
    y[:, 2] = 0  # a class without positives: left out of Macro_AUC, as the original skips it
    names = ["Atelectasis", "Cardiomegaly", "Hernia", "Mass"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.warns(DeprecationWarning, match=r"`disease_labels=` is deprecated; write `labels=`"):
            old = compute_metrics(torch.tensor(p), torch.tensor(y), 0.4, disease_labels=names)
        new = compute_metrics(p, y, threshold=0.4, labels=names)
        np.testing.assert_equal(old, new)  # dicts, NaN equal to NaN
        with pytest.warns(DeprecationWarning):
            auc = calculate_auc_roc(p, y, disease_labels=names)
    expected = {n: skm.roc_auc_score(y[:, j], p[:, j]) for j, n in enumerate(names) if n != "Hernia"}
    assert list(auc) == [*names, "Macro_AUC"]
    assert all(auc[n] == pytest.approx(v) for n, v in expected.items()) and np.isnan(auc["Hernia"])
    assert auc["Macro_AUC"] == pytest.approx(np.mean(list(expected.values())))
    with pytest.raises(TypeError, match=r"give `labels` or its original spelling `disease_labels`, not both"):
        compute_metrics(p, y, labels=names, disease_labels=names)
    with pytest.raises(TypeError, match=r"`threshold` \(the third positional argument.*pass class names as `labels=`"):
        compute_metrics(p, y, names)  # mixweave 0.x's positional labels: a clear error, not a misbinding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Hernia has no positive: NaN, warned (tested above)
        with pytest.warns(DeprecationWarning, match="disease_labels"):
            positional = compute_metrics(p, y, 0.4, names)  # the original's fourth positional argument
    np.testing.assert_equal(positional, new)
    with pytest.raises(ValueError, match=r"`labels` must not contain 'Macro_AUC'"):
        calculate_auc_roc(p, y, ["a", "b", "Macro_AUC", "d"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        none_defined = calculate_auc_roc(p, np.zeros_like(y))
    assert np.isnan(none_defined["Macro_AUC"])


def test_tracker_takes_the_original_arguments():
    p, y = _data(n=300, c=3, seed=5)
    names = ["a", "b", "c"]
    with pytest.warns(DeprecationWarning, match="disease_labels"):
        tracker = MetricsTracker(num_classes=3, disease_labels=names)
    tracker.update(torch.tensor(p), torch.tensor(y))
    assert tracker.labels == names
    assert tracker.compute(0.3) == compute_metrics(p, y, 0.3, labels=names)  # the original's compute(threshold)
    assert tracker.compute() == compute_metrics(p, y, labels=names)
    assert tracker.get_auc_scores() == calculate_auc_roc(p, y, names)
    with pytest.raises(ValueError, match=r"`threshold` must be"):
        tracker.compute(1.5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_auc_and_coverage_equal_sklearn_with_ties_empty_rows_and_float32(seed, dtype):
    p, y = _data(n=700, c=5, seed=seed, ties=seed % 2 == 0)
    p = p.astype(dtype)
    y[:15] = 0  # rows without a positive: coverage 0 for them, as sklearn
    y[15:25] = 1
    m = compute_metrics(p, y)
    assert list(m["auc_per_class"].values()) == pytest.approx(
        list(skm.roc_auc_score(y, p, average=None)), rel=1e-12, abs=1e-12
    )
    assert m["auc_micro"] == pytest.approx(skm.roc_auc_score(y, p, average="micro"), rel=1e-12)
    assert m["coverage_error"] == pytest.approx(skm.coverage_error(y, p), rel=1e-12)
    assert calculate_auc_roc(p, y)["Macro_AUC"] == pytest.approx(skm.roc_auc_score(y, p, average="macro"), rel=1e-12)
