# hw2/tests/test_hw2_omniglot.py: public tests, provided. Run them with `pytest hw2`; you need not change them.
"""Public tests of the provided code: the episode sampler (omniglot.py) and util.score. They pass on the starter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import omniglot
import util


def synthetic_images(num_characters=12, num_drawings=20, seed=0):
    """uint8 ink [characters, drawings, 28, 28] where pixel (0, 0) is the character and (0, 1) the drawing index."""
    images = np.random.default_rng(seed).integers(0, 256, (num_characters, num_drawings, 28, 28), dtype=np.uint8)
    images[:, :, 0, 0] = np.arange(num_characters)[:, None]
    images[:, :, 0, 1] = np.arange(num_drawings)[None, :]
    return images


def identity(image):
    """(character, drawing) of a synthetic image, read back from its pixels."""
    pixels = np.rint(image.numpy()[0] * 255).astype(int)
    return int(pixels[0, 0]), int(pixels[0, 1])


def test_provided_sampler_shapes_and_types():
    sampler = omniglot.EpisodeSampler(synthetic_images(), num_way=5, num_support=2, num_query=3, seed=0)
    tasks = sampler.sample(4)
    assert len(tasks) == 4
    images_support, labels_support, images_query, labels_query = tasks[0]
    assert images_support.shape == (10, 1, 28, 28) and images_support.dtype == torch.float32
    assert images_query.shape == (15, 1, 28, 28) and images_query.dtype == torch.float32
    assert labels_support.shape == (10,) and labels_support.dtype == torch.int64
    assert labels_query.shape == (15,) and labels_query.dtype == torch.int64
    assert 0.0 <= float(images_support.min()) and float(images_support.max()) <= 1.0


def test_provided_sampler_labels_name_one_character_each_and_no_drawing_repeats():
    sampler = omniglot.EpisodeSampler(synthetic_images(), num_way=4, num_support=3, num_query=5, seed=1)
    for images_support, labels_support, images_query, labels_query in sampler.sample(8):
        seen = set()
        character_of_label = {}
        for images, labels, count in ((images_support, labels_support, 3), (images_query, labels_query, 5)):
            assert sorted(labels.tolist()) == sorted(list(range(4)) * count), "each class appears equally often"
            for image, label in zip(images, labels.tolist()):
                character, drawing = identity(image)
                assert character_of_label.setdefault(label, character) == character, "a label mixes characters"
                assert (character, drawing) not in seen, "a drawing appears twice in one task"
                seen.add((character, drawing))
        assert len(set(character_of_label.values())) == 4, "the classes of a task must be distinct characters"


def test_provided_sampler_shuffles_the_support_set():
    sampler = omniglot.EpisodeSampler(synthetic_images(), num_way=5, num_support=2, num_query=1, seed=2)
    orders = [labels_support.tolist() for _, labels_support, _, _ in sampler.sample(10)]
    assert any(order != sorted(order) for order in orders), "support sets must not come sorted by class"


def test_provided_sampler_is_seeded():
    images = synthetic_images()
    first = omniglot.EpisodeSampler(images, 5, 1, 2, seed=3).sample(3)
    again = omniglot.EpisodeSampler(images, 5, 1, 2, seed=3).sample(3)
    other = omniglot.EpisodeSampler(images, 5, 1, 2, seed=4).sample(3)
    assert all(torch.equal(a, b) for t, u in zip(first, again) for a, b in zip(t, u)), "same seed, different tasks"
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other)), "different seeds gave the same tasks"


def test_provided_loader_replays_its_episodes():
    loader = omniglot.EpisodeLoader(omniglot.EpisodeSampler(synthetic_images(), 3, 1, 1, seed=5), 4, 10)
    first, second = list(loader), list(loader)
    assert [len(batch) for batch in first] == [4, 4, 2] and len(loader) == 3
    assert all(torch.equal(a[0], b[0]) for x, y in zip(first, second) for a, b in zip(x, y))


def test_provided_rotation_augmentation_adds_rotated_classes():
    images = synthetic_images(num_characters=3)
    sampler = omniglot.EpisodeSampler(images, 2, 1, 1, seed=6, augment_rotations=True)
    assert sampler.num_classes == 12
    for turns in range(4):
        expected = torch.rot90(torch.from_numpy(images[1, 7]), turns)
        assert torch.equal(sampler.images[turns * 3 + 1, 7], expected)


def test_provided_sampler_rejects_impossible_tasks():
    with pytest.raises(ValueError, match="num_way"):
        omniglot.EpisodeSampler(synthetic_images(num_characters=3), 5, 1, 1)
    with pytest.raises(ValueError, match="drawings"):
        omniglot.EpisodeSampler(synthetic_images(), 5, 10, 11)


def test_provided_loader_reads_the_split_from_the_store(store):
    loader = omniglot.get_omniglot_dataloader("val", batch_size=2, num_way=5, num_support=1, num_query=2,
                                              num_tasks_per_epoch=2, seed=0)
    val_images = {image.tobytes() for image in store.images[store.rows("val")].reshape(-1, 28, 28)}
    for images_support, _, images_query, _ in next(iter(loader)):
        for image in torch.cat([images_support, images_query]):
            pixels = np.rint(image[0].numpy() * 255).astype(np.uint8)
            assert pixels.tobytes() in val_images, "a validation task holds an image that is not a validation drawing"


def test_provided_score():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    accuracy = util.score(logits, torch.tensor([0, 1, 1, 1]))
    assert float(accuracy) == 0.75 and not accuracy.requires_grad
