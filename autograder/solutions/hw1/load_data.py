"""Omniglot N-way K-shot episodes for black-box meta-learning (HW1, part 1).

An episode (a "task") is N characters drawn from one split of Omniglot and K+1 drawings of each: K labelled support
drawings per class, then one query drawing per class whose label the learner must predict.

    from load_data import DataGenerator
    generator = DataGenerator(num_classes=5, num_samples_per_class=2, batch_type="train", config={"seed": 0})
    images, labels = generator._sample()   # float32 [K+1, N, 784], float32 one-hot [K+1, N, N]

`DataGenerator` is an `IterableDataset`, so `torch.utils.data.DataLoader(generator, batch_size=B)` yields batches
`images [B, K+1, N, 784]`, `labels [B, K+1, N, N]`.

Pixels are ink: strokes 1.0, background 0.0. The drawings come from the packed store that `bash data_download.sh`
builds (fast, the default) or, with `cache=False`, are decoded from the PNG files; both give identical arrays.
"""

from __future__ import annotations

import os

import imageio.v3 as imageio
import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from omniglot_data import load_store

IMAGE_SIDE = 28
IMAGE_SIZE = IMAGE_SIDE * IMAGE_SIDE  # 784: one drawing, flattened
DRAWINGS_PER_CHARACTER = 20
BATCH_TYPES = ("train", "val", "test")
CONFIG_KEYS = ("seed", "data_dir")


def image_file_to_array(filename: str | os.PathLike, dim_input: int) -> np.ndarray:
    """Read a grayscale PNG as a float32 vector of `dim_input` ink values (strokes 1.0, background 0.0).

    The value is `1 - pixel / 255`, computed as `(255 - pixel) / 255` in float32 so that it equals, bit for bit,
    the packed store's `images / 255`.
    """
    pixels = imageio.imread(filename)
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError(f"{filename}: expected an 8-bit grayscale image, got dtype {pixels.dtype} "
                         f"and shape {pixels.shape}")
    if pixels.size != dim_input:
        raise ValueError(f"{filename}: expected {dim_input} pixels, the image is {pixels.shape[0]}x{pixels.shape[1]}")
    return (255 - pixels).reshape(dim_input).astype(np.float32) / np.float32(255)


