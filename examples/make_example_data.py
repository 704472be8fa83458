"""Regenerate the small arrays that examples/mixed_data_example.yaml points at.

A "synthetic" source (many noisy images) and a "real" source (few clean ones),
8x8 float32 images with labels 0-9. Run from the repository root:
``python examples/make_example_data.py``.
"""

from pathlib import Path

import numpy as np

out = Path(__file__).parent / "data"
out.mkdir(exist_ok=True)
rng = np.random.default_rng(0)
prototypes = rng.normal(size=(10, 8, 8)).astype(np.float32)
for name, n, noise in (("synthetic", 400, 1.0), ("real", 60, 0.2)):
    labels = rng.integers(0, 10, n)
    images = prototypes[labels] + noise * rng.normal(size=(n, 8, 8)).astype(np.float32)
    np.save(out / f"{name}_image.npy", images.astype(np.float32))
    np.save(out / f"{name}_label.npy", labels.astype(np.int64))
    print(f"wrote {name}: {n} images")
