"""`OmniglotStore.drawing_index()`: which (row, drawing) of the real store an image is, by exact pixel value."""

from __future__ import annotations

import numpy as np
import pytest

from omniglot_data import DataNotFoundError, DrawingIndex, load_store


@pytest.fixture(scope="module")
def store():
    try:
        return load_store()
    except DataNotFoundError as error:
        pytest.skip(f"the drawing index is tested on the real store: {error}")


@pytest.fixture(scope="module")
def index(store):
    return store.drawing_index()


def as_float(store, row, drawing):
    """A drawing in the homework's convention: float32 ink in [0, 1]."""
    return store.images[row, drawing].astype(np.float32) / 255


def braille_pair(store):
    row = store.row("Braille/character01")
    stems = store.drawings[row].tolist()
    return row, stems.index("0192_03"), stems.index("0192_19")


def test_index_is_built_once_per_store(store, index):
    assert isinstance(index, DrawingIndex)
    assert store.drawing_index() is index


def test_the_byte_identical_braille_drawings_are_both_candidates(store, index):
    row, first, second = braille_pair(store)
    assert np.array_equal(store.images[row, first], store.images[row, second])
    assert index.find(as_float(store, row, first)) == [(row, first), (row, second)]
    assert index.find(as_float(store, row, second)) == [(row, first), (row, second)]


def test_every_other_drawing_is_found_exactly_at_its_place(store, index):
    row, first, second = braille_pair(store)
    images = store.images.astype(np.float32) / 255
    several = {}
    for r, d in np.ndindex(*store.images.shape[:2]):
        found = index.find(images[r, d])
        assert (r, d) in found, f"{store.characters[r]} drawing {d} not found: {found}"
        if len(found) > 1:
            several[r, d] = found
    assert set(several) == {(row, first), (row, second)}


@pytest.mark.parametrize("shape", [(784,), (1, 28, 28), (28, 28)])
def test_any_layout_of_the_784_pixels_is_found(store, index, shape):
    assert index.find(as_float(store, 7, 3).reshape(shape)) == [(7, 3)]


def test_images_that_are_no_exact_drawing_are_not_found(store, index):
    image = as_float(store, 7, 3)
    assert index.find(image) == [(7, 3)]
    assert index.find(image.astype(np.float64)) == [], "only float32 is the homework's convention"
    assert index.find(store.images[7, 3]) == [], "raw uint8 ink is not divided by 255"
    assert index.find(image * np.float32(255)) == [], "0..255 floats are the wrong scale"
    assert index.find(1 - image) == [], "paper convention (strokes 0) is inverted"
    assert index.find(image.reshape(-1)[:-1]) == [], "783 pixels"
    nudged = image.copy()
    ink = np.flatnonzero(nudged.reshape(-1))[0]
    nudged.reshape(-1)[ink] = np.nextafter(nudged.reshape(-1)[ink], np.float32(0))
    assert index.find(nudged) == [], "one pixel one float32 step off an ink level"
    poisoned = image.copy()
    poisoned[0, 0] = np.nan
    assert index.find(poisoned) == []
    assert index.find(np.zeros((28, 28), np.float32)) == [], "no Omniglot drawing is blank"
