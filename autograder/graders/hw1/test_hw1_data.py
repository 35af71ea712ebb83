"""HW1 part 1: `DataGenerator._sample`, checked by its properties, never by the reference's random stream.

A correct generator may call its random generator in any order, so no test compares episodes with the reference's.
Every image is identified against the dataset instead (`hw1_episodes.DrawingIndex`), and the random choices are checked
statistically with fixed seeds and bounds whose false-failure probability is stated next to each test.

PYTEST_DONT_REWRITE: the feedback shows each assertion's message alone, without pytest's introspection.
"""

import itertools
import math

import numpy as np
import pytest

from autograder.harness import run_data_dir
from hw1_call_cache import cached_run
from hw1_episodes import class_members, distinct_characters, identify_class, store_and_index

IMAGE_SIZE = 784
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def dataset(request):
    """(store, index) of the Omniglot data the workers read."""
    return store_and_index(run_data_dir(request.config))


def _episodes(student, num_classes, samples_per_class, split="train", seed=0, episodes=20):
    got = cached_run(student, "sample_episodes", num_classes=num_classes, samples_per_class=samples_per_class,
                     split=split, seed=seed, episodes=episodes)
    images, labels = np.asarray(got["images"]), np.asarray(got["labels"])
    expected_images = (episodes, samples_per_class, num_classes, IMAGE_SIZE)
    expected_labels = (episodes, samples_per_class, num_classes, num_classes)
    assert images.shape == expected_images and labels.shape == expected_labels, (
        f"_sample() with N={num_classes}, K+1={samples_per_class} returned images of shape {images.shape[1:]} and "
        f"labels of shape {labels.shape[1:]}; expected {expected_images[1:]} and {expected_labels[1:]}")
    return images, labels


def _require_valid_labels(labels):
    """The checks below read the classes off the labels; say so plainly when the labels themselves are wrong."""
    num_classes = labels.shape[-1]
    eye = np.eye(num_classes)
    support_ok = np.all(labels[:, :-1] == eye)
    query_ok = all(np.array_equal(np.sort(query.argmax(-1)), np.arange(num_classes)) and
                   np.all((query == 0) | (query == 1)) and np.all(query.sum(-1) == 1) for query in labels[:, -1])
    assert support_ok and query_ok, (
        "this check reads each image's class from its label, but the labels are not as specified (support rows "
        "labels[k] = np.eye(N) in class order, query row a permutation of the one-hot rows); see "
        "test_support_rows_in_class_order and test_query_row_one_of_each_class")


def _classes(index, images, labels):
    """ClassIdentity of every class of every episode: [E][N]."""
    _require_valid_labels(labels)
    return [[identify_class(index, drawings) for drawings in class_members(episode_images, episode_labels)]
            for episode_images, episode_labels in zip(images, labels)]


@pytest.mark.points(2)
def test_sample_returns_float32_numpy(student):
    """_sample returns two float32 numpy arrays"""
    for num_classes, samples_per_class, split in ((3, 2, "train"), (5, 4, "test")):
        got = cached_run(student, "sample_once", num_classes=num_classes, samples_per_class=samples_per_class,
                         split=split, seed=1)
        for name in ("images", "labels"):
            kind = got[f"{name}_type"]
            assert kind == "numpy.ndarray", f"_sample() returned {name} as a {kind}; expected a numpy array"
            assert got[name].dtype == np.float32, (
                f"_sample() returned {name} of dtype {got[name].dtype}; expected float32 (e.g. .astype(np.float32))")


@pytest.mark.points(2)
def test_sample_shapes(student):
    """images [K+1, N, 784] and labels [K+1, N, N], for several N and K"""
    for num_classes, samples_per_class in ((1, 2), (3, 2), (4, 5), (2, 20)):
        got = cached_run(student, "sample_once", num_classes=num_classes, samples_per_class=samples_per_class,
                         split="train", seed=2)
        images, labels = tuple(got["images"].shape), tuple(got["labels"].shape)
        assert images == (samples_per_class, num_classes, IMAGE_SIZE), (
            f"with N={num_classes}, K+1={samples_per_class}: images have shape {images}, expected "
            f"{(samples_per_class, num_classes, IMAGE_SIZE)}")
        assert labels == (samples_per_class, num_classes, num_classes), (
            f"with N={num_classes}, K+1={samples_per_class}: labels have shape {labels}, expected "
            f"{(samples_per_class, num_classes, num_classes)}")


