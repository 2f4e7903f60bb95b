"""Compare two report.json files number by number; exit 1 and list the keys that differ.

    python scripts/compare_reports.py A/report.json B/report.json [--rtol 0]

Every number (recursively through dicts and lists), every boolean and every string is compared;
keys that hold wall-clock times (``seconds``, ``*_s``, ``samples_per_s``, ...), process ids and
file paths are skipped, since they differ between two runs of the same code. A key present on one
side only is a difference. With ``--rtol`` numbers may differ by that relative tolerance.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Iterator

#: Keys whose values are wall-clock times, process ids or machine-specific paths, and the lava
#: worker's reuse counters (a network built or reused depends on what the process ran before).
IGNORED = re.compile(r"^(seconds|.*_s|samples_per_s|.*_seconds|pgid|path|.*_path|.*_file|.*_dir|work_dir"
                     r"|builds|workers_started|lava_steps)$")


def _leaf_equal(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b or (rtol > 0 and math.isclose(a, b, rel_tol=rtol, abs_tol=0.0))
    return a == b


def differences(a: Any, b: Any, rtol: float = 0.0, where: str = "") -> Iterator[str]:
    """The paths (``targets.lava.accuracy``, ``source.layers[2].sa``) where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if IGNORED.match(str(key)):
                continue
            path = f"{where}.{key}" if where else str(key)
            if key not in b:
                yield f"{path}: only in A"
            elif key not in a:
                yield f"{path}: only in B"
            else:
                yield from differences(a[key], b[key], rtol, path)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, rtol, f"{where}[{i}]")
    elif not _leaf_equal(a, b, rtol):
        yield f"{where}: {_short(a)} != {_short(b)}"


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default 0: exact)")
    args = p.parse_args(argv)
    reports = []
    for path in (args.a, args.b):
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            print(f"compare_reports: {path}: {e}", file=sys.stderr)
            return 2
    diffs = list(differences(*reports, rtol=args.rtol))
    for d in diffs:
        print(d)
    print(f"{len(diffs)} difference(s) between {args.a} and {args.b}" if diffs else
          f"{args.a} and {args.b} agree on every compared value")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
