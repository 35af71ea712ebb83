"""The committed train/val/test split of the 1623 characters, and the procedure that produced it.

    python -m omniglot_data.split --check   # regenerate from the built data and compare with split.json
    python -m omniglot_data.split --write   # (re)write split.json (only if the procedure ever changes)

One split for both homeworks: CS330 used two different splits, each depending on directory listing order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from omniglot_data.errors import DataError
from omniglot_data.store import SPLIT_FILE, SPLIT_NAMES, load_store

SEED = 0
SIZES = {"train": 1100, "val": 100, "test": 423}
PROCEDURE = (
    "all 1623 character names 'Alphabet/characterNN' sorted in C-locale (byte) order; "
    f"permuted with numpy.random.default_rng({SEED}).permutation; first {SIZES['train']} train, "
    f"next {SIZES['val']} val, last {SIZES['test']} test; each list then sorted the same way"
)


def _c_sorted(names) -> list[str]:
    return sorted(names, key=lambda name: name.encode("utf-8"))


def make_split(names: list[str], sizes: dict[str, int] = SIZES, seed: int = SEED) -> dict[str, list[str]]:
    """The split of `names` by the documented procedure (independent of the order `names` come in)."""
    if len(set(names)) != len(names):
        raise ValueError("character names must be unique")
    if sum(sizes.values()) != len(names):
        raise ValueError(f"split sizes {sizes} add up to {sum(sizes.values())}, not to the {len(names)} names")
    ordered = _c_sorted(names)
    permuted = [ordered[index] for index in np.random.default_rng(seed).permutation(len(ordered))]
    split, start = {}, 0
    for name in SPLIT_NAMES:
        split[name] = _c_sorted(permuted[start:start + sizes[name]])
        start += sizes[name]
    return split


def split_document(split: dict[str, list[str]]) -> dict:
    return {"procedure": PROCEDURE, "seed": SEED, "counts": {name: len(split[name]) for name in SPLIT_NAMES},
            **{name: split[name] for name in SPLIT_NAMES}}


def render(split: dict[str, list[str]]) -> str:
    return json.dumps(split_document(split), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omniglot_data.split", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help=f"regenerate and compare with {SPLIT_FILE.name}")
    action.add_argument("--write", action="store_true", help=f"regenerate and write {SPLIT_FILE.name}")
    parser.add_argument("--data-dir", type=Path, default=None, help="build to take the character names from")
    args = parser.parse_args(argv)
    try:
        expected = render(make_split(load_store(args.data_dir).characters))
    except DataError as error:
        print(f"omniglot_data.split: error: {error}", file=sys.stderr)
        return error.exit_code
    if args.write:
        SPLIT_FILE.write_text(expected, encoding="utf-8")
        print(f"wrote {SPLIT_FILE}")
        return 0
    actual = SPLIT_FILE.read_text(encoding="utf-8") if SPLIT_FILE.is_file() else ""
    if actual != expected:
        print(f"{SPLIT_FILE}: differs from the split the documented procedure gives; "
              f"regenerate with `python -m omniglot_data.split --write` only if the procedure changed on purpose",
              file=sys.stderr)
        return 1
    print(f"{SPLIT_FILE}: matches the documented procedure ({', '.join(f'{k} {v}' for k, v in SIZES.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
