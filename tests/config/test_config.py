"""Parent/session config inheritance (seed 004): merge results, metadata, safety and every error path."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from mixweave.config import ConfigError, deep_merge, describe, load_dataset_configs, load_yaml, load_yaml_with_extends

PARENT = """\
types: [backimage]
session_dir: ./sessions
sessions:
  - Allen_2022-02-16
  - Allen_2022-03-04
  - Logan_2020-02-29

sampling:
  source_rate: 240
  target_rate: 120

keys_lags:
  robs: 0
  stim: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]
  behavior: 0
  dfs: 0

transforms:
  stim:
    source: stim
    ops:
      - pixelnorm: {}
      - unsqueeze: 0
    expose_as: stim

datafilters:
  dfs:
    ops:
      - valid_nlags: {n_lags: 32}
    expose_as: dfs

train_val_split: 0.8
seed: 1002
"""

SESSIONS = {
    "Allen_2022-02-16": """\
session: Allen_2022-02-16
cids: [1, 4, 5, 8, 9, 12, 13, 14]
visual: [1, 4, 5, 8, 9, 12, 13, 14]
qcmissing: [3, 8, 9, 11, 17, 19]
qccontam: [3, 6, 7, 8, 9, 10]
lab: yates
""",
    # no `session` key: inferred from the file name; overrides the stim ops only
    "Allen_2022-03-04": """\
cids: [2, 3]
transforms:
  stim:
    ops: [fftwhitening, pixelnorm]
""",
    "Logan_2020-02-29": """\
