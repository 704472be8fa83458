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


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("configs/pipeline.yaml", "2 source(s) (synthetic, real), 1,000 samples per epoch"),
        ("configs/sessions_parent.yaml", "2 source(s) (synthetic, real), 400 samples per epoch"),
        ("mixed_data_example.yaml", "strategy weighted, sampler none"),
    ],
)
def test_config_validate_accepts_the_shipped_configs(config, says, capsys):
    assert main(["config", "validate", str(EXAMPLES / config)]) == 0
    assert says in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "sources:\n  - {type: npy, feilds: {y: x.npy}}\n",
            r"`sources[0].feilds`: Extra inputs are not permitted "
            r"(did you mean 'fields'?)",
        ),
        ("sources:\n  - {type: npy, fields: {y: x.npy}}\nmixtrue: {}\n", "(did you mean 'mixture'?)"),
        ("sources:\n  - {type: npy, fields: {y: nope.npy}}\n", "`sources[0].fields.y`: array file not found"),
        (
            f"data:\n  datasets: [{{image: {EXAMPLES}/data/real_image.npy}}]\n  dataset_weights: [0.5, 0.6]\n",
            "`data.dataset_weights`: must have one weight per source",
        ),
    ],
    ids=["typo", "top-level-typo", "missing-file", "mixed-data-weights"],
)
def test_config_validate_reports_what_config_show_let_through(tmp_path, text, says, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mixweave: error: {path}: ") and says in err and "Traceback" not in err


def test_config_validate_checks_plain_session_configs(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "p.yaml").write_text("session_dir: s\nsessions: [a]\n")
    (tmp_path / "s" / "a.yaml").write_text("cids: [1]\n")
    assert main(["config", "validate", str(tmp_path / "p.yaml")]) == 0
    assert "1 session(s)" in capsys.readouterr().out
    (tmp_path / "s" / "a.yaml").write_text("cdis: [1]\n")  # the required key, mistyped
    assert main(["config", "validate", str(tmp_path / "p.yaml")]) == 2
    assert "`cids`: Session config 'a' must include 'cids' field" in capsys.readouterr().err


def test_inspect_piped_keeps_long_names_whole_and_json_floats_short(tmp_path):
    import json

    import yaml

    rng = np.random.default_rng(0)
    names = ["monkeyA_2022-02-16_session_long_name_one", "monkeyA_2022-02-16_session_long_name_two"]
    for name in names:
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 3, 50))
    sources = [{"name": n, "type": "npy", "fields": {"y": f"{n}.npy"}, "labels": "y"} for n in names]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"sources": sources, "mixture": {"weights": [0.4, 0.6]}}))
    env = {**__import__("os").environ, "COLUMNS": "80"}
    cmd = [sys.executable, "-m", "mixweave.cli", "inspect", str(tmp_path / "p.yaml")]
    table = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout  # piped: not a terminal
    first_column = "".join(line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│"))
    assert all(name in first_column for name in names) and "…" not in table  # wrapped, never cut
    raw = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True).stdout
    shares = [row["requested"] for row in json.loads(raw)["sources"]]
    assert shares == [0.4, 0.6] and "0.39999" not in raw and "0.60000" not in raw


# -- reliability (#19): one line, never a traceback; no write outside --out; no leak between splits -------------


def test_duplicate_image_ids_are_an_error_or_kept_together(tmp_path, capsys):
    rows = _nih_csv(tmp_path / "Data_Entry.csv", n=200)
    with open(tmp_path / "dup.csv", "w", newline="") as fh:  # 50 images listed twice
        w = csv.writer(fh)
        w.writerow(["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender"])
        w.writerows(rows + rows[:50])
    assert main(["split", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "50 image id(s) appear on more than one row" in err and "--group-duplicates" in err
    assert main(["split", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "b"), "--group-duplicates"]) == 0
    splits = {name: {r[0] for r in _read(tmp_path / "b" / f"{name}.csv")[1:]} for name in ("train", "val", "test")}
    assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])  # no image in two
    assert not (splits["val"] & splits["test"])


def test_the_same_image_written_two_ways_is_a_duplicate(tmp_path, capsys):
    rows = _nih_csv(tmp_path / "Data_Entry.csv", n=200)
    again = [["./" + rows[i][0], *rows[i][1:]] for i in range(3)]  # ./x.png is x.png
    with open(tmp_path / "dup.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender"])
        w.writerows(rows + again)
    assert main(["split", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "a")]) == 2
    assert "3 image id(s) appear on more than one row" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["split", "{csv}", "--out", "{file}/sub"], "Not a directory"),
        (["split", "{csv}", "--out", "{tmp}/o", "--names", "a", "../../x", "c"], "--names must be plain file names"),
        (["demo", "--out", "{file}/sub", "--epochs", "1"], "Not a directory"),
        (["inspect", "{config}", "--plot", "{tmp}"], "--plot must be the path of a PNG file to write, got the folder"),
        (["inspect", "{config}", "--plot", "{file}/x.png"], "Not a directory"),
        (["store", "build", "{tmp}/s", "--from-npz", "{file}"], "is not an .npz file"),
        (["store", "build", "{tmp}/s", "--from-npz", "{truncated}"], "is not an .npz file"),
        (["store", "info", "{corrupt}"], "file is not a database"),
        (["store", "sync-labels", "{corrupt}"], "file is not a database"),
        (["split", "{latin1}", "--out", "{tmp}/o"], "is not UTF-8 text"),
    ],
    ids=[
        "out-through-file",
        "names-escape",
        "demo-out",
        "plot-dir",
        "plot-through-file",
        "npz-not-zip",
        "npz-truncated",
        "store-info-corrupt",
        "sync-corrupt",
        "csv-latin1",
    ],
)
def test_bad_paths_and_files_are_one_line_errors(tmp_path, capsys, args, says):
    _nih_csv(tmp_path / "labels.csv", n=60)
    (tmp_path / "file").write_text("not a folder")
    np.savez(tmp_path / "good.npz", base_embeddings=np.ones((4, 2)))
    (tmp_path / "truncated.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:-30])
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "dataset.db").write_bytes(b"this is not sqlite" * 100)
    (tmp_path / "latin1.csv").write_bytes("Image Index,Finding Labels\nx.png,Caf\xe9\n".encode("latin-1"))
    places = {
        "csv": tmp_path / "labels.csv",
        "file": tmp_path / "file",
        "tmp": tmp_path,
        "truncated": tmp_path / "truncated.npz",
        "corrupt": tmp_path / "corrupt",
        "latin1": tmp_path / "latin1.csv",
        "config": EXAMPLES / "configs/pipeline.yaml",
    }
    code = main([a.format(**places) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mixweave: error: ") and says in err and err.count("\n") == 1, err
    assert not (tmp_path.parent / "x.csv").exists() and not list(tmp_path.glob("*.png"))  # nothing written astray
