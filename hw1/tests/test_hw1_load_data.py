# hw1/tests/test_hw1_load_data.py: public tests, provided. Run them with `pytest hw1`; you need not change them.
"""Public tests of load_data.py: the episodes `DataGenerator._sample` returns (run `pytest hw1`).

PYTEST_DONT_REWRITE: a failing check reports its message alone
(what was observed and what was expected), without pytest's dump of the values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from load_data import IMAGE_SIZE, DataGenerator, image_file_to_array


def sample_episodes(num_classes, num_samples_per_class, count, split="train", seed=0, cache=True):
    generator = DataGenerator(num_classes, num_samples_per_class, split, config={"seed": seed}, cache=cache)
    return [generator._sample() for _ in range(count)]


def locate_episode(drawing_index, images, labels):
    """[K+1, N] arrays of (store row, drawing index) of every image and of its class (argmax of its label)."""
    rows = np.empty(images.shape[:2], dtype=np.int64)
    drawings = np.empty(images.shape[:2], dtype=np.int64)
    used = set()
    for k, n in np.ndindex(*images.shape[:2]):
        found = drawing_index.find(images[k, n])
        assert found, (f"images[{k}, {n}] is not a drawing of the dataset: every image must be exactly "
                       "store.images[row, drawing] / 255 as float32 (use self.load_drawings)")
        # Omniglot holds one pair of byte-identical drawings: give each copy its own location.
        location = next((place for place in found if place not in used), found[0])
        used.add(location)
        rows[k, n], drawings[k, n] = location
    return rows, drawings, labels.argmax(axis=-1)


def test_provided_image_file_to_array_matches_the_store(store):
    name = store.characters[7]
    for drawing in (0, 19):
        image = image_file_to_array(store.png_path(name, drawing), IMAGE_SIZE)
        expected = store.images[7, drawing].reshape(IMAGE_SIZE).astype(np.float32) / np.float32(255)
        assert image.dtype == np.float32 and image.shape == (IMAGE_SIZE,), (
            f"image_file_to_array gave {image.dtype} {image.shape}, expected float32 ({IMAGE_SIZE},)")
        assert np.array_equal(image, expected), "the PNG decodes to other values than the packed store holds"


@pytest.mark.parametrize("num_classes, num_samples_per_class", [(2, 2), (3, 4), (5, 2)])
def test_sample_shapes_and_dtypes(store, num_classes, num_samples_per_class):
    images, labels = sample_episodes(num_classes, num_samples_per_class, 1)[0]
    for name, array, shape in (("images", images, (num_samples_per_class, num_classes, IMAGE_SIZE)),
                               ("labels", labels, (num_samples_per_class, num_classes, num_classes))):
        assert isinstance(array, np.ndarray), f"_sample must return numpy arrays; {name} is a {type(array).__name__}"
        assert array.shape == shape, (f"{num_classes}-way episodes with K+1={num_samples_per_class}: expected {name} "
                                      f"of shape [K+1, N, ...] = {shape}, got {array.shape}")
        assert array.dtype == np.float32, f"expected {name} of dtype float32, got {array.dtype}"


def test_labels_are_one_hot_with_the_support_set_in_class_order(store):
    num_classes, num_samples_per_class = 4, 3
    for images, labels in sample_episodes(num_classes, num_samples_per_class, 20):
        assert set(np.unique(labels)) <= {0.0, 1.0} and np.all(labels.sum(axis=-1) == 1), \
            "every label must be a one-hot vector: N-1 zeros and a single 1"
        for k in range(num_samples_per_class - 1):
            assert np.array_equal(labels[k], np.eye(num_classes)), (
                f"support row {k} must be in class order: labels[{k}, n] is the one-hot vector of class n "
                f"(labels[{k}] == np.eye(N)), got classes {labels[k].argmax(-1).tolist()}")
        query_classes = labels[-1].argmax(-1)
        assert sorted(query_classes.tolist()) == list(range(num_classes)), (
            f"the query row must hold exactly one drawing of each class, got classes {query_classes.tolist()}")


def test_query_row_is_shuffled(store):
    num_classes = 3
    orders = {tuple(labels[-1].argmax(-1).tolist()) for _, labels in sample_episodes(num_classes, 2, 200)}
    all_orders = set(itertools.permutations(range(num_classes)))
    assert orders == all_orders, (
        f"over 200 3-way episodes the query row's labels came in only these class orders: {sorted(orders)}; the "
        f"query row must be shuffled by a random permutation, so all {len(all_orders)} orders should appear")


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_images_belong_to_their_labels_class_and_to_the_split(store, drawing_index, split):
    split_rows = set(store.rows(split).tolist())
    num_classes, num_samples_per_class = 5, 3
    for images, labels in sample_episodes(num_classes, num_samples_per_class, 10, split=split):
        rows, _, classes = locate_episode(drawing_index, images, labels)
        class_rows = rows[0]
        assert len(set(class_rows.tolist())) == num_classes, (
            f"the {num_classes} images of support row 0 show only {len(set(class_rows.tolist()))} different "
            f"characters: the N={num_classes} classes of an episode must be {num_classes} different characters")
        assert set(class_rows.tolist()) <= split_rows, \
            f"batch_type={split!r}: every character must come from the {split!r} split (self.character_rows)"
        for k, n in np.ndindex(*rows.shape):
            assert rows[k, n] == class_rows[classes[k, n]], (
                f"images[{k}, {n}] is a drawing of another character than its label says (class {classes[k, n]}): "
                + ("the query row's images and labels must be shuffled with the same permutation"
                   if k == num_samples_per_class - 1 else
                   f"support row {k} must hold class n's drawing in column n, like row 0"))


@pytest.mark.parametrize("num_samples_per_class", [2, 5, 20])
def test_no_drawing_is_used_twice_in_an_episode(store, drawing_index, num_samples_per_class):
    for images, labels in sample_episodes(3, num_samples_per_class, 10):
        rows, drawings, _ = locate_episode(drawing_index, images, labels)
        for row in set(rows.ravel().tolist()):  # by character, not by label: a label bug must not show up here
            used = sorted(drawings[rows == row].tolist())
            assert len(set(used)) == len(used), (
                f"character {store.characters[row]} appears with drawing indices {used} in one episode: its K+1="
                f"{num_samples_per_class} drawings must be distinct (the query must not repeat a support drawing)")


def test_every_character_of_the_split_stays_available(store, drawing_index):
    seen = set()
    for images, labels in sample_episodes(5, 2, 300, split="val"):
        seen.update(locate_episode(drawing_index, images[:1], labels[:1])[0].ravel().tolist())
    assert seen == set(store.rows("val").tolist()), (
        f"after 300 5-way episodes of the 100-character 'val' split only {len(seen)} characters appeared: every "
        "episode must choose among all characters of the split (never remove characters from the pool)")


def test_the_seed_makes_episodes_repeatable(store):
    first, again, other = (sample_episodes(3, 3, 5, seed=seed) for seed in (11, 11, 12))
    for (images, labels), (images_again, labels_again) in zip(first, again):
        assert np.array_equal(images, images_again) and np.array_equal(labels, labels_again), (
            "two generators with the same config['seed'] gave different episodes: take every random choice from "
            "self.rng (not np.random or random)")
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other)), (
        "generators with config['seed'] 11 and 12 gave the same 5 episodes: the episodes must depend on the seed")


def test_png_decoding_gives_the_same_episodes(store):
    cached = sample_episodes(2, 2, 3, seed=5, cache=True)
    decoded = sample_episodes(2, 2, 3, seed=5, cache=False)
    for (images, labels), (images_png, labels_png) in zip(cached, decoded):
        assert np.array_equal(images, images_png) and np.array_equal(labels, labels_png), (
            "cache=False must give the same episodes as cache=True: load drawings with self.load_drawings")


def test_dataloader_batches_episodes(store):
    generator = DataGenerator(2, 3, "train", config={"seed": 0})
    images, labels = next(iter(DataLoader(generator, batch_size=4)))
    assert isinstance(images, torch.Tensor) and images.shape == (4, 3, 2, IMAGE_SIZE), \
        f"expected a batch of images [B, K+1, N, 784] = [4, 3, 2, 784], got {tuple(images.shape)}"
    assert labels.shape == (4, 3, 2, 2), f"expected a batch of labels [4, 3, 2, 2], got {tuple(labels.shape)}"