cids: [7]
lab: rochester
seed: 7
""",
}


def write_tree(
    root: Path, parent: str = PARENT, sessions: dict[str, str] | None = None, name: str = "parent.yaml"
) -> Path:
    (root / "sessions").mkdir(exist_ok=True)
    for stem, text in (SESSIONS if sessions is None else sessions).items():
        (root / "sessions" / f"{stem}.yaml").write_text(text)
    path = root / name
    path.write_text(parent)
    return path


def shared() -> dict[str, Any]:
    """The parent as the document says sessions inherit it: without session_dir and sessions."""
    return {
        "types": ["backimage"],
        "sampling": {"source_rate": 240, "target_rate": 120},
        "keys_lags": {"robs": 0, "stim": list(range(25)), "behavior": 0, "dfs": 0},
        "transforms": {"stim": {"source": "stim", "ops": [{"pixelnorm": {}}, {"unsqueeze": 0}], "expose_as": "stim"}},
        "datafilters": {"dfs": {"ops": [{"valid_nlags": {"n_lags": 32}}], "expose_as": "dfs"}},
        "train_val_split": 0.8,
        "seed": 1002,
    }


def test_document_example_tree_merges_exactly_as_documented(tmp_path: Path) -> None:
    parent = write_tree(tmp_path)
    configs = load_dataset_configs(parent)
    sdir = tmp_path / "sessions"
    meta = {"_weight": 1.0, "_parent_config_path": str(parent)}
    expected = [
        {
            **shared(),
            "session": "Allen_2022-02-16",
            "cids": [1, 4, 5, 8, 9, 12, 13, 14],
            "visual": [1, 4, 5, 8, 9, 12, 13, 14],
            "qcmissing": [3, 8, 9, 11, 17, 19],
            "qccontam": [3, 6, 7, 8, 9, 10],
            "lab": "yates",
            **meta,
            "_config_path": str(sdir / "Allen_2022-02-16.yaml"),
        },
        {
            **shared(),
            # the document's merge example: `source` inherited, `ops` replaced whole, `expose_as` kept
            "transforms": {"stim": {"source": "stim", "ops": ["fftwhitening", "pixelnorm"], "expose_as": "stim"}},
            "cids": [2, 3],
            "session": "Allen_2022-03-04",
            **meta,
            "_config_path": str(sdir / "Allen_2022-03-04.yaml"),
        },
        {
            **shared(),
            "seed": 7,  # session scalars win
            "cids": [7],
            "lab": "rochester",
            "session": "Logan_2020-02-29",
            **meta,
            "_config_path": str(sdir / "Logan_2020-02-29.yaml"),
        },
    ]
    assert configs == expected
    assert [c["session"] for c in configs] == ["Allen_2022-02-16", "Allen_2022-03-04", "Logan_2020-02-29"]
    assert all("session_dir" not in c and "sessions" not in c for c in configs)


def test_session_weights_from_mapping_entries(tmp_path: Path) -> None:
    parent = write_tree(
        tmp_path,
        PARENT.replace("  - Allen_2022-03-04\n", "  - {name: Allen_2022-03-04, weight: 2}\n").replace(
            "  - Logan_2020-02-29\n", "  - name: Logan_2020-02-29\n    weight: 0.5\n"
        ),
    )
    assert [c["_weight"] for c in load_dataset_configs(parent)] == [1.0, 2.0, 0.5]


def test_session_dir_is_relative_to_the_parent_not_the_working_directory(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "cfg").mkdir()
    parent = write_tree(tmp_path / "cfg")
    monkeypatch.chdir(tmp_path.parent)
    assert len(load_dataset_configs(parent)) == 3
    monkeypatch.chdir(tmp_path / "cfg")
    assert len(load_dataset_configs(Path("parent.yaml"))) == 3


def test_returned_configs_are_independent(tmp_path: Path) -> None:
    parent = write_tree(tmp_path)
    first = load_dataset_configs(parent)
    pristine = copy.deepcopy(first)
    first[0]["transforms"]["stim"]["ops"].append("mutated")
    first[0]["keys_lags"]["stim"].clear()
    first[0]["sampling"]["source_rate"] = -1
    assert first[1] == pristine[1] and first[2] == pristine[2]
    assert first[1]["keys_lags"]["stim"] is not first[2]["keys_lags"]["stim"]
    assert load_dataset_configs(parent) == pristine


def test_required_keys_default_and_configurable(tmp_path: Path) -> None:
    parent = write_tree(tmp_path, sessions={**SESSIONS, "Logan_2020-02-29": "lab: rochester\n"})
    with pytest.raises(
        ConfigError,
        match=r"Logan_2020-02-29\.yaml: `cids`: Session config 'Logan_2020-02-29' must include 'cids'",
    ) as info:
        load_dataset_configs(parent)
    assert info.value.key == "cids" and str(info.value.path).endswith("Logan_2020-02-29.yaml")
    relaxed = write_tree(tmp_path, PARENT + "required_keys: [lab, transforms.stim.ops]\n", name="relaxed.yaml")
    with pytest.raises(
        ConfigError,
        match=r"`lab`: Session config 'Allen_2022-03-04' must include 'lab' field",
    ):
        load_dataset_configs(relaxed)
    ok = write_tree(tmp_path, PARENT + "required_keys: [transforms.stim.ops]\n", name="ok.yaml")
    configs = load_dataset_configs(ok)
    assert all("required_keys" not in c for c in configs)
    deep = write_tree(tmp_path, PARENT + "required_keys: [transforms.stim.crop]\n", name="deep.yaml")
    with pytest.raises(
        ConfigError, match=r"`transforms\.stim\.crop`: Session config '.*' must include 'transforms\.stim\.crop' field"
    ):
        load_dataset_configs(deep)


def test_error_missing_parent_session_file_and_session_dir(tmp_path: Path) -> None:
    # the original VisionCore loader's words, then mixweave's detail
    with pytest.raises(FileNotFoundError, match=r"^Parent config file not found: .*nope\.yaml"):
        load_dataset_configs(tmp_path / "nope.yaml")
    parent = write_tree(tmp_path, PARENT.replace("  - Logan_2020-02-29\n", "  - Logan_2020-02-29\n  - Ghost_1999\n"))
    with pytest.raises(
        FileNotFoundError,
        match=r"^Session config not found: .*Ghost_1999\.yaml \(`sessions\[3\]` 'Ghost_1999' of .*parent",
    ):
        load_dataset_configs(parent)
    moved = write_tree(tmp_path, PARENT.replace("./sessions", "./elsewhere"), name="moved.yaml")
    with pytest.raises(
        FileNotFoundError, match=r"^Session directory not found: .*elsewhere \(`session_dir` of .*moved"
    ):
        load_dataset_configs(moved)
    no_dir = write_tree(tmp_path, PARENT.replace("session_dir: ./sessions\n", ""), name="nodir.yaml")
    with pytest.raises(
        ConfigError, match=r"nodir\.yaml: `session_dir`: Parent config must include 'session_dir' field"
    ):
        load_dataset_configs(no_dir)


def test_error_missing_or_malformed_sessions(tmp_path: Path) -> None:
    no_list = write_tree(tmp_path, "session_dir: ./sessions\nseed: 1\n", name="a.yaml")
    with pytest.raises(ConfigError, match=r"a\.yaml: `sessions`: Parent config must include 'sessions' field"):
        load_dataset_configs(no_list)
    empty = write_tree(tmp_path, "session_dir: ./sessions\nsessions: []\n", name="b.yaml")
    with pytest.raises(ConfigError, match=r"`sessions`: Parent config 'sessions' must be a non-empty list"):
        load_dataset_configs(empty)
    bad_entry = write_tree(tmp_path, "session_dir: ./sessions\nsessions: [Allen_2022-02-16, 3]\n", name="c.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml: `sessions\[1\]`: a session name must be a non-empty string"):
        load_dataset_configs(bad_entry)
    bad_weight = write_tree(
        tmp_path, "session_dir: ./sessions\nsessions: [{name: Allen_2022-02-16, weight: -1}]\n", name="d.yaml"
    )
    with pytest.raises(ConfigError, match=r"`sessions\[0\]\.weight`: `weight` must be a finite number > 0, got -1\.0"):
        load_dataset_configs(bad_weight)
    typo = write_tree(
        tmp_path, "session_dir: ./sessions\nsessions: [{name: Allen_2022-02-16, wieght: 2}]\n", name="e.yaml"
    )
    with pytest.raises(ConfigError, match=r"`sessions\[0\]`: unknown key\(s\) \['wieght'\]"):
        load_dataset_configs(typo)


def test_error_duplicate_session(tmp_path: Path) -> None:
    parent = write_tree(
        tmp_path, PARENT.replace("  - Logan_2020-02-29\n", "  - Logan_2020-02-29\n  - Allen_2022-03-04\n")
    )
    with pytest.raises(
        ConfigError, match=r"`sessions\[3\]`: duplicate session 'Allen_2022-03-04' \(also sessions\[1\]\)"
    ):
        load_dataset_configs(parent)


@pytest.mark.parametrize("name", ["../secret", "../../etc/passwd", "/etc/passwd", "a/../../x", ".."])
def test_error_session_name_escaping_session_dir(tmp_path: Path, name: str) -> None:
    (tmp_path / "secret.yaml").write_text("cids: [1]\n")  # exists, so only the check can stop it
    parent = write_tree(tmp_path, f"session_dir: ./sessions\nsessions: [Allen_2022-02-16, {name!r}]\n")
    with pytest.raises(ConfigError, match=r"`sessions\[1\]`: session name .* would resolve outside `session_dir`"):
        load_dataset_configs(parent)


def test_session_names_in_subfolders_of_session_dir_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "sessions" / "2022").mkdir(parents=True)
    (tmp_path / "sessions" / "2022" / "a.yaml").write_text("cids: [1]\n")
    parent = write_tree(tmp_path, "session_dir: sessions\nsessions: [2022/a]\n")
    assert [c["session"] for c in load_dataset_configs(parent)] == ["2022/a"]


def test_error_unsafe_yaml_tag_in_parent_and_session(tmp_path: Path) -> None:
    evil = "!!python/object/apply:os.system ['echo pwned']"
    parent = write_tree(tmp_path, PARENT + f"hook: {evil}\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: tags that build Python objects are not allowed"):
        load_dataset_configs(parent)
    sessions = {**SESSIONS, "Logan_2020-02-29": f"cids: {evil}\n"}
    parent = write_tree(tmp_path, PARENT, sessions=sessions)
    with pytest.raises(ConfigError, match=r"Logan_2020-02-29\.yaml: tags that build Python objects are not allowed"):
        load_dataset_configs(parent)


def test_error_invalid_yaml_duplicate_key_and_non_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: "):
        load_yaml(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: .*duplicate key 'seed'"):
        load_yaml(dup)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: the top level must be a mapping, got list"):
        load_yaml(listing)
    parent = write_tree(tmp_path, PARENT, sessions={**SESSIONS, "Logan_2020-02-29": "- 1\n"})
    with pytest.raises(ConfigError, match=r"Logan_2020-02-29\.yaml: the top level must be a mapping"):
        load_dataset_configs(parent)


def test_error_session_file_that_lists_sessions_or_sets_metadata(tmp_path: Path) -> None:
    parent = write_tree(tmp_path, sessions={**SESSIONS, "Logan_2020-02-29": "cids: [1]\nsessions: [x]\n"})
    with pytest.raises(ConfigError, match=r"Logan_2020-02-29\.yaml: `sessions`: a session file cannot set"):
        load_dataset_configs(parent)
    parent = write_tree(tmp_path, sessions={**SESSIONS, "Logan_2020-02-29": "cids: [1]\n_weight: 3\n"})
    with pytest.raises(ConfigError, match=r"`_weight`: \['_weight'\] are filled in by the loader"):
        load_dataset_configs(parent)


def test_warns_when_a_session_replaces_a_mapping_or_renames_itself(tmp_path: Path) -> None:
    sessions = {**SESSIONS, "Logan_2020-02-29": "cids: [1]\ntransforms:\n  stim: off\n"}
    parent = write_tree(tmp_path, sessions=sessions)
    with pytest.warns(UserWarning, match=r"`transforms\.stim` replaces the mapping of the parent with a bool"):
        configs = load_dataset_configs(parent)
    assert configs[2]["transforms"] == {"stim": False}
    sessions = {**SESSIONS, "Logan_2020-02-29": "cids: [1]\nsession: Logan_v2\n"}
    parent = write_tree(tmp_path, sessions=sessions)
    with pytest.warns(UserWarning, match=r"`session` is 'Logan_v2' but the parent lists it as 'Logan_2020-02-29'"):
        configs = load_dataset_configs(parent)
    assert configs[2]["session"] == "Logan_v2"


# -- extends ---------------------------------------------------------------------


def test_extends_chain_with_session_dir_from_the_base(tmp_path: Path) -> None:
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    write_tree(base_dir)  # base/parent.yaml with its sessions in base/sessions
    child = tmp_path / "child.yaml"
    child.write_text("extends: base/parent.yaml\nseed: 5\ntransforms:\n  stim:\n    expose_as: image\n")
    configs = load_dataset_configs(child)
    assert [c["session"] for c in configs] == ["Allen_2022-02-16", "Allen_2022-03-04", "Logan_2020-02-29"]
    assert configs[0]["seed"] == 5 and configs[2]["seed"] == 7  # child over base, session over both
    assert configs[0]["transforms"]["stim"] == {
        "source": "stim",
        "ops": [{"pixelnorm": {}}, {"unsqueeze": 0}],
        "expose_as": "image",
    }
    assert configs[0]["_config_path"] == str(base_dir / "sessions" / "Allen_2022-02-16.yaml")
    assert all("extends" not in c for c in configs)


def test_extends_cycle_is_detected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nx: 1\n")
    (tmp_path / "b.yaml").write_text("extends: [c.yaml]\n")
    (tmp_path / "c.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(
        ConfigError, match=r"`extends`: `extends` forms a cycle: .*a\.yaml -> .*b\.yaml -> .*c\.yaml -> .*a\.yaml"
    ):
        load_yaml_with_extends(tmp_path / "a.yaml")
    (tmp_path / "self.yaml").write_text("extends: self.yaml\n")
    with pytest.raises(ConfigError, match="forms a cycle"):
        load_dataset_configs(tmp_path / "self.yaml")


def test_extends_missing_base_and_malformed(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: gone.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"a\.yaml: `extends` names a missing file: .*gone\.yaml"):
        load_yaml_with_extends(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("extends: {path: x}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: `extends`: must be a path or a list of paths"):
        load_yaml_with_extends(tmp_path / "b.yaml")


def test_diamond_extends_is_not_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "root.yaml").write_text("a: {x: 1, y: 1}\n")
    (tmp_path / "l.yaml").write_text("extends: root.yaml\na: {x: 2}\n")
    (tmp_path / "r.yaml").write_text("extends: root.yaml\na: {y: 3}\n")
    (tmp_path / "top.yaml").write_text("extends: [l.yaml, r.yaml]\n")
    # each base is resolved whole, then merged in the order listed: r (root + y=3) re-sets x to root's 1
    assert load_yaml_with_extends(tmp_path / "top.yaml") == {"a": {"x": 1, "y": 3}}


# -- merge properties ------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "d"])
leaves = st.one_of(st.integers(-3, 3), st.text("xy", max_size=2), st.lists(st.integers(0, 3), max_size=3), st.none())
trees = st.recursive(leaves, lambda children: st.dictionaries(keys, children, min_size=1, max_size=3), max_leaves=10)
configs_st = st.dictionaries(keys, trees, max_size=4)


def flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def reference_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """Independent reference on flattened paths: an override leaf at p removes every base leaf at, under or above p."""
    b, o = flatten(base), flatten(override)

    def clash(p: tuple[str, ...], q: tuple[str, ...]) -> bool:
        n = min(len(p), len(q))
        return p[:n] == q[:n]

    kept = {q: v for q, v in b.items() if not any(clash(p, q) for p in o)}
    return {**kept, **o}


@settings(max_examples=300, deadline=None)
@given(configs_st, configs_st)
def test_deep_merge_matches_a_flattened_reference(base: dict[str, Any], override: dict[str, Any]) -> None:
    # trees have no empty mappings (min_size=1), where "merge" and "replace" would differ in the reference
    assert flatten(deep_merge(base, override)) == reference_merge(base, override)


shapes = st.recursive(st.just("leaf"), lambda kids: st.dictionaries(keys, kids, min_size=1, max_size=3), max_leaves=8)


@st.composite
def same_shape_configs(draw: Any, n: int) -> list[dict[str, Any]]:
    """``n`` configs that agree on which keys hold mappings (none replaces a mapping by a value)."""
    shape = draw(st.dictionaries(keys, shapes, max_size=4))

    def fill(node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, sub in node.items():
            if draw(st.booleans()):
                out[key] = draw(leaves) if sub == "leaf" else fill(sub)
        return out

    return [fill(shape) for _ in range(n)]


@settings(max_examples=300, deadline=None)
@given(same_shape_configs(3))
def test_deep_merge_is_associative(abc: list[dict[str, Any]]) -> None:
    a, b, c = abc
    assert deep_merge(deep_merge(a, b), c) == deep_merge(a, deep_merge(b, c))


def test_associativity_needs_that_no_level_replaces_a_mapping() -> None:
    # the documented exception, which the loaders warn about: b turns `x` into a value, c a mapping again
    a, b, c = {"x": {"y": 1}}, {"x": 5}, {"x": {"z": 2}}
    assert deep_merge(deep_merge(a, b), c) == {"x": {"z": 2}}
    assert deep_merge(a, deep_merge(b, c)) == {"x": {"y": 1, "z": 2}}


@settings(max_examples=200, deadline=None)
@given(configs_st, configs_st)
def test_deep_merge_never_aliases_or_mutates_its_inputs(base: dict[str, Any], override: dict[str, Any]) -> None:
    before = copy.deepcopy((base, override))
    merged = deep_merge(base, override)
    assert (base, override) == before
    originals = {id(x) for tree in (base, override) for x in _containers(tree)}
    assert not originals & {id(x) for x in _containers(merged)}


def _containers(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [tree, *(x for v in tree.values() for x in _containers(v))]
    if isinstance(tree, list):
        return [tree]
    return []


@settings(max_examples=60, deadline=None)
@given(abc=same_shape_configs(3))
def test_chained_parents_equal_either_grouping_of_merges(
    tmp_path_factory: pytest.TempPathFactory, abc: list[dict[str, Any]]
) -> None:
    a, b, c = abc
    root = tmp_path_factory.mktemp("chain")
    (root / "c.yaml").write_text(yaml.safe_dump(c))
    (root / "b.yaml").write_text(yaml.safe_dump({**b, "extends": "c.yaml"}))
    (root / "a.yaml").write_text(yaml.safe_dump({**a, "extends": "b.yaml"}))
    loaded = load_yaml_with_extends(root / "a.yaml")
    assert loaded == deep_merge(deep_merge(c, b), a) == deep_merge(c, deep_merge(b, a))
    # a two-file chain where the middle is pre-merged gives the same result
    (root / "bc.yaml").write_text(yaml.safe_dump(deep_merge(c, b)))
    (root / "a2.yaml").write_text(yaml.safe_dump({**a, "extends": "bc.yaml"}))
    assert load_yaml_with_extends(root / "a2.yaml") == loaded


def test_describe_round_trips_through_safe_load(tmp_path: Path) -> None:
    configs = load_dataset_configs(write_tree(tmp_path))
    text = describe(configs)
    assert text.startswith("# session Allen_2022-02-16 from ")
    assert list(yaml.safe_load_all(text)) == configs
    assert textwrap.dedent(text) == text


# -- reliability (#19): no hang, no recursion error, no unbounded message ----------------------------------------


def _list_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _map_bomb(levels: int = 9) -> str:
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: 1" for j in range(10)) + "}"]
    for i in range(1, levels + 1):
        inner = ", ".join(f"k{j}: *m{i - 1}" for j in range(10))
        lines.append(f"m{i}: &m{i} {{{inner}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(20)
def test_alias_bombs_are_refused_fast(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text(_list_bomb() + "sources: [{type: csv, csv: x, images: y, label_names: *a9}]\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expands to more than 1,000,000 values through YAML aliases"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "s").mkdir()
    (tmp_path / "p.yaml").write_text(_map_bomb() + "session_dir: s\nsessions: [a]\nrequired_keys: []\n")
    (tmp_path / "s" / "a.yaml").write_text("m9: {k0: 2}\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: expands to more than 1,000,000 values"):
        load_dataset_configs(tmp_path / "p.yaml")
    small = _list_bomb(levels=4)  # 10^5 values through aliases: legal, loaded
    (tmp_path / "ok.yaml").write_text(small)
    assert len(load_yaml(tmp_path / "ok.yaml")["a4"]) == 10


@pytest.mark.timeout(60)
def test_a_large_file_written_out_in_full_is_not_an_alias_bomb(tmp_path: Path) -> None:
    # 1.2 million values with no alias at all: the guard counts only what aliases add, so this loads
    n = 200_000
    rows = "".join(f"  - {{name: s{i}, w: {i}, tags: [a, b, c]}}\n" for i in range(n))
    (tmp_path / "big.yaml").write_text("sources:\n" + rows)
    loaded = load_yaml(tmp_path / "big.yaml")
    assert len(loaded["sources"]) == n and loaded["sources"][-1] == {
        "name": f"s{n - 1}",
        "w": n - 1,
        "tags": ["a", "b", "c"],
    }


def test_deep_nesting_long_extends_chains_and_bad_text_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("x: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: is nested too deeply to read"):
        load_yaml(tmp_path / "deep.yaml")
    for i in range(100):
        (tmp_path / f"c{i}.yaml").write_text(f"extends: c{i + 1}.yaml\nv{i}: 1\n" if i < 99 else "v99: 1\n")
    with pytest.raises(ConfigError, match=r"`extends`: `extends` chains more than 64 files"):
        load_yaml_with_extends(tmp_path / "c0.yaml")
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: is not UTF-8 text \(invalid continuation byte at byte 9\)"):
        load_yaml(tmp_path / "latin1.yaml")


def test_unusual_but_valid_python_input_gets_named_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="`base` must be a mapping, got list"):
        deep_merge([], {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`override` must be a mapping, got str"):
        deep_merge({}, "x")  # type: ignore[arg-type]
    (tmp_path / "s").mkdir()
    (tmp_path / "p.yaml").write_text("session_dir: s\nsessions: [{name: a, 3: x}]\n")
    with pytest.raises(ConfigError, match=r"`sessions\[0\]`: unknown key\(s\) \['3'\]"):  # was: '<' not supported
        load_dataset_configs(tmp_path / "p.yaml")
