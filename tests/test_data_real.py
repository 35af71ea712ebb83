"""The real Omniglot build (made by `bash data_download.sh`; CI builds it from the mirror before the tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from omniglot_data import load_split, load_store
from omniglot_data.archives import OMNIGLOT
from omniglot_data.prepare import existing_build
from omniglot_data.split import SIZES, make_split, render
from omniglot_data.store import SPLIT_FILE, data_dir

pytestmark = pytest.mark.skipif(existing_build(data_dir()) is None,
                                reason=f"no complete Omniglot build in {data_dir()}: run `bash data_download.sh` first")


@pytest.fixture(scope="module")
def store():
    return load_store()


def test_store_holds_all_of_omniglot_at_28x28(store):
    assert store.images.shape == (1623, 20, 28, 28) and store.images.dtype == np.uint8
    assert len(store.characters) == len(set(store.characters)) == 1623
    assert len({name.split("/")[0] for name in store.characters}) == 50
    assert store.drawings.shape == (1623, 20)
    # Every drawing id IIII_DD has the character's global id and drawers 01..20.
    ids = {stems[0].split("_")[0] for stems in store.drawings}
    assert ids == {f"{number:04d}" for number in range(1, 1624)}
    assert all([stem.split("_")[1] for stem in stems] == [f"{d:02d}" for d in range(1, 21)] for stems in store.drawings)
    # Ink convention: background 0, strokes up to 255, a little ink per image on average.
    assert store.images.min() == 0 and store.images.max() == 255
    assert 0.05 < store.images.mean() / 255 < 0.25


def test_manifest_records_the_official_content(store):
    manifest = existing_build(data_dir())
    assert manifest["content_digest"] == OMNIGLOT.content_digest
    assert (manifest["alphabets"], manifest["characters"], manifest["images"]) == (50, 1623, 32460)


def test_split_sizes_disjoint_and_covering(store):
    split = load_split()
    assert {name: len(names) for name, names in split.items()} == SIZES == {"train": 1100, "val": 100, "test": 423}
    train, val, test = (set(split[name]) for name in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(store.characters)
    for names in split.values():
        assert names == sorted(names, key=str.encode)


def test_every_split_name_exists_in_the_store(store):
    for name, names in load_split().items():
        rows = store.rows(name)
        assert [store.characters[row] for row in rows] == names


def test_committed_split_is_what_the_procedure_gives(store):
    assert SPLIT_FILE.read_text(encoding="utf-8") == render(make_split(store.characters))
    document = json.loads(SPLIT_FILE.read_text(encoding="utf-8"))
    assert document["seed"] == 0 and "default_rng(0)" in document["procedure"]


def test_png_tree_matches_the_cache(store):
    rng = np.random.default_rng(1)
    for row in rng.choice(len(store.characters), size=25, replace=False):
        name, drawing = store.characters[row], int(rng.integers(20))
        png = Image.open(store.png_path(name, drawing))
        assert png.mode == "L" and png.size == (28, 28)
        np.testing.assert_array_equal(store.images[row, drawing], 255 - np.asarray(png))


def test_unknown_names_and_splits_are_explained(store):
    with pytest.raises(KeyError, match="unknown Omniglot character 'Latin/character99'"):
        store.row("Latin/character99")
    with pytest.raises(ValueError, match="expected one of train, val, test"):
        store.rows("validation")


def test_rerun_only_verifies_and_is_fast():
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "omniglot_data", "--quiet", "--mirror", "/nonexistent"],
                            capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Omniglot ready: 50 alphabets, 1623 characters, 32460 images")
    assert "split train/val/test 1100/100/423" in result.stdout
    assert elapsed < 5, f"an up-to-date build should only be checked, took {elapsed:.1f} s"
