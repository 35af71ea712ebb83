"""Read side of the data: the packed 28x28 cache, the committed split, and where both live.

Only numpy and the standard library are imported here: this module is copied into the grading
sandbox, which must not need the build tools (Pillow, the downloader).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omniglot_data.errors import DataNotFoundError
from omniglot_data.identify import DrawingIndex

PACKAGE_DIR = Path(__file__).resolve().parent
SPLIT_FILE = PACKAGE_DIR / "split.json"
SPLIT_NAMES = ("train", "val", "test")

CACHE_NAME = "omniglot28.npz"
MANIFEST_NAME = "omniglot28.json"
PNG_TREE_NAME = "omniglot_resized"

SETUP_HINT = "run `bash data_download.sh` (or `python -m omniglot_data`) from the repository root"


def data_dir() -> Path:
    """`$OMNIGLOT_DATA_DIR` if set, else `<repo>/data` (the folder next to this package)."""
    override = os.environ.get("OMNIGLOT_DATA_DIR")
    return Path(override).expanduser().resolve() if override else PACKAGE_DIR.parent / "data"


@functools.lru_cache(maxsize=None)
def _load_split_file(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: split file missing (it ships with the omniglot_data package)") from None
    return {name: tuple(document[name]) for name in SPLIT_NAMES}


def load_split() -> dict[str, list[str]]:
    """The committed split: {"train": 1100 names, "val": 100, "test": 423}, names "Alphabet/characterNN", sorted."""
    return {name: list(names) for name, names in _load_split_file(SPLIT_FILE).items()}


@dataclass(frozen=True, eq=False)
class OmniglotStore:
    """All of Omniglot at 28x28, one row per character, as ink (strokes 255, background 0).

    Divide `images` by 255 to get the float ink convention used everywhere (strokes 1.0).
    The arrays are read-only because one store is shared by every caller in the process.
    """

    root: Path
    images: np.ndarray  # uint8 [characters, drawings, 28, 28], ink
    characters: list[str]  # "Alphabet/characterNN", row order
    drawings: np.ndarray  # str [characters, drawings], file stems "IIII_DD"
    _row_of: dict[str, int] = field(init=False, repr=False)
    _drawing_index: DrawingIndex | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row_of", {name: row for row, name in enumerate(self.characters)})

    def __repr__(self) -> str:  # short: a failing test that shows the store must not print 8 MB of pixels
        characters, drawings = self.images.shape[:2]
        return f"OmniglotStore({str(self.root)!r}, {characters} characters x {drawings} drawings)"

    def row(self, name: str) -> int:
        """Row of character `name` ("Alphabet/characterNN") in `images`."""
        try:
            return self._row_of[name]
        except KeyError:
            raise KeyError(f"unknown Omniglot character {name!r}: expected 'Alphabet/characterNN', "
                           f"e.g. {self.characters[0]!r}") from None

    def rows(self, split: str) -> np.ndarray:
        """Rows of the characters of a split ("train", "val" or "test"), in the split file's (sorted) order."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLIT_NAMES)}")
        names = _load_split_file(SPLIT_FILE)[split]
        if any(name not in self._row_of for name in names):
            raise DataNotFoundError(f"the {split} split is not in {self.root / CACHE_NAME}: this copy of the data "
                                    f"holds only part of Omniglot (the grader withholds the test characters while "
                                    f"your code trains)")
        return np.array([self._row_of[name] for name in names], dtype=np.int64)

    def write_subset(self, splits: tuple[str, ...], target_dir: str | os.PathLike) -> Path:
        """Write a packed cache holding only the characters of `splits` into target_dir; return its path.

        The grader gives this to code that trains, so that it cannot look up the characters it is tested on.
        """
        keep = np.sort(np.concatenate([self.rows(split) for split in splits]))
        target = Path(target_dir) / CACHE_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            np.savez(handle, images=self.images[keep], characters=np.array(self.characters)[keep],
                     drawings=self.drawings[keep])
        return target

    def png_path(self, name: str, drawing_index: int) -> Path:
        """The 28x28 PNG of drawing `drawing_index` (0..19, row order of `drawings`) of character `name`."""
        stem = self.drawings[self.row(name), drawing_index]
        return self.root / PNG_TREE_NAME / name / f"{stem}.png"

    def drawing_index(self) -> DrawingIndex:
        """The index that finds which (row, drawing) of this store an image is (`DrawingIndex.find`), built once."""
        if self._drawing_index is None:
            object.__setattr__(self, "_drawing_index", DrawingIndex(self))
        return self._drawing_index


@functools.lru_cache(maxsize=None)
def _load_store(root: Path) -> OmniglotStore:
    cache = root / CACHE_NAME
    if not cache.is_file():
        raise DataNotFoundError(f"Omniglot data not found: {cache} is missing; {SETUP_HINT}")
    # The cache is written to a temporary name and renamed into place, so if it exists it is whole.
    with np.load(cache, allow_pickle=False) as packed:
        images, characters, drawings = packed["images"], packed["characters"], packed["drawings"]
    images.setflags(write=False)
    drawings.setflags(write=False)
    return OmniglotStore(root=root, images=images, characters=characters.tolist(), drawings=drawings)


def load_store(data_dir: str | os.PathLike | None = None) -> OmniglotStore:
    """The packed cache of `data_dir` (default: `data_dir()`), loaded once per process."""
    root = Path(data_dir).expanduser().resolve() if data_dir is not None else _default_data_dir()
    return _load_store(root)


_default_data_dir = data_dir  # `load_store`'s parameter shadows the function of the same name
