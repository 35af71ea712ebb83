"""Harness side of the HW1 grader: which Omniglot drawing an image is, and trusted N-way K-shot episodes.

Imported by the grader tests and by `metrics.py` (never shipped to the worker). Works on the packed store of
`omniglot_data` in the same pixel convention as the homework: float32 ink, `store.images / 255`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from omniglot_data import load_store

# An image counts as a drawing of the store when every pixel is within this of k/255 for an integer k (float32
# spacing near 1 is 6e-8: a correct loader that divides or subtracts in another order is off by ~1e-7 at most).
PIXEL_TOLERANCE = 1e-5
# The lenient lookup (`identify(..., lenient=True)`): a quarter of an ink level, so float16 ink still identifies.
LENIENT_TOLERANCE = 0.25 / 255


def to_ink(images) -> tuple[np.ndarray, list[str]]:
    """`images` ([..., 784]) mapped back to ink in float64 under the common normalisation slips, and which slips
    were undone (in the words a student needs). Decided per image: Omniglot is mostly background, so an ink drawing's
    median is at most 1/255 and an inverted one's at least 254/255. Zeros, constants and noise identify as nothing
    either way.
    """
    x = np.array(images, dtype=np.float64)
    slips = []
    scale = x.max(axis=-1, keepdims=True) > 1.5
    if scale.any():
        slips.append("scaled 0..255 instead of 0..1 (divide by 255)")
        x = np.where(scale, x / 255, x)
    signed = x.min(axis=-1, keepdims=True) < -0.5
    if signed.any():
        slips.append("scaled to -1..1 instead of 0..1")
        x = np.where(signed, (x + 1) / 2, x)
    inverted = np.median(x, axis=-1, keepdims=True) > 0.5
    if inverted.any():
        slips.append("inverted: background 1.0 and strokes 0.0, the PNG's convention (ink is 1 - png / 255)")
        x = np.where(inverted, 1 - x, x)
    return x, slips


@lru_cache(maxsize=4)
def store_and_index(data_dir: str | None):
    store = load_store(data_dir)
    return store, DrawingIndex(store)


class DrawingIndex:
    """Identifies images as (character row, drawing index) of the store, tolerating float rounding.

    The exact lookup is the store's own (`store.drawing_index()`, shared with the public tests); this adds the
    grader's tolerance: an image counts as a drawing when each pixel is within PIXEL_TOLERANCE of some k/255, so a
    correct loader that computes the ink in another order of float operations (`1 - (255 - p) / 255` in float32
    is off by one ulp for 159 of the 256 levels) or returns float64 is judged on which drawing it loaded, and only
    the type test cares about its dtype.

    Identical drawings exist (Braille/character01 drawings 0192_03 and 0192_19 are byte-identical), so an image
    identifies as the SET of all (row, drawing) pairs holding exactly its pixels; checks treat that set as
    candidates and never fail a generator over a genuine duplicate.
    """

    def __init__(self, store):
        self.store = store
        self._exact = store.drawing_index()

    def identify(self, image: np.ndarray, lenient: bool = False) -> tuple[tuple[int, int], ...]:
        """All (row, drawing) pairs whose pixels equal `image` (784 ink values); () when none does.

        `lenient` first undoes the normalisation slips of `to_ink` (0..255, inverted, -1..1) and allows a quarter
        ink level: whether the code loaded real drawings, for the checks of everything but the pixel convention.
        """
        if lenient:
            image = to_ink(np.asarray(image).reshape(-1))[0]
        scaled = np.asarray(image, dtype=np.float64).reshape(-1) * 255.0
        if scaled.size != self.store.images[0, 0].size or not np.all(np.isfinite(scaled)):
            return ()
        levels = np.rint(scaled)
        tolerance = LENIENT_TOLERANCE if lenient else PIXEL_TOLERANCE
        if np.abs(scaled - levels).max() > tolerance * 255.0 or levels.min() < 0 or levels.max() > 255:
            return ()
        return tuple(self._exact.find(levels.astype(np.float32) / np.float32(255)))

    def same_pixels(self, row: int, drawing: int) -> int:
        """How many drawings of character `row` hold exactly the pixels of drawing `drawing` (itself included)."""
        image = self.store.images[row, drawing].reshape(-1).astype(np.float32) / np.float32(255)
        return sum(1 for r, _ in self._exact.find(image) if r == row)


def class_members(images: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Per class c of an episode whose every row labels each class once (one-hot): the K+1 images labelled c, one
    per row, as [K+1, 784]. Read from the labels of every row, so support rows out of class order (charged by
    their own test) still say which images belong together."""
    classes = np.asarray(labels).argmax(-1)  # [K+1, N]
    rows = np.arange(classes.shape[0])
    return [images[rows, np.argmax(classes == c, axis=-1)] for c in range(classes.shape[1])]