@pytest.mark.points(3)
def test_support_rows_in_class_order(student):
    """support rows 0..K-1 are in class order: labels[k] is np.eye(N)"""
    _, labels = _episodes(student, num_classes=5, samples_per_class=4, episodes=20)
    for episode, episode_labels in enumerate(labels):
        for row in range(labels.shape[1] - 1):
            assert np.array_equal(episode_labels[row], np.eye(5)), (
                f"episode {episode}, support row {row}: labels are\n{episode_labels[row]}\nexpected np.eye(N): "
                "support images stay in class order (image [k, n] is class n); only the query row is shuffled")


@pytest.mark.points(2)
def test_query_row_one_of_each_class(student):
    """the query row holds one image of each class, labelled one-hot"""
    _, labels = _episodes(student, num_classes=5, samples_per_class=4, episodes=20)
    for episode, query in enumerate(labels[:, -1]):
        one_hot = np.all((query == 0) | (query == 1)) and np.all(query.sum(-1) == 1)
        assert one_hot and sorted(query.argmax(-1)) == list(range(5)), (
            f"episode {episode}: the query row's labels are\n{query}\nexpected each class exactly once, one-hot "
            "(a permutation of the rows of np.eye(N))")


@pytest.mark.points(2)
def test_images_are_dataset_drawings(student, dataset):
    """every image is an Omniglot drawing, as the store holds it divided by 255"""
    _, index = dataset
    images, _ = _episodes(student, num_classes=5, samples_per_class=4, episodes=20)
    for position in np.ndindex(images.shape[:3]):
        assert index.identify(images[position]), (
            f"image {list(position)} (episode, row, column) is not a drawing of the dataset: expected ink values "
            f"(strokes 1.0, background 0.0) exactly equal to store.images / 255, e.g. from self.load_drawings; "
            f"its values range from {images[position].min():.3f} to {images[position].max():.3f}")


@pytest.mark.points(2)
def test_class_images_one_character(student, dataset):
    """the K+1 images of a class (its support column and its query) are drawings of one character"""
    _, index = dataset
    images, labels = _episodes(student, num_classes=5, samples_per_class=4, episodes=20)
    for episode, classes in enumerate(_classes(index, images, labels)):
        for c, identity in enumerate(classes):
            assert not identity.unknown, f"episode {episode}: class {c} holds images that are not dataset drawings"
            assert identity.characters, (
                f"episode {episode}: the support images of column {c} and the query labelled {c} are drawings of "
                "different characters; all K+1 images of a class must show one character (check how images are "
                "arranged into [K+1, N, 784]: a reshape is not a transpose)")


@pytest.mark.points(3)
def test_drawings_distinct_within_class(student, dataset):
    """a class never repeats a drawing (the query is not one of its support drawings)"""
    _, index = dataset
    for num_classes, samples_per_class, episodes in ((3, 20, 10), (5, 4, 20)):
        images, labels = _episodes(student, num_classes, samples_per_class, episodes=episodes)
        for episode, classes in enumerate(_classes(index, images, labels)):
            for c, identity in enumerate(classes):
                assert identity.characters, f"episode {episode}: class {c} mixes characters"
                assert identity.distinct, (
                    f"with K+1={samples_per_class}, episode {episode}: class {c} uses one drawing twice; pick "
                    "K+1 distinct drawings per class (support and query together, without replacement)")


@pytest.mark.points(3)
def test_classes_distinct_characters(student, dataset):
    """the N classes of an episode are N different characters"""
    _, index = dataset
    # With N=20 of the 100 val characters, drawing with replacement repeats one in 86% of episodes.
    images, labels = _episodes(student, num_classes=20, samples_per_class=2, split="val", episodes=30)
    for episode, classes in enumerate(_classes(index, images, labels)):
        assert all(identity.characters for identity in classes), f"episode {episode}: a class mixes characters"
        assert distinct_characters(classes), (
            f"episode {episode}: two classes are the same character; choose N characters without replacement")