def derive_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (e.g. run seed, stream id, step), so that related streams differ."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class DataGenerator(IterableDataset):
    """Endless stream of N-way K-shot episodes from one split of Omniglot.

    Args:
        num_classes: N, characters per episode.
        num_samples_per_class: K + 1, drawings per character (K support drawings and 1 query drawing).
        batch_type: the split to draw characters from: "train", "val" or "test".
        config: optional settings: "seed" (int: makes the stream repeatable; default: fresh randomness) and
            "data_dir" (folder holding the built data; default: `omniglot_data.data_dir()`).
        cache: True reads drawings from the packed in-memory store; False decodes each PNG file on every use.

    All randomness of an episode must come from `self.rng` (a `numpy.random.Generator`) so that a seed makes the
    stream repeatable. Inside `DataLoader` worker processes each worker gets its own stream (see `__iter__`).
    """

    def __init__(self, num_classes: int, num_samples_per_class: int, batch_type: str, config: dict | None = None,
                 cache: bool = True):
        config = dict(config or {})
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"DataGenerator config: unknown key(s) {unknown}; expected only {list(CONFIG_KEYS)}")
        if batch_type not in BATCH_TYPES:
            raise ValueError(f"DataGenerator batch_type={batch_type!r}: expected one of {', '.join(BATCH_TYPES)}")
        self.store = load_store(config.get("data_dir"))
        self.character_rows = self.store.rows(batch_type)
        if not 1 <= num_classes <= len(self.character_rows):
            raise ValueError(f"DataGenerator num_classes={num_classes}: expected 1 to {len(self.character_rows)} "
                             f"(the number of characters in the {batch_type!r} split)")
        if not 2 <= num_samples_per_class <= DRAWINGS_PER_CHARACTER:
            raise ValueError(f"DataGenerator num_samples_per_class={num_samples_per_class}: expected K+1 between 2 and "
                             f"{DRAWINGS_PER_CHARACTER} (K >= 1 support drawings plus 1 query drawing per character)")
        self.num_classes = num_classes
        self.num_samples_per_class = num_samples_per_class
        self.batch_type = batch_type
        self.dim_input = IMAGE_SIZE
        self.dim_output = num_classes
        self.image_caching = cache
        self.seed = config.get("seed")
        self.rng = np.random.default_rng(self.seed)

    # ---------------------------------------------------------------- provided helpers

    def load_drawings(self, character_rows: np.ndarray, drawing_indices: np.ndarray) -> np.ndarray:
        """Drawings as float32 ink vectors: `images[..., :] = store.images[character_rows, drawing_indices] / 255`.

        `character_rows` (rows of `self.store`, e.g. taken from `self.character_rows`) and `drawing_indices`
        (0..19) are integer arrays that broadcast against each other; the result has their broadcast shape + [784].
        """
        character_rows, drawing_indices = np.broadcast_arrays(np.asarray(character_rows), np.asarray(drawing_indices))
        if self.image_caching:
            pixels = self.store.images[character_rows, drawing_indices]
            return pixels.reshape(*character_rows.shape, IMAGE_SIZE).astype(np.float32) / np.float32(255)
        images = np.empty((*character_rows.shape, IMAGE_SIZE), dtype=np.float32)
        for position in np.ndindex(character_rows.shape):
            name = self.store.characters[character_rows[position]]
            images[position] = image_file_to_array(self.store.png_path(name, int(drawing_indices[position])),
                                                   IMAGE_SIZE)
        return images

    def reseed(self, seed) -> None:
        """Restart the episode stream from `seed` (anything `numpy.random.default_rng` accepts)."""
        self.rng = np.random.default_rng(seed)

    # ---------------------------------------------------------------- the task

    def _sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample one N-way K-shot episode.

        Returns:
            images: float32 [K+1, N, 784], each entry exactly a drawing of the store divided by 255
                (use `self.load_drawings`);
            labels: float32 [K+1, N, N], one-hot: labels[k, i] is the one-hot class of images[k, i].
        where N = self.num_classes and K + 1 = self.num_samples_per_class. Rows 0..K-1 are the support set in class
        order (images[k, n] is a drawing of class n); row K holds one query drawing per class, in shuffled order.
        """
        num_classes, num_drawings = self.num_classes, self.num_samples_per_class
        # TODO return one episode (images, labels), float32 numpy arrays [K+1, N, 784] and [K+1, N, N] (docstring).
        #   What must hold:
        #   - the N classes are N distinct characters of the split (`self.character_rows`), chosen uniformly at random;
        #     class n is the n-th one. Every episode chooses among all the split's characters.
        #   - each class has K+1 distinct drawings, each exactly as `self.load_drawings` gives it, so a query never
        #     repeats one of its support drawings;
        #   - rows 0..K-1 (the support set) are in class order: images[k, n] shows class n, and labels[k] == eye(N);
        #   - row K (the queries) holds one more drawing of each class in a random order, each with its own label.
        #   Take every random choice from `self.rng`, so that config["seed"] makes the episodes repeatable.
        #   Step-by-step help: "Hints" at the end of Part 1 of the handout.
        ### BEGIN SOLUTION
        characters = self.rng.choice(self.character_rows, size=num_classes, replace=False)
        drawing_order = self.rng.permuted(np.tile(np.arange(DRAWINGS_PER_CHARACTER), (num_classes, 1)), axis=1)
        drawings = drawing_order[:, :num_drawings].T  # [K+1, N]: distinct drawings within each class
        images = self.load_drawings(characters[np.newaxis, :], drawings)
        labels = np.broadcast_to(np.eye(num_classes, dtype=np.float32), (num_drawings, num_classes, num_classes)).copy()
        query_order = self.rng.permutation(num_classes)
        images[-1] = images[-1, query_order]
        labels[-1] = labels[-1, query_order]
        return images, labels
        ### END SOLUTION

    # ---------------------------------------------------------------- iteration

    def __iter__(self):
        worker = get_worker_info()
        if worker is not None:
            # Each DataLoader worker holds a copy of this object, rng state included: without a per-worker stream
            # every worker would yield the same episodes. torch derives worker.seed from its own (seedable) RNG.
            base = self.seed if self.seed is not None else worker.seed
            self.reseed(derive_seed(base, worker.id))
        while True:
            yield self._sample()

    def __repr__(self) -> str:
        return (f"DataGenerator(num_classes={self.num_classes}, num_samples_per_class={self.num_samples_per_class}, "
                f"batch_type={self.batch_type!r}, seed={self.seed}, cache={self.image_caching})")
