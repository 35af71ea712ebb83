"""Which drawing of the store an image is: for tests that check episodes by looking at their pixels.

Only numpy is imported here (like `store`, this module is copied into the grading sandbox).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from omniglot_data.store import OmniglotStore


class DrawingIndex:
    """Finds the (character row, drawing index) pairs of the store that an image is, by exact pixel value.

    Build it with `store.drawing_index()` (built once per store, about 0.1 s). An image matches a drawing when it is
    exactly `store.images[row, drawing] / 255` as float32, the homework's pixel convention. Omniglot holds identical
    drawings (Braille/character01 drawings 0192_03 and 0192_19 are byte-identical), so `find` returns every match.
    """

    def __init__(self, store: OmniglotStore):
        self.store = store
        num_drawings = store.images.shape[1]
        flat = store.images.reshape(-1, store.images.shape[-2] * store.images.shape[-1])
        self._pixel_count = flat.shape[1]
        self._locations: dict[bytes, list[tuple[int, int]]] = {}
        for position, pixels in enumerate(flat):
            self._locations.setdefault(pixels.tobytes(), []).append(divmod(position, num_drawings))

    def find(self, image: np.ndarray) -> list[tuple[int, int]]:
        """Every (row, drawing) whose `store.images[row, drawing] / 255` (float32) equals `image` exactly, in store
        order; [] when `image` is no drawing of the store (another dtype or size, another scale, altered pixels)."""
        image = np.asarray(image)
        if image.dtype != np.float32 or image.size != self._pixel_count or not np.all((image >= 0) & (image <= 1)):
            return []
        pixels = np.rint(image.reshape(-1) * 255).astype(np.uint8)
        # The lookup rounds to the nearest ink level; comparing back rejects images that are only close to one.
        if not np.array_equal(pixels.astype(np.float32) / np.float32(255), image.reshape(-1)):
            return []
        return list(self._locations.get(pixels.tobytes(), ()))
