# hw2/omniglot.py: provided code. Read it, but do not change it.
"""Few-shot Omniglot episodes for HW2 (provided; nothing to implement here).

Each task ("episode") is an N-way classification problem: N characters are drawn from one split of the committed
split file, and for each of them S support and Q query drawings (no drawing appears twice in a task). Labels
0..N-1 are assigned to the N characters in the (random) order they were drawn. A task is the tuple

    images_support  float32 [N*S, 1, 28, 28]   ink convention: strokes 1.0, background 0.0
    labels_support  int64   [N*S]
    images_query    float32 [N*Q, 1, 28, 28]
    labels_query    int64   [N*Q]

The support set and the query set are each shuffled, so examples of one class are NOT contiguous: code must use the
labels, never the position, to find the examples of a class.

Images come from the packed cache (`omniglot_data.load_store()`), copied once to the training device as uint8;
sampling a batch is a single gather on that device, never a PNG decode. Sampling is driven by a seeded NumPy
generator, so a loader with the same arguments yields the same episodes on every run and every device, and
iterating one loader twice replays the same episodes (useful for validation curves that are not noise).

Optional augmentation (the MAML paper's protocol, off by default): every training character also appears rotated by
90, 180 and 270 degrees, each rotation a class of its own (4x as many training classes).
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch

NUM_DRAWINGS = 20  # drawings per Omniglot character
IMAGE_SIZE = 28

Task = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class EpisodeSampler:
    """Samples batches of N-way tasks from a uint8 ink array `images` [characters, drawings, 28, 28].

    Args:
        images: uint8 ink (0 background, 255 strokes), one row per character; numpy array or tensor.
        num_way, num_support, num_query: N, S and Q of every task.
        seed: int or sequence of ints for `numpy.random.default_rng`.
        augment_rotations: add the three 90-degree rotations of each character as extra classes.
        device: where the images live and where the task tensors are returned.
    """

    def __init__(
        self,
        images,
        num_way: int,
        num_support: int,
        num_query: int,
        seed: int | Sequence[int] = 0,
        augment_rotations: bool = False,
        device: str | torch.device = "cpu",
    ):
        images = torch.as_tensor(np.asarray(images))
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"images: expected uint8 ink of shape [characters, drawings, {IMAGE_SIZE}, {IMAGE_SIZE}], "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if augment_rotations:
            images = torch.cat([torch.rot90(images, turns, dims=(-2, -1)) for turns in range(4)])
        num_classes, num_drawings = images.shape[:2]
        for name, value in (("num_way", num_way), ("num_support", num_support), ("num_query", num_query)):
            if not isinstance(value, (int, np.integer)) or value < (0 if name == "num_query" else 1):
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if num_way > num_classes:
            raise ValueError(f"num_way={num_way}: this split has only {num_classes} classes")
        if num_support + num_query > num_drawings:
            raise ValueError(
                f"num_support + num_query = {num_support + num_query}: each character has only {num_drawings} drawings"
            )
        self.device = torch.device(device)
        self.images = images.to(self.device)  # one copy, uint8: a quarter of the float32 size
        self.num_way, self.num_support, self.num_query = int(num_way), int(num_support), int(num_query)
        self.num_classes, self.num_drawings = int(num_classes), int(num_drawings)
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Restart the episode stream from the seed."""
        self._rng = np.random.default_rng(self.seed)

    def sample(self, batch_size: int) -> list[Task]:
        """A list of `batch_size` tasks (images_support, labels_support, images_query, labels_query)."""
        n, s, q = self.num_way, self.num_support, self.num_query
        rng = self._rng
        # Classes without replacement per task: argsort of uniform noise is a uniformly random permutation.
        classes = rng.random((batch_size, self.num_classes)).argsort(axis=1)[:, :n]
        drawings = rng.random((batch_size, n, self.num_drawings)).argsort(axis=2)[:, :, : s + q]
        support_order = rng.random((batch_size, n * s)).argsort(axis=1)
        query_order = rng.random((batch_size, n * q)).argsort(axis=1)

        index = lambda array: torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)
        pixels = self.images[index(classes)[:, :, None], index(drawings)]  # [B, N, S+Q, 28, 28] uint8
        pixels = pixels.to(torch.float32).div_(255.0).unsqueeze(3)  # [B, N, S+Q, 1, 28, 28]
        labels = torch.arange(n, device=self.device).view(1, n, 1).expand(batch_size, n, s + q)

        def split(part: slice, count: int, order: np.ndarray):
            images = pixels[:, :, part].reshape(batch_size, n * count, 1, IMAGE_SIZE, IMAGE_SIZE)
            targets = labels[:, :, part].reshape(batch_size, n * count)
            order = index(order)
            images = torch.take_along_dim(images, order.view(batch_size, -1, 1, 1, 1), dim=1)
            return images, torch.take_along_dim(targets, order, dim=1)

        images_support, labels_support = split(slice(0, s), s, support_order)
        images_query, labels_query = split(slice(s, s + q), q, query_order)
        return [
            (images_support[b], labels_support[b], images_query[b], labels_query[b]) for b in range(batch_size)
        ]


class EpisodeLoader:
    """Iterable over `ceil(num_tasks / batch_size)` batches (lists of tasks); each pass replays the same episodes."""

    def __init__(self, sampler: EpisodeSampler, batch_size: int, num_tasks: int):
        if batch_size < 1 or num_tasks < 1:
            raise ValueError(f"batch_size and num_tasks_per_epoch must be positive, got {batch_size} and {num_tasks}")
        self.sampler, self.batch_size, self.num_tasks = sampler, int(batch_size), int(num_tasks)

    def __len__(self) -> int:
        return math.ceil(self.num_tasks / self.batch_size)

    def __iter__(self) -> Iterator[list[Task]]:
        self.sampler.reset()
        remaining = self.num_tasks
        while remaining > 0:
            size = min(self.batch_size, remaining)
            remaining -= size
            yield self.sampler.sample(size)


def split_images(split: str, data_dir=None) -> np.ndarray:
    """uint8 ink [characters, 20, 28, 28] of one split ("train", "val", "test") of the committed split."""
    from omniglot_data import load_store

    store = load_store(data_dir)
    return store.images[store.rows(split)]


def get_omniglot_dataloader(
    split: str,
    batch_size: int,
    num_way: int,
    num_support: int,
    num_query: int,
    num_tasks_per_epoch: int,
    seed: int | Sequence[int] = 0,
    augment_rotations: bool = False,
    device: str | torch.device = "cpu",
    data_dir=None,
) -> EpisodeLoader:
    """Episodes of one split, as in CS330: iterate to get lists of `batch_size` task tuples.

    `seed` fixes the episodes (the same seed gives the same tasks). Rotation augmentation is only allowed on the
    training split: validation and test classes must stay the original characters.
    """
    if augment_rotations and split != "train":
        raise ValueError(f"augment_rotations is only for the train split, not {split!r}")
    sampler = EpisodeSampler(
        split_images(split, data_dir), num_way, num_support, num_query, seed, augment_rotations, device
    )
    return EpisodeLoader(sampler, batch_size, num_tasks_per_epoch)