def character_groups(index: DrawingIndex, images: np.ndarray) -> list[np.ndarray] | None:
    """The images of one episode ([..., 784]) grouped by the character they show, whatever their labels and
    positions; None when some image is no drawing (lenient lookup). The store's only byte-identical drawings are
    two of one character, so an image's character is never ambiguous."""
    groups: dict[int, list[np.ndarray]] = {}
    for image in np.asarray(images).reshape(-1, np.asarray(images).shape[-1]):
        found = index.identify(image, lenient=True)
        if not found:
            return None
        groups.setdefault(found[0][0], []).append(image)
    return [np.stack(group) for group in groups.values()]


@dataclass(frozen=True)
class ClassIdentity:
    """What the drawings of one class of an episode are."""

    unknown: int  # images that are no drawing of the store
    characters: frozenset[int]  # rows that hold every image of the class (usually exactly one)
    distinct: bool  # the images can be distinct drawings of one of those characters


def identify_class(index: DrawingIndex, drawings: np.ndarray, lenient: bool = False) -> ClassIdentity:
    candidates = [index.identify(image, lenient) for image in drawings]
    unknown = sum(1 for c in candidates if not c)
    if unknown:
        return ClassIdentity(unknown, frozenset(), False)
    rows = frozenset.intersection(*(frozenset(r for r, _ in c) for c in candidates))
    distinct = False
    for row in rows:
        # Images with identical pixels are interchangeable: `count` copies need `count` drawings of that character
        # holding those pixels.
        keys: dict[bytes, tuple[int, int]] = {}
        counts: dict[bytes, int] = {}
        for image, found in zip(drawings, candidates):
            pair = next(p for p in found if p[0] == row)
            key = index.store.images[pair].reshape(-1).tobytes()
            keys[key] = pair
            counts[key] = counts.get(key, 0) + 1
        if all(counts[key] <= index.same_pixels(*keys[key]) for key in counts):
            distinct = True
            break
    return ClassIdentity(0, rows, distinct)


def distinct_characters(classes: list[ClassIdentity]) -> bool:
    """Whether the classes can be given pairwise different characters (a bipartite matching: with duplicate
    drawings across characters a class may have several candidates)."""
    owner: dict[int, int] = {}

    def assign(c: int, seen: set[int]) -> bool:
        for row in classes[c].characters:
            if row in seen:
                continue
            seen.add(row)
            if row not in owner or assign(owner[row], seen):
                owner[row] = c
                return True
        return False

    return all(assign(c, set()) for c in range(len(classes)))


def draw_episodes(store, split: str, num_classes: int, samples_per_class: int, count: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` correct episodes of `split` from numpy's generator seeded with `seed` (trusted: harness code).

    Returns float32 images [count, K+1, N, 784] and one-hot labels [count, K+1, N, N]: support rows in class
    order, the query row in random order, N distinct characters and K+1 distinct drawings of each.
    """
    rng = np.random.default_rng(seed)
    rows = store.rows(split)
    num_drawings = store.images.shape[1]
    side = store.images.shape[-1]
    characters = np.stack([rng.choice(rows, size=num_classes, replace=False) for _ in range(count)])
    drawings = np.argsort(rng.random((count, num_classes, num_drawings)), axis=-1)[..., :samples_per_class]
    drawings = drawings.transpose(0, 2, 1)  # [count, K+1, N]
    images = store.images[characters[:, np.newaxis, :], drawings].reshape(count, samples_per_class, num_classes,
                                                                           side * side)
    images = images.astype(np.float32) / np.float32(255)
    labels = np.broadcast_to(np.eye(num_classes, dtype=np.float32),
                             (count, samples_per_class, num_classes, num_classes)).copy()
    order = np.argsort(rng.random((count, num_classes)), axis=-1)
    episode = np.arange(count)[:, np.newaxis]
    images[:, -1] = images[episode, -1, order]
    labels[:, -1] = labels[episode, -1, order]
    return images, labels


def hide_query_labels(labels: np.ndarray) -> np.ndarray:
    """A copy of `labels` whose query row is all zeros: what the learner may see at evaluation."""
    hidden = labels.copy()
    hidden[:, -1] = 0
    return hidden
