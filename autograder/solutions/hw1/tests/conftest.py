"""Shared set-up of the HW1 public tests (`pytest hw1` from the repository root).

- puts the homework folder first on `sys.path`, so `import load_data` and `import hw1` find your files;
- skips the data tests with instructions when the Omniglot data has not been built yet;
- reports a function that still raises NotImplementedError as "not implemented yet" instead of a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HOMEWORK_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HOMEWORK_DIR))


def pytest_configure(config):
    config.addinivalue_line("markers", "extra_credit: tests of the extra-credit attention learner "
                                       "(skip them with `pytest hw1 -m 'not extra_credit'`)")


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    try:
        return (yield)
    except NotImplementedError as error:
        traceback = error.__traceback__
    # Failing outside the `except` block keeps the NotImplementedError traceback out of the report.
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    function = getattr(code, "co_qualname", code.co_name)
    pytest.fail(f"not implemented yet: {function} ({Path(code.co_filename).name}, line {traceback.tb_lineno}) "
                "still raises NotImplementedError. Replace that line with your code, following the TODO comments "
                "above it.", pytrace=False)


@pytest.fixture(scope="session")
def store():
    """The packed Omniglot store; skips the test when the data has not been built."""
    from omniglot_data import DataNotFoundError, load_store

    try:
        return load_store()
    except DataNotFoundError as error:
        pytest.skip(f"{error}. The data tests need it: run `bash data_download.sh` from the repository root, "
                    "then run the tests again.")


class DrawingIndex:
    """Finds which (character row, drawing index) of the store an image is, by exact value."""

    def __init__(self, store):
        self.store = store
        flat = store.images.reshape(-1, store.images.shape[-1] * store.images.shape[-2])
        self.locations: dict[bytes, list[tuple[int, int]]] = {}
        num_drawings = store.images.shape[1]
        for position, pixels in enumerate(flat):
            self.locations.setdefault(pixels.tobytes(), []).append(divmod(position, num_drawings))

    def find(self, image: np.ndarray) -> list[tuple[int, int]]:
        """Every (row, drawing) whose `store.images[row, drawing] / 255` (float32) equals `image` exactly."""
        image = np.asarray(image)
        if image.dtype != np.float32 or image.size != 784 or not np.all((image >= 0) & (image <= 1)):
            return []
        pixels = np.rint(image.reshape(-1) * 255).astype(np.uint8)
        candidates = self.locations.get(pixels.tobytes(), [])
        exact = pixels.astype(np.float32) / np.float32(255)
        return candidates if np.array_equal(exact, image.reshape(-1)) else []


@pytest.fixture(scope="session")
def drawing_index(store):
    return DrawingIndex(store)
