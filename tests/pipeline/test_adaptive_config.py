"""``mixture: {strategy: adaptive}`` (or ``mixing:``) in pipeline YAML, and ``mixweave inspect`` of a share history."""

import json

import numpy as np
import pytest
import torch
import yaml

from mixweave import AdaptiveMixture, AdaptiveSampler, ConfigError
from mixweave.cli import main
from mixweave.pipeline import from_config


def _sources(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a_y.npy", rng.integers(0, 3, 300))
    np.save(tmp_path / "b_y.npy", rng.integers(0, 3, 100))
    return [
        {"name": "web", "type": "npy", "fields": {"label": str(tmp_path / "a_y.npy")}},
        {"name": "code", "type": "npy", "fields": {"label": str(tmp_path / "b_y.npy")}},
    ]


def test_adaptive_mixing_section_builds_a_mixture_and_a_sampler_with_its_settings(tmp_path):
    mixing = {
        "strategy": "adaptive",
        "algorithm": "doremi",
        "update_every": 2,
        "learning_rate": 0.5,
        "floor": 0.01,
        "reference_losses": {"code": 0.2, "web": 0.1},
        "segment_size": 40,
        "samples_per_epoch": 200,
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"sources": _sources(tmp_path), "mixing": mixing, "seed": 3}))
    pipeline = from_config(tmp_path / "p.yaml")
    m = pipeline.mixture
    assert isinstance(m, AdaptiveMixture) and isinstance(pipeline.sampler, AdaptiveSampler)
    assert (m.algorithm, m.update_every, m.learning_rate, m.floor, m.names) == ("doremi", 2, 0.5, 0.01, ["web", "code"])
    assert m.reference_losses.tolist() == [0.1, 0.2]  # by name, in source order
    assert (pipeline.sampler.segment_size, pipeline.num_samples, pipeline.sampler.seed) == (40, 200, 3)
    # the pipeline's sampler draws exactly what a hand-built one over the concatenated sources draws
    by_hand = AdaptiveSampler(AdaptiveMixture(2), np.repeat([0, 1], [300, 100]), 200, segment_size=40, seed=3)
    assert np.array_equal(pipeline.global_plan(0), by_hand.global_plan(0))
    report = pipeline.inspect(1)
    assert report["strategy"] == "adaptive"
    assert [s["requested"] for s in report["sources"]] == pytest.approx([0.5, 0.5])


def test_class_balance_inside_each_source_under_adaptive_shares(tmp_path):
    labels = np.array([0] * 90 + [1] * 10)
    np.save(tmp_path / "y.npy", labels)
    np.save(tmp_path / "z.npy", labels)
    sources = [
        {"name": n, "type": "npy", "fields": {"label": str(tmp_path / f"{n}.npy")}, "labels": "label"}
        for n in ("y", "z")
    ]
    cfg = {"sources": sources, "mixture": {"strategy": "adaptive"}, "sampler": {"type": "class_balanced"}}
    cfg["mixture"]["samples_per_epoch"] = 40_000
    pipeline = from_config(cfg)
    plan = pipeline.global_plan(0)
    rows = plan % 100
    # inside each source the two classes are balanced (tolerance: 40k draws, sd of a share about 0.0025)
    assert np.mean(labels[rows] == 1) == pytest.approx(0.5, abs=0.015)
    assert np.mean(plan >= 100) == pytest.approx(0.5, abs=0.015)  # and the sources share 50/50


