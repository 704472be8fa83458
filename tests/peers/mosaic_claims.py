"""Facts about MosaicML Streaming that the README's comparison states, measured with Streaming itself.

Run by tests/test_peers.py with the interpreter of ``.venv-peers`` (Streaming needs a torch
and numpy of its own, so it cannot live in the project's environment). Prints one JSON object.

    .venv-peers/bin/python tests/peers/mosaic_claims.py DIR            # single-process facts
    .venv-peers/bin/python tests/peers/mosaic_claims.py DIR RANK WORLD  # one rank's samples (env set by the caller)
"""

import inspect
import json
import sys

import numpy as np
from streaming import MDSWriter, Stream, StreamingDataset
from streaming.base.util import clean_stale_shared_memory

EPOCH = 500


def write(path, values):
    with MDSWriter(out=path, columns={"x": "int"}, size_limit=1 << 12) as writer:
        for v in values:
            writer.write({"x": int(v)})


def dataset(root, seed, **kwargs):
    streams = [Stream(local=f"{root}/a", proportion=0.8), Stream(local=f"{root}/b", proportion=0.2)]
    settings = {"batch_size": 1, "epoch_size": EPOCH, "num_canonical_nodes": 1}
    return StreamingDataset(streams=streams, shuffle=True, shuffle_seed=seed, **settings, **kwargs)


def epochs(root, seed, n=1):
    clean_stale_shared_memory()
    ds = dataset(root, seed)
    out = [[int(s["x"]) for s in ds] for _ in range(n)]
    del ds
    return out


def main():
    root = sys.argv[1]
    if len(sys.argv) > 2:  # one rank of a simulated world: the caller sets RANK, WORLD_SIZE, LOCAL_* env
        ds = dataset(root, 0)
        print(json.dumps({"samples": [int(s["x"]) for s in ds]}))
        return
    write(f"{root}/a", range(400))
    write(f"{root}/b", range(1000, 1100))
    first, second = epochs(root, 0, n=2)
    again = epochs(root, 0)[0]
    other = epochs(root, 1)[0]

    is_b = (np.array(first) >= 1000).astype(int)
    onehot = np.eye(2)[is_b]
    target = np.arange(1, is_b.size + 1)[:, None] * np.array([0.8, 0.2])
    prefix_deviation = float(np.abs(np.cumsum(onehot, axis=0) - target).max())

    clean_stale_shared_memory()
    ds = dataset(root, 0)
    it = iter(ds)
    seen = [int(next(it)["x"]) for _ in range(123)]
    state = ds.state_dict(num_samples=123, from_beginning=True)
    del it, ds
    clean_stale_shared_memory()
    resumed = dataset(root, 0)
    resumed.load_state_dict(state)
    rest = [int(s["x"]) for s in resumed]
    del resumed

    stream_params = sorted(inspect.signature(Stream).parameters)
    print(
        json.dumps(
            {
                "epoch_size": EPOCH,
                "first": first,
                "second": second,
                "again": again,
                "other_seed": other,
                "b_count": int(is_b.sum()),
                "prefix_deviation": prefix_deviation,
                "resumed": seen + rest,
                "stream_params": stream_params,
            }
        )
    )


if __name__ == "__main__":
    main()
