"""The PNG-per-sample baselines: how CS330's loaders get their images (decode a PNG file for every drawing used).

Both baselines read the PNG tree `data/omniglot_resized/` that `bash data_download.sh` builds. Where that tree is
absent (e.g. a machine that received only the packed cache), `png_data_dir` writes the PNGs of the split in use
from the packed cache into a temporary folder, so the baseline still decodes real 28x28 grayscale PNG files.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

NUM_DRAWINGS = 20


@functools.lru_cache(maxsize=None)  # write the PNGs once per process, however many baselines use them
def png_data_dir(split: str) -> Path:
    """A data folder (for `load_store(...)` / `config["data_dir"]`) whose PNG tree holds every drawing of `split`."""
    import imageio.v3 as imageio

    from omniglot_data import load_store

    store = load_store()
    rows = store.rows(split)
    names = [store.characters[row] for row in rows]
    if all(store.png_path(name, index).is_file() for name in (names[0], names[-1]) for index in (0, NUM_DRAWINGS - 1)):
        return store.root
    folder = Path(tempfile.mkdtemp(prefix="omniglot-png-baseline-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for entry in ("omniglot28.npz", "omniglot28.json"):
        (folder / entry).symlink_to(store.root / entry)
    copy = load_store(folder)
    for row, name in zip(rows, names):
        for index in range(NUM_DRAWINGS):
            path = copy.png_path(name, index)
            path.parent.mkdir(parents=True, exist_ok=True)
            imageio.imwrite(path, 255 - store.images[row, index])  # the PNGs hold pixels (white background)
    print(f"note: {store.root / 'omniglot_resized'} is absent; wrote the {len(rows) * NUM_DRAWINGS} PNGs of the "
          f"{split!r} split from the packed cache into {folder} for the PNG baseline")
    return folder


class PngTaskSampler:
    """HW2 tasks decoded from PNG files on every call, as CS330's `OmniglotDataset.__getitem__` does.

    Same task format and sizes as `omniglot.EpisodeSampler.sample` (shuffled support and query sets, int64 labels),
    built one task at a time: choose N characters, S+Q drawings of each, read every PNG, stack, move to the device.
    """

    def __init__(self, split: str, num_way: int, num_support: int, num_query: int, seed: int, device: str):
        from load_data import IMAGE_SIZE, image_file_to_array  # HW1's PNG reader: one definition of the decode

        from omniglot_data import load_store

        self._read = lambda path: image_file_to_array(path, IMAGE_SIZE)
        self.store = load_store(png_data_dir(split))
        self.rows = self.store.rows(split)
        self.num_way, self.num_support, self.num_query = num_way, num_support, num_query
        self.device = device
        self.rng = np.random.default_rng(seed)

    def _task(self):
        import torch

        n, s, q = self.num_way, self.num_support, self.num_query
        characters = self.rng.choice(self.rows, size=n, replace=False)
        images, labels = [], []
        for label, row in enumerate(characters):
            name = self.store.characters[row]
            for index in self.rng.choice(NUM_DRAWINGS, size=s + q, replace=False):
                images.append(self._read(self.store.png_path(name, int(index))))
                labels.append(label)
        images = torch.from_numpy(np.stack(images)).view(n, s + q, 1, 28, 28)
        labels = torch.tensor(labels).view(n, s + q)
        support_order, query_order = self.rng.permutation(n * s), self.rng.permutation(n * q)
        task = (images[:, :s].reshape(n * s, 1, 28, 28)[support_order], labels[:, :s].reshape(-1)[support_order],
                images[:, s:].reshape(n * q, 1, 28, 28)[query_order], labels[:, s:].reshape(-1)[query_order])
        return tuple(tensor.to(self.device) for tensor in task)

    def sample(self, batch_size: int):
        return [self._task() for _ in range(batch_size)]