@pytest.mark.parametrize(
    ("mixing", "match"),
    [
        ({"strategy": "weighted", "weights": [0.5, 0.5], "algorithm": "exp3"}, r"\['algorithm'\] apply to strategy"),
        ({"strategy": "adaptive", "algorithm": "doremi"}, "algorithm='doremi' needs `reference_losses`"),
        ({"strategy": "adaptive", "mode": "exact"}, "draws in mode 'random' only"),
        ({"strategy": "adaptive", "floor": 0.9}, r"`floor` must be a finite number in \(0, 0.5\], got 0.9"),
        ({"strategy": "adaptive", "algorithm": "ucb"}, "ucb"),
        (
            {"strategy": "adaptive", "algorithm": "doremi", "reference_losses": {"web": 1}},
            r"`reference_losses` given by name must name every one of \['web', 'code'\]; "
            r"unknown \[\], missing \['code'\]",
        ),
    ],
)
def test_bad_adaptive_sections_name_the_key(tmp_path, mixing, match):
    with pytest.raises(ConfigError, match=match) as info:
        from_config({"sources": _sources(tmp_path), "mixing": mixing})
    assert "mixing" in str(info.value)  # the key as the user wrote it


def test_items_carry_their_source_for_the_training_step(tmp_path):
    mixing = {"strategy": "adaptive", "samples_per_epoch": 64, "segment_size": 16}
    pipeline = from_config({"sources": _sources(tmp_path), "mixing": mixing})
    source, (_labels,) = next(iter(pipeline.train_loader(batch_size=16)))
    plan = pipeline.global_plan(0)[:16]
    assert source.tolist() == (plan >= 300).astype(int).tolist()  # source 1 ("code") starts at row 300
    pipeline.mixture.observe(source, torch.ones(16))  # what a training step reports


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["sources"][0].update(weight=2.0), r"sources \['web'\] have a `weight`"),
        (lambda c: c["mixing"].update(interpolation="linear"), "`interpolation` applies to a weight schedule"),
        (lambda c: c.update(sampler={"replacement": False}), r"sampler \['replacement: false'\]"),
        (lambda c: c.update(sampler={"mode": "exact"}), r"sampler \['mode: exact'\]"),
        (lambda c: c.update(sampler={"increment_seed_per_epoch": False}), "increment_seed_per_epoch: false"),
    ],
)
def test_settings_the_adaptive_strategy_would_ignore_are_refused(tmp_path, change, match):
    cfg = {"sources": _sources(tmp_path), "mixing": {"strategy": "adaptive"}}
    change(cfg)
    with pytest.raises(ConfigError, match=match):
        from_config(cfg)


def test_a_bad_adaptive_setting_names_its_key(tmp_path):
    with pytest.raises(ConfigError, match=r"`mixing.segment_size`: `segment_size` \(3\) must be a multiple"):
        from_config(
            {"sources": _sources(tmp_path), "mixing": {"strategy": "adaptive", "segment_size": 3}},
            num_replicas=2,
            rank=0,
        )


def test_adaptive_with_a_curriculum_or_both_spellings_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="takes sampler type 'none', 'class_balanced' or 'task_aware'"):
        from_config({"sources": _sources(tmp_path), "mixing": {"strategy": "adaptive"}, "sampler": {"type": "joint"}})
    with pytest.raises(ConfigError, match="give `mixture` or `mixing`, not both"):
        from_config({"sources": _sources(tmp_path), "mixing": {}, "mixture": {}})


def test_inspect_tabulates_and_plots_a_share_history(tmp_path, capsys):
    m = AdaptiveMixture(2, names=["web", "code"], learning_rate=3.0)
    for _ in range(10):
        m.observe([0, 1], [0.1, 2.0])
    m.write_history(tmp_path / "shares.jsonl")
    assert main(["inspect", str(tmp_path / "shares.jsonl"), "--plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "10 update(s) over 10 step(s)" in out and "code" in out
    assert f"{100 * m.probabilities()[1]:.2f}%" in out  # the last share of `code`
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["inspect", str(tmp_path / "shares.jsonl"), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert [e["update"] for e in parsed["entries"]] == list(range(11))
    assert [e["shares"] for e in parsed["entries"]] == [pytest.approx(e["shares"], abs=1e-11) for e in m.history]
    (tmp_path / "bad.jsonl").write_text('{"epoch": 0}\n')
    assert main(["inspect", str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:1: not a share history entry" in capsys.readouterr().err
