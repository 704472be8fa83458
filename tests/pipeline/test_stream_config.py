"""Stream sources in pipeline YAML (``type: shards``, ``huggingface`` with ``streaming: true``) and their inspection."""

import io
import json
import tarfile

import numpy as np
import pytest
import yaml
from torch.utils.data import DataLoader

from mixweave import ConfigError, WeightedInterleaveDataset
from mixweave.cli import main
from mixweave.pipeline import from_config


def _tar_shards(folder, n_shards, per_shard, label):
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        with tarfile.open(folder / f"shard-{s:03d}.tar", "w") as tar:
            for i in range(per_shard):
                payload = f"{label}-{s}-{i}".encode()
                info = tarfile.TarInfo(f"{s:03d}_{i:03d}.txt")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def _config(tmp_path, **mixture):
    _tar_shards(tmp_path / "web", 4, 25, "web")
    np.save(tmp_path / "books.npy", np.arange(1000, 1060))
    return {
        "sources": [
            {"name": "web", "type": "shards", "files": "web/shard-*.tar"},
            {"name": "books", "type": "npy", "fields": {"x": "books.npy"}},
        ],
        "mixture": {"weights": {"web": 0.75, "books": 0.25}, **mixture},
        "root": str(tmp_path),
    }


def _name(item):
    return item["txt"].decode() if isinstance(item, dict) else f"books-{int(item[0])}"


def test_shards_and_a_map_style_source_mix_as_streams_split_over_workers(tmp_path):
    pipeline = from_config(_config(tmp_path, stopping="all_exhausted"))
    assert pipeline.stream and isinstance(pipeline.dataset, WeightedInterleaveDataset)
    assert pipeline.dataset.stopping == "all_exhausted" and pipeline.sampler is None
    loader = pipeline.train_loader(batch_size=8, num_workers=2, collate_fn=lambda b: b)
    seen = [_name(item) for batch in loader for item in batch]
    expected = {f"web-{s}-{i}" for s in range(4) for i in range(25)} | {f"books-{k}" for k in range(1000, 1060)}
    assert set(seen) == expected  # every sample of both, each worker reading its own files and rows
    with pytest.raises(ValueError, match="a pipeline of stream sources has none"):
        pipeline.global_plan(0)


def test_inspect_reports_shares_stopping_and_the_prefix_deviation(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(_config(tmp_path, mode="exact", stopping="never")))
    report = from_config(tmp_path / "p.yaml").inspect(2)
    assert report["stream"] and report["stopping"] == "never" and report["mode"] == "exact"
    assert [s["name"] for s in report["sources"]] == ["web", "books"]
    assert report["sources"][0]["kind"] == "4 shard file(s)" and report["sources"][0]["splittable"]
    assert report["sources"][0]["realised"] == pytest.approx(0.75, abs=1e-4)
    assert report["largest_prefix_deviation"] < 1.0  # exact mode: every prefix within one sample
    assert main(["inspect", str(tmp_path / "p.yaml"), "--epochs", "2", "--plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "stopping never" in out and "75.00%" in out and "4 shard file(s)" in out
    assert main(["inspect", str(tmp_path / "p.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stopping"] == "never"


def test_huggingface_streaming_source_from_local_json_lines(tmp_path):
    pytest.importorskip("datasets", reason="the `huggingface` extra (installed by `make test`)")
    lines = "".join(json.dumps({"text": f"hf-{i}"}) + "\n" for i in range(30))
    (tmp_path / "a.jsonl").write_text(lines)
    cfg = {
        "sources": [
            {"name": "hf", "type": "huggingface", "builder": "json", "data_files": "a.jsonl", "streaming": True},
            {"name": "books", "type": "npy", "fields": {"x": "books.npy"}},
        ],
        "mixture": {"strategy": "uniform", "stopping": "all_exhausted"},
        "root": str(tmp_path),
    }
    np.save(tmp_path / "books.npy", np.arange(1000, 1010))
    pipeline = from_config(cfg)
    items = list(DataLoader(pipeline.dataset, batch_size=None))
    texts = {i["text"] for i in items if isinstance(i, dict)}
    assert texts == {f"hf-{i}" for i in range(30)}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.update(sampler={"type": "class_balanced"}), "stream sources have no rows known ahead"),
        (lambda c: c["mixture"].update(strategy="stratified", weights=None), "strategy 'weighted' or 'uniform'"),
        (lambda c: c["mixture"].update(samples_per_epoch=10), "`samples_per_epoch` does not apply to streams"),
        (lambda c: c["sources"][0].update(files="nothing-*.tar"), "matches no file"),
        (lambda c: c["mixture"].update(stopping="sometimes"), "sometimes"),
    ],
)
def test_bad_stream_configs_name_the_problem(tmp_path, change, match):
    cfg = _config(tmp_path)
    change(cfg)
    if cfg["mixture"].get("weights") is None:
        cfg["mixture"].pop("weights", None)
    with pytest.raises(ConfigError, match=match):
        from_config(cfg)


def test_stopping_needs_a_stream_source(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(5))
    cfg = {"sources": [{"name": "a", "type": "npy", "fields": {"x": "a.npy"}}], "mixture": {"stopping": "never"}}
    cfg["root"] = str(tmp_path)
    with pytest.raises(ConfigError, match="`stopping` applies to stream sources"):
        from_config(cfg)


def test_config_validate_accepts_a_stream_config_and_a_reader_of_your_own(tmp_path, capsys):
    cfg = _config(tmp_path)
    (tmp_path / "readers.py").write_text(
        "from mixweave.sampling import read_tar\n"
        "def text(path):\n"
        "    for sample in read_tar(path):\n"
        "        yield sample['txt'].decode()\n"
    )
    cfg["sources"][0]["read"] = "readers.py:text"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["config", "validate", str(tmp_path / "p.yaml")]) == 0
    assert "2 stream source(s) (web, books), mode random, stopping first_exhausted" in capsys.readouterr().out
    pipeline = from_config(tmp_path / "p.yaml")
    texts = [x for x in pipeline.dataset if isinstance(x, str)]
    assert texts and all(t.startswith("web-") for t in texts)  # decoded by the reader the config names
    cfg["sources"][0]["format"] = "tar"
    with pytest.raises(ConfigError, match="give `format` or `read`, not both"):
        from_config(cfg)


def test_huggingface_glob_matching_nothing_and_too_few_shards(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the `huggingface` extra (installed by `make test`)")
    cfg = {
        "sources": [
            {"name": "hf", "type": "huggingface", "builder": "json", "data_files": "none-*.jsonl", "streaming": True}
        ],
        "root": str(tmp_path),
    }
    with pytest.raises(ConfigError, match=r"`sources\[0\].data_files`: `data_files` 'none-\*.jsonl' matches no file"):
        from_config(cfg)
    (tmp_path / "one.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(20)))
    one_shard = datasets.load_dataset("json", data_files=str(tmp_path / "one.jsonl"), split="train", streaming=True)
    ds = WeightedInterleaveDataset([one_shard, list(range(100, 120))], stopping="all_exhausted")
    with pytest.warns(UserWarning, match="has 1 shard\\(s\\) per rank for 2 DataLoader workers"):
        from mixweave.sampling.stream_sources import Part

        next(iter(ds.sources[0].open(Part(0, 1, 0, 2))))