@pytest.mark.points(2)
def test_characters_from_requested_split(student, dataset):
    """batch_type selects the split: every character comes from it"""
    store, index = dataset
    for seed, split in enumerate(SPLITS):
        allowed = set(store.rows(split).tolist())
        images, labels = _episodes(student, num_classes=5, samples_per_class=2, split=split, seed=seed, episodes=20)
        for episode, classes in enumerate(_classes(index, images, labels)):
            for c, identity in enumerate(classes):
                assert identity.characters & allowed, (
                    f"batch_type={split!r}, episode {episode}, class {c}: the character "
                    f"{store.characters[min(identity.characters)] if identity.characters else '?'} is not in the "
                    f"{split} split (draw from self.character_rows)")


# Query order: over M episodes of N=3, each of the 3! = 6 orders of the query row has frequency p = 1/6 for a correct
# generator. Hoeffding's inequality bounds P(|freq - p| > t) <= 2 exp(-2 M t^2) per order; with the union over the
# 6 orders, t = sqrt(ln(2 * 6 / FALSE_FAILURE) / (2 M)) makes a correct generator fail with probability <= 1e-6.
# M = 1200 gives t = 0.082: an unshuffled row (frequency 1), a rotation-only shuffle (1/3) or a reversed-or-not
# coin flip (1/2) all fail.
QUERY_ORDER_EPISODES = 1200
FALSE_FAILURE = 1e-6


@pytest.mark.points(2)
def test_query_order_uniform(student):
    """the query row is shuffled: every order of the classes is equally likely"""
    num_classes = 3
    _, labels = _episodes(student, num_classes=num_classes, samples_per_class=2, seed=3,
                          episodes=QUERY_ORDER_EPISODES)
    orders = labels[:, -1].argmax(-1)
    assert all(sorted(order) == list(range(num_classes)) for order in orders), (
        "the query row does not hold each class exactly once (see test_query_row_one_of_each_class)")
    permutations = list(itertools.permutations(range(num_classes)))
    tolerance = math.sqrt(math.log(2 * len(permutations) / FALSE_FAILURE) / (2 * QUERY_ORDER_EPISODES))
    expected = 1 / len(permutations)
    counts = {p: 0 for p in permutations}
    for order in orders:
        counts[tuple(int(c) for c in order)] += 1
    for permutation, count in counts.items():
        frequency = count / QUERY_ORDER_EPISODES
        assert abs(frequency - expected) <= tolerance, (
            f"over {QUERY_ORDER_EPISODES} episodes (N={num_classes}) the query row came in class order "
            f"{list(permutation)} {count} times ({frequency:.3f}); a uniform shuffle gives {expected:.3f} +- "
            f"{tolerance:.3f}. Shuffle the query row with one random permutation of the N classes per episode")


# Class pool: 800 episodes of N=5 from the 100 val characters on ONE generator. Each character is in an episode with
# probability 5/100, so it misses all of the last 400 episodes with probability 0.95^400 = 1.2e-9, and some character
# does with probability <= 1.2e-7: a generator that removes used characters (running out after 20 episodes) or
# draws from a fixed subset fails, a correct one passes.
POOL_EPISODES = 800


@pytest.mark.points(2)
def test_class_pool_does_not_shrink(student, dataset):
    """every episode draws from the whole split, however many episodes came before"""
    store, index = dataset
    images, labels = _episodes(student, num_classes=5, samples_per_class=2, split="val", seed=4,
                               episodes=POOL_EPISODES)
    late = POOL_EPISODES // 2
    seen = set()
    for classes in _classes(index, images[late:], labels[late:]):
        for identity in classes:
            seen |= identity.characters
    missing = set(store.rows("val").tolist()) - seen
    assert not missing, (
        f"after {late} episodes on one generator, the next {POOL_EPISODES - late} episodes of 5 val characters "
        f"never used {len(missing)} of the 100 val characters (e.g. {store.characters[min(missing)]}); every "
        "episode must choose among all characters of the split (never remove characters from the pool)")
