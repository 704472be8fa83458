"""Score a finished ``mutmut run`` per module, leaving out message-only and documented equivalent mutants.

Run from the repository root after ``mutmut run`` (``make mutation`` does both)::

    python tools/mutation_report.py [--markdown] [--list-survivors] [--list-messages]

A mutant is *message-only* when it changes nothing but the wording of an
error: a string (or ``None`` in its place, or a dropped name argument) inside
a ``raise``, a warning, an exception constructor or an argument checker such as
``check_weights(w, "sample_weights")``, whose name argument only words its
messages. Behaviour is unchanged except for the words of an error. Those
are reported in their own column, not counted in the score. *Equivalent*
mutants (a change no test can observe, each with its reason) are listed in
``tools/mutation_equivalent.txt`` and are also left out. Timeouts count as
killed (the mutant made the tests hang), "no tests" counts as not killed, and
mutants not run yet are shown apart and left out of the score (it says so).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.txt"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def results() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    statuses = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def module_of(name: str) -> str:
    """``mixweave.core.draw.x_f__mutmut_3`` and ``mixweave.core.draw.xǁCǁm__mutmut_1`` -> ``mixweave.core.draw``."""
    head = name.split("__mutmut_")[0]
    return head[: head.rfind(".x")]


def diff_of(name: str) -> str:
    return subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True).stdout


#: Calls whose string arguments only word an error: warnings, exceptions and the argument checkers
#: (``check_weights(w, "sample_weights")`` names the argument in its message and nowhere else).
MESSAGE_CALLS = {"warn", "show", "did_you_mean", "_counts", "_per_class", "_require_positive", "dispatch"}
MESSAGE_PREFIXES = ("check_", "_check", "Config", "Located")


def _is_message_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return called in MESSAGE_CALLS or called.startswith(MESSAGE_PREFIXES) or called.endswith(("Error", "Warning"))


def _wording(node: ast.AST | None) -> bool:
    """A node that only words a message: a string, an f-string, or None standing in for one."""
    return (
        node is None
        or (isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)))
        or (isinstance(node, (ast.JoinedStr, ast.FormattedValue)))
    )


def _differences(a: ast.AST, b: ast.AST, path: list[ast.AST]) -> list[tuple[ast.AST | None, ast.AST | None, list]]:
    """The smallest differing node pairs of two trees, each with the original's ancestors."""
    if ast.dump(a) == ast.dump(b):
        return []
    if type(a) is not type(b):
        return [(a, b, path)]
    out = []
    for field in a._fields:
        x, y = getattr(a, field, None), getattr(b, field, None)
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                extra = [n for n in x if ast.dump(n) not in {ast.dump(m) for m in y}]
                return [(n, None, [*path, a]) for n in extra] or [(a, b, path)]
            for n, m in zip(x, y, strict=True):
                if isinstance(n, ast.AST) and isinstance(m, ast.AST):
                    out += _differences(n, m, [*path, a])
                elif n != m:
                    return [(a, b, path)]
        elif isinstance(x, ast.AST) and isinstance(y, ast.AST):
            out += _differences(x, y, [*path, a])
        elif x != y:
            return [(a, b, path)]
    return out


def _function_source(name: str) -> str | None:
    """The original source of the function a mutant belongs to (``mutmut show`` prints only a hunk)."""
    head = name.split("__mutmut_")[0]
    module, _, mangled = head.rpartition(".")
    path = ROOT / "src" / Path(*module.split(".")).with_suffix(".py")
    parts = mangled[1:].split("ǁ") if mangled.startswith("xǁ") else [mangled[2:]]
    parts = [p for p in parts if p]
    tree = ast.parse(path.read_text())
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in parts:
        node = next((n for n in scope if getattr(n, "name", None) == part), None)
        if node is None:
            return None
        scope = getattr(node, "body", [])
    if node is None:
        return None
    lines = path.read_text().splitlines()
    return "\n".join(lines[node.lineno - 1 : node.end_lineno])  # type: ignore[attr-defined]


def message_only(name: str, diff: str) -> bool:
    """A mutant that changes only the wording of errors: strings (or None for them) inside raises, warnings,
    exception constructors and argument checkers."""
    source = _function_source(name)
    body = [ln for ln in diff.splitlines() if ln[:1] in " -+" and not ln.startswith(("---", "+++"))]
    removed = [ln[1:] for ln in body if ln.startswith("-")]
    added = [ln[1:] for ln in body if ln.startswith("+")]
    if source is None or not removed:
        return False
    block = "\n".join(removed)
    if block not in source:
        return False
    original = textwrap.dedent(source)
    mutated = textwrap.dedent(source.replace(block, "\n".join(added), 1))
    try:
        a, b = ast.parse(original), ast.parse(mutated)
    except SyntaxError:
        return False
    found = _differences(a, b, [])
    if not found:
        return False
    for old, new, ancestors in found:
        if not (_wording(old) and _wording(new)):
            return False
        if not any(isinstance(n, ast.Raise) or _is_message_call(n) for n in ancestors):
            return False
    return True


def equivalents() -> dict[str, str]:
    if not EQUIVALENT.is_file():
        return {}
    out = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            out[name] = reason.strip()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the docs/testing.md table")
    parser.add_argument("--list-survivors", action="store_true", help="print each counted survivor's name")
    parser.add_argument(
        "--list-messages", action="store_true", help="print each message-only survivor (a message no test matches)"
    )
    args = parser.parse_args()
    statuses = results()
    if not statuses:
        print("no mutmut results: run `mutmut run` first (make mutation)", file=sys.stderr)
        return 2
    equivalent = equivalents()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    unmatched: dict[str, list[str]] = defaultdict(list)
    for name, status in sorted(statuses.items()):
        module = module_of(name)
        if status in KILLED:
            counts[module]["killed"] += 1
        elif status == "not checked":
            counts[module]["unchecked"] += 1
        elif name in equivalent:
            counts[module]["equivalent"] += 1
        elif status in ("survived", "no tests") and message_only(name, diff_of(name)):
            counts[module]["message"] += 1
            unmatched[module].append(name)
        else:
            counts[module]["survived" if status == "survived" else "other"] += 1
            survivors[module].append(f"{name} ({status})")
    header = "| module | mutants | killed | not killed | message-only | equivalent | not run | score |"
    print(header if args.markdown else header.replace("|", " ").strip())
    if args.markdown:
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for module, c in sorted(counts.items()):
        counted = c["killed"] + c["survived"] + c["other"]
        score = 100.0 * c["killed"] / counted if counted else 100.0
        cells = [module, sum(c.values()), c["killed"], c["survived"] + c["other"], c["message"], c["equivalent"]]
        partial = " (of those run)" if c["unchecked"] else ""
        shown = f"{score:.1f}%{partial}" if counted else "not run"
        row = [*map(str, cells), str(c["unchecked"]), shown]
        print("| " + " | ".join(row) + " |" if args.markdown else "  ".join(row))
    listed = [survivors] if args.list_survivors else []
    listed += [unmatched] if args.list_messages else []
    for names_of in listed:
        for module, names in sorted(names_of.items()):
            print(f"\n{module}:")
            for n in names:
                print(f"  {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
