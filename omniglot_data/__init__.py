"""Omniglot for the homeworks: the committed split, the packed 28x28 store, and (in `prepare`) the builder.

    from omniglot_data import load_store, load_split
    store = load_store()                       # images uint8 [1623, 20, 28, 28], ink
    train_rows = store.rows("train")           # 1100 characters of the committed split
    store.drawing_index().find(image)          # [(row, drawing), ...] that a float32 image is exactly

Build the data once with `bash data_download.sh` (or `python -m omniglot_data`).
"""

from omniglot_data.errors import DataError, DataNotFoundError
from omniglot_data.identify import DrawingIndex
from omniglot_data.store import OmniglotStore, data_dir, load_split, load_store

__all__ = ["DataError", "DataNotFoundError", "DrawingIndex", "OmniglotStore", "data_dir", "load_split", "load_store"]
