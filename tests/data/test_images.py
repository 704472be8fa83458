import csv

import numpy as np
import pytest
import torch
from PIL import Image

from mixweave import WeightedSampler
from mixweave.core.weights import get_sample_weights
from mixweave.data.images import MultiLabelImageDataset, get_balanced_data_loaders, read_label_csv, write_label_csv

NAMES = ["Atelectasis", "Effusion", "Hernia", "Mass"]
PREV = [0.3, 0.2, 0.03, 0.1]


def _make(folder, n=120, seed=0, layout="nih"):
    """n 6x6 PNGs whose pixel value encodes the row, and a label CSV in the given layout."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(NAMES))) < PREV
    y[0, 2] = True  # at least one Hernia
    (folder / "img").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        name = f"{i:05d}_000.png"
        Image.fromarray(np.full((6, 6, 3), i % 256, dtype=np.uint8)).save(folder / "img" / name)
        found = "|".join(NAMES[j] for j in np.flatnonzero(y[i])) or "No Finding"
        patient = str(i // 3)
        if layout == "nih":
            rows.append([name, found, "0", patient, "PA"])
        else:
            rows.append([name, *map(str, y[i].astype(int)), patient])
    header = (
        ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position"]
        if layout == "nih"
        else ["image_id", *NAMES, "patient"]
    )
    return y, header, rows


def _write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize("layout", ["nih", "multihot"])
def test_dataset_returns_the_right_labels_not_all_zero(tmp_path, layout):
    # regression for the known bug of the original pipeline: label vectors came out all zero
    y, header, rows = _make(tmp_path, layout=layout)
    ds = MultiLabelImageDataset(_write(tmp_path / "all.csv", header, rows), tmp_path / "img", labels=NAMES)
    assert len(ds) == 120 and ds.labels == NAMES
    for i in (0, 1, 7, 59, 119):
        image, label, image_id = ds[i]
        assert image_id == rows[i][0]
        assert label.dtype == torch.float32 and label.tolist() == y[i].astype(float).tolist()
        assert image.shape == (3, 6, 6) and image.dtype == torch.float32
        assert torch.allclose(image, torch.full((3, 6, 6), (i % 256) / 255.0))
    stacked = torch.stack([ds[i][1] for i in range(len(ds))])
    assert stacked.sum() == y.sum() > 0


def test_names_are_detected_in_both_layouts(tmp_path):
    _, header, rows = _make(tmp_path, layout="nih")
    t = read_label_csv(_write(tmp_path / "a.csv", header, rows))
    assert t.format == "nih" and t.label_names == sorted(NAMES) and t.image_column == "Image Index"
    y2, header2, rows2 = _make(tmp_path, layout="multihot")
    t2 = read_label_csv(_write(tmp_path / "b.csv", header2, rows2))
    # the patient column is not 0/1, so it is not taken for a label
    assert t2.format == "multihot" and t2.label_names == NAMES and t2.image_column == "image_id"
    np.testing.assert_array_equal(t2.labels, y2.astype(np.float32))


def test_clear_errors(tmp_path):
    _, header, rows = _make(tmp_path, n=12)
    good = _write(tmp_path / "good.csv", header, rows)
    with pytest.raises(ValueError, match=r"row 2: unknown label name\(s\) \['Atelectasis'\]|unknown label name"):
        read_label_csv(good, labels=["Effusion"])
    _write(tmp_path / "empty.csv", header, [])
    with pytest.raises(ValueError, match="no rows: the split is empty"):
        read_label_csv(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError, match="label CSV not found"):
        read_label_csv(tmp_path / "nope.csv")
    bad = [r[:] for r in rows]
    bad[3][0] = "missing.png"
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) .* missing .*\['missing.png'\]"):
        MultiLabelImageDataset(_write(tmp_path / "bad.csv", header, bad), tmp_path / "img")
    _, h2, r2 = _make(tmp_path, n=12, layout="multihot")
    r2[4][2] = "2"
    with pytest.raises(ValueError, match="row 6: label column 'Effusion' must be 0 or 1, got '2'"):
        read_label_csv(_write(tmp_path / "mh.csv", h2, r2), labels=NAMES)


def test_transforms_torchvision_style_and_albumentations(tmp_path):
    _, header, rows = _make(tmp_path, n=4)
    path = _write(tmp_path / "a.csv", header, rows)
    seen = []

    def pil_transform(img):
        seen.append(type(img).__module__)
        return torch.zeros(1, 2, 2)

    assert MultiLabelImageDataset(path, tmp_path / "img", transform=pil_transform)[0][0].shape == (1, 2, 2)
    assert seen == ["PIL.Image"]
    A = pytest.importorskip("albumentations")  # the optional extra; installed by the dev extra
    flip = A.Compose([A.Resize(4, 5), A.HorizontalFlip(p=1.0)])
    image = MultiLabelImageDataset(path, tmp_path / "img", transform=flip)[2][0]
    assert image.shape == (3, 4, 5) and torch.allclose(image, torch.full((3, 4, 5), 2 / 255.0))


@pytest.mark.parametrize("layout", ["nih", "multihot"])
def test_balanced_loaders_end_to_end_with_workers(tmp_path, layout):
    y, header, rows = _make(tmp_path, n=200, layout=layout)
    idx = np.arange(200)
    tr, va, te = idx[:140], idx[140:170], idx[170:]
    paths = [
        _write(tmp_path / f"{s}.csv", header, [rows[i] for i in part])
        for s, part in zip(("tr", "va", "te"), (tr, va, te), strict=True)
    ]
    loaders = get_balanced_data_loaders(tmp_path / "img", *paths, batch_size=16, num_workers=2, labels=NAMES, seed=3)
    assert set(loaders) == {"train", "val", "test"}
    train = loaders["train"]
    assert isinstance(train.sampler, WeightedSampler) and train.drop_last and len(train) == 140 // 16
    np.testing.assert_allclose(train.sampler.weights, get_sample_weights(y[tr]))
    seen_ids, seen_labels = [], []
    for images, labels, ids in train:
        assert images.shape == (16, 3, 6, 6) and labels.shape == (16, 4)
        for lab, image_id in zip(labels, ids, strict=True):
            assert lab.tolist() == y[int(image_id[:5])].astype(float).tolist()  # labels travel with their image
        seen_ids += list(ids)
        seen_labels.append(labels)
    assert len(seen_ids) == 16 * (140 // 16)
    val_ids = [i for _, _, ids in loaders["val"] for i in ids]
    assert val_ids == [rows[i][0] for i in va]  # no shuffle on val
    assert not loaders["val"].drop_last and loaders["val"].pin_memory == torch.cuda.is_available()


def test_weighted_sampling_lifts_the_rare_label(tmp_path):
    # Statistical: 20 epochs x 496 draws; the rare label (3% of rows) must reach > 3x its row share.
    y, header, rows = _make(tmp_path, n=500, seed=1)
    p = _write(tmp_path / "all.csv", header, rows)
    loaders = get_balanced_data_loaders(tmp_path / "img", p, p, p, batch_size=16, num_workers=0, labels=NAMES)
    hernia = []
    for _ in range(20):
        hernia += [labels[:, 2] for _, labels, _ in loaders["train"]]
    share = torch.cat(hernia).mean().item()
    assert share > 3 * y[:, 2].mean(), (share, y[:, 2].mean())
    plain = get_balanced_data_loaders(
        tmp_path / "img", p, p, p, batch_size=16, num_workers=0, use_weighted_sampler=False
    )
    assert isinstance(plain["train"].sampler, torch.utils.data.RandomSampler)


def test_loader_errors(tmp_path):
    _, header, rows = _make(tmp_path, n=10)
    p = _write(tmp_path / "a.csv", header, rows)
    with pytest.raises(ValueError, match="fewer than batch_size=32"):
        get_balanced_data_loaders(tmp_path / "img", p, p, p, num_workers=0)
    other = [r[:] for r in rows]
    other[0][1] = "Pneumonia"
    q = _write(tmp_path / "b.csv", header, other)
    with pytest.raises(ValueError, match=r"unknown label name\(s\) \['Pneumonia'\]"):
        get_balanced_data_loaders(tmp_path / "img", p, q, p, batch_size=2, num_workers=0)


def test_write_label_csv_keeps_every_column(tmp_path):
    _, header, rows = _make(tmp_path, n=9)
    table = read_label_csv(_write(tmp_path / "a.csv", header, rows))
    out = write_label_csv(tmp_path / "out" / "part.csv", table, [4, 1])
    with open(out, newline="") as fh:
        got = list(csv.reader(fh))
    assert got == [header, rows[4], rows[1]]


def test_grayscale_images_stay_one_channel_without_a_read_only_warning(tmp_path):
    _, header, rows = _make(tmp_path, n=12)
    for i, row in enumerate(rows):  # the same rows, as 8-bit grayscale X-ray-like images
        Image.fromarray(np.full((6, 6), i, dtype=np.uint8), mode="L").save(tmp_path / "img" / row[0])
    _write(tmp_path / "all.csv", header, rows)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "The given NumPy array is not writable" would fail here
        auto = MultiLabelImageDataset(tmp_path / "all.csv", tmp_path / "img")
        image, _, _ = auto[3]
    assert auto.mode == "L" and image.shape == (1, 6, 6) and float(image[0, 0, 0]) == pytest.approx(3 / 255)
    rgb = MultiLabelImageDataset(tmp_path / "all.csv", tmp_path / "img", mode="RGB")
    assert rgb[3][0].shape == (3, 6, 6)


def test_colour_images_are_rgb_by_default_and_workers_follow_the_cpus(tmp_path, monkeypatch):
    _, header, rows = _make(tmp_path, n=40)
    for split in ("train", "val", "test"):
        _write(tmp_path / f"{split}.csv", header, rows)
    assert MultiLabelImageDataset(tmp_path / "train.csv", tmp_path / "img").mode == "RGB"
    for cpus, workers in ((2, 1), (1, 0), (16, 4), (None, 0)):
        monkeypatch.setattr("os.cpu_count", lambda cpus=cpus: cpus)
        loaders = get_balanced_data_loaders(
            tmp_path / "img", tmp_path / "train.csv", tmp_path / "val.csv", tmp_path / "test.csv", batch_size=8
        )
        assert {loader.num_workers for loader in loaders.values()} == {workers}


def test_no_finding_share_of_the_balanced_train_loader(tmp_path):
    y, header, rows = _make(tmp_path, n=120)
    for split in ("train", "val", "test"):
        _write(tmp_path / f"{split}.csv", header, rows)
    loaders = get_balanced_data_loaders(
        tmp_path / "img",
        tmp_path / "train.csv",
        tmp_path / "val.csv",
        tmp_path / "test.csv",
        batch_size=8,
        num_workers=0,
        no_finding_share=0.5,
    )
    weights = loaders["train"].sampler.weights
    empty = ~y.any(axis=1)
    assert weights[empty].sum() / weights.sum() == pytest.approx(0.5)


def test_sixteen_bit_grayscale_keeps_its_depth(tmp_path):
    _, header, rows = _make(tmp_path, n=4)
    ramp = (np.arange(36, dtype=np.uint16).reshape(6, 6) * 1800).astype(np.uint16)  # 0 .. 63,000
    for row in rows:
        Image.fromarray(ramp).save(tmp_path / "img" / row[0])  # a 16-bit PNG, as many X-ray exports are
    _write(tmp_path / "all.csv", header, rows)
    ds = MultiLabelImageDataset(tmp_path / "all.csv", tmp_path / "img")
    image = ds[0][0]
    assert image.shape == (1, 6, 6)
    np.testing.assert_allclose(image[0].numpy(), ramp / 65535.0, rtol=1e-6)  # not clipped at 255 -> 1.0
