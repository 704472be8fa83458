import json
import os
import subprocess
import threading

import numpy as np
import pytest

from tests.checks import console_script


def _mixweave():
    return console_script()


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [*_mixweave(), "demo", "--out", str(out), "--epochs", "2", "--seed", "1", "--seeds", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # stderr is not a terminal here: no progress bars
    return out, json.loads((out / "report.json").read_text()), done.stdout


def test_demo_writes_the_report(demo_report):
    out, report, stdout = demo_report
    assert report["config"] == {"epochs": 2, "seed": 1, "seeds": 2, "batch_size": 32, "data": "sklearn digits"}
    assert set(report["long_tail"]["runs"]) == {
        "plain shuffling",
        "class-balanced sampler",
        "class-balanced loss (beta=0.999)",
        "focal loss (gamma=2)",
        "classes: exp3",
    }
    for run in report["long_tail"]["runs"].values():
        assert 0 <= run["balanced_accuracy"] <= 1 and 0 <= run["macro_f1"] <= 1 and len(run["recall_per_class"]) == 10
        assert sum(run["class_shares_seen"]) == pytest.approx(1.0)
        # the mean and sd are those of the per-seed scores (seeds 1 and 2)
        per_seed = np.array([r["balanced_accuracy"] for r in run["per_seed"]])
        assert [r["seed"] for r in run["per_seed"]] == [1, 2]
        assert run["balanced_accuracy"] == pytest.approx(per_seed.mean())
        assert run["balanced_accuracy_sd"] == pytest.approx(per_seed.std(ddof=1))
    assert report["long_tail"]["imbalance_ratio"] >= 50  # 100:1 up to rounding of the smallest class
    fixed = ["real only", "80/20", "50/50", "20/80", "synthetic only"]
    assert list(report["mixing"]["runs"]) == [*fixed, "sources: exp3", "sources: doremi"]
    for name in fixed:
        run = report["mixing"]["runs"][name]
        # exact mode: the realised share of one epoch is the requested share to within one sample in 400
        assert abs(run["realised_real_share"] - run["requested_real_share"]) <= 1 / 400
    for name in ("sources: exp3", "sources: doremi"):
        run = report["mixing"]["runs"][name]
        assert 0 < run["final_real_share"] < 1 and 0 <= run["accuracy"] <= 1
        # 2 epochs x 400 draws follow the mean requested share: binomial sd about 0.016; tolerance 0.08
        assert run["realised_real_share"] == pytest.approx(run["requested_real_share"], abs=0.08)
    assert sum("Adaptive mixing (sources: exp3" in line for line in report["conclusions"]) == 1
    assert report["conclusions"] and all(isinstance(line, str) for line in report["conclusions"])
    for name in report["plots"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "## Long tail" in md and "## Mixing real and synthetic" in md and "## What the numbers say" in md
    assert "summary" in stdout and "report.md" in stdout


def test_class_balanced_sampler_balances_what_the_model_sees(demo_report):
    _, report, _ = demo_report
    runs = report["long_tail"]["runs"]
    counts = np.array(report["long_tail"]["train_class_counts"])
    # plain shuffling sees the training distribution exactly (each epoch is a permutation)
    np.testing.assert_allclose(runs["plain shuffling"]["class_shares_seen"], counts / counts.sum())
    # the sampler draws about 2 x 300 samples: binomial sd of a 10% share is ~0.012; tolerance 0.05 (4 sd)
    np.testing.assert_allclose(runs["class-balanced sampler"]["class_shares_seen"], 0.1, atol=0.05)


@pytest.mark.parametrize("argv", [["demo", "--epochs", "0"], ["demo", "--seed", "-3"], ["demo", "--seeds", "0"]])
def test_demo_errors_are_one_line(argv):
    done = subprocess.run([*_mixweave(), *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("mixweave: error: ") and done.stderr.count("\n") == 1


def test_help_of_every_command():
    top = subprocess.run([*_mixweave(), "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and all(c in top.stdout for c in ("demo", "split", "store"))
    for command in ("demo", "split", "store", "store info", "store build"):
        sub = subprocess.run([*_mixweave(), *command.split(), "--help"], capture_output=True, text=True, timeout=120)
        assert sub.returncode == 0 and f"usage: mixweave {command}" in sub.stdout


def _demo_with_a_terminal_on_stderr(out, *extra):
    """Run the demo with stderr on a pseudo-terminal; return (stdout, what the terminal received)."""
    master, slave = os.openpty()
    received = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [*_mixweave(), "demo", "--out", str(out), "--epochs", "1", *extra],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=600,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
        )
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    assert done.returncode == 0
    return done.stdout, received.decode(errors="replace")


@pytest.mark.slow
def test_progress_bars_go_to_a_terminal_on_stderr_and_quiet_silences_them(tmp_path):
    stdout, terminal = _demo_with_a_terminal_on_stderr(tmp_path / "a")
    assert "long tail: plain" in terminal and "epochs" in terminal  # the bars, on stderr
    assert "long tail: plain" not in stdout and "mixweave demo: summary" in stdout  # stdout: only the results
    stdout, terminal = _demo_with_a_terminal_on_stderr(tmp_path / "b", "--quiet")
    assert terminal == "" and "mixweave demo: summary" in stdout


def test_a_verdict_is_given_only_beyond_the_seed_to_seed_spread():
    from mixweave.cli.demo_report import _difference

    words = ("helped", "hurt", "made no clear difference")

    def runs(deltas):
        base = {"per_seed": [{"x": 0.5} for _ in deltas]}
        return {"per_seed": [{"x": 0.5 + d} for d in deltas]}, base

    assert _difference(*runs([0.03, 0.04, 0.05]), "x", words).startswith("helped (+4.0 ± 1.0 points over 3 seeds)")
    assert _difference(*runs([-0.03, -0.04, -0.05]), "x", words).startswith("hurt (-4.0 ± 1.0")
    assert _difference(*runs([0.06, -0.02, 0.02]), "x", words).startswith("made no clear difference (+2.0 ± 4.0")
    assert "one seed: no spread to judge by" in _difference(*runs([0.2]), "x", words)
