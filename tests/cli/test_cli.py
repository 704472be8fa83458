import csv
import subprocess
import sys

import numpy as np
import pytest

from mixweave import __version__
from mixweave.cli import main


def _nih_csv(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    names = ["Atelectasis", "Effusion", "Hernia", "Mass"]
    y = rng.random((n, 4)) < [0.3, 0.15, 0.02, 0.1]
    rows = []
    for i in range(n):
        found = "|".join(names[j] for j in np.flatnonzero(y[i])) or "No Finding"
        rows.append([f"{i:08d}_000.png", found, str(i % 3), f"{i // 4:05d}", "63", "M"])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender"])
        w.writerows(rows)
    return rows


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_split_nih_with_groups(tmp_path, capsys):
    rows = _nih_csv(tmp_path / "Data_Entry.csv")
    code = main(
        ["split", str(tmp_path / "Data_Entry.csv"), "--out", str(tmp_path / "splits"), "--group-column", "Patient ID"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Hernia" in out and "max |prevalence" in out and "none spans two splits" in out
    parts = {name: _read(tmp_path / "splits" / f"{name}.csv") for name in ("train", "val", "test")}
    for part in parts.values():
        assert part[0] == [
            "Image Index",
            "Finding Labels",
            "Follow-up #",
            "Patient ID",
            "Patient Age",
            "Patient Gender",
        ]
    body = [r for part in parts.values() for r in part[1:]]
    assert sorted(map(tuple, body)) == sorted(map(tuple, rows))  # every row once, every column unchanged
    patients = [{r[3] for r in part[1:]} for part in parts.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert abs(len(parts["train"]) - 1 - 210) <= 8  # within two patients of 70%


def test_split_multihot_with_names_and_fractions(tmp_path, capsys):
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "cat", "dog", "note"])
        w.writerows([[f"{i}.jpg", i % 2, int(i % 5 == 0), "x"] for i in range(100)])
    code = main(
        [
            "split",
            str(tmp_path / "labels.csv"),
            "--fractions",
            "0.8",
            "0.2",
            "--out",
            str(tmp_path / "o"),
            "--names",
            "fit",
            "holdout",
            "--seed",
            "4",
        ]
    )
    assert code == 0
    fit, holdout = _read(tmp_path / "o" / "fit.csv"), _read(tmp_path / "o" / "holdout.csv")
    assert len(fit) - 1 == 80 and len(holdout) - 1 == 20
    assert sum(int(r[2]) for r in holdout[1:]) == 4  # 20% of the 20 dogs
    assert "multihot layout" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fractions", "0.5", "0.2"], "`fractions` must sum to 1"),
        (["--group-column", "Nope"], "column 'Nope' not found"),
        (["--names", "a", "b"], "--names must give 3 names"),
    ],
)
def test_split_errors_are_one_line(tmp_path, capsys, argv, message):
    _nih_csv(tmp_path / "d.csv", n=30)
    assert main(["split", str(tmp_path / "d.csv"), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixweave: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.csv"))


def test_missing_file_through_the_installed_command(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mixweave.cli", "split", str(tmp_path / "x.csv"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "label CSV not found" in done.stderr
    version = subprocess.run([sys.executable, "-m", "mixweave.cli", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"mixweave {__version__}"
