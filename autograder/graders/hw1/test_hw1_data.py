"""HW1 part 1: `DataGenerator._sample`, checked by its properties, never by the reference's random stream.

A correct generator may call its random generator in any order, so no test compares episodes with the reference's.
Every image is identified against the dataset instead (`hw1_episodes.DrawingIndex`), and the random choices are checked
statistically with fixed seeds and bounds whose false-failure probability is stated next to each test.

Every test earns its points on sampled episodes only (`_require_sampled`): real drawings that form classes of K+1
drawings of one character, more than one character per episode, new drawings from episode to episode. Zeros,
constants, noise, one drawing everywhere, random drawings without classes or one fixed episode earn nothing, whatever
their labels (tests/test_graders_degenerate.py). Each test then
charges one slip once: the images count as drawings under a normalisation slip (0..255, inverted) everywhere but in
test_images_are_dataset_drawings, the dtype only in test_sample_returns_float32_numpy, support rows out of class order
only in test_support_rows_in_class_order (classes are read from every row's labels), classes that mix characters
only in test_class_images_one_character (the other tests then group the images by character), and a sampler that
uses the global random generators only in test_config_seed_determines_stream (the probes seed them too).

PYTEST_DONT_REWRITE: the feedback shows each assertion's message alone, without pytest's introspection.
"""

import itertools
import math

import numpy as np
import pytest

from autograder.engine.harness import run_data_dir
from hw1_call_cache import cached_run
from hw1_episodes import (character_groups, class_members, distinct_characters, identify_class,
                          store_and_index, to_ink)

IMAGE_SIZE = 784
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def dataset(request):
    """(store, index) of the Omniglot data the workers read."""
    return store_and_index(run_data_dir(request.config))


def _episodes(student, index, num_classes, samples_per_class, split="train", seed=0, episodes=20,
              global_seed=None):
    """`episodes` consecutive episodes of one generator, images [E, K+1, N, 784] and labels [E, K+1, N, N], once
    they are sampled episodes (`_require_sampled`)."""
    got = cached_run(student, "sample_episodes", num_classes=num_classes, samples_per_class=samples_per_class,
                     split=split, seed=seed, episodes=episodes, global_seed=global_seed)
    images, labels = np.asarray(got["images"]), np.asarray(got["labels"])
    expected_images = (episodes, samples_per_class, num_classes, IMAGE_SIZE)
    expected_labels = (episodes, samples_per_class, num_classes, num_classes)
    assert images.shape == expected_images and labels.shape == expected_labels, (
        f"_sample() with N={num_classes}, K+1={samples_per_class} returned images of shape {images.shape[1:]} and "
        f"labels of shape {labels.shape[1:]}; expected {expected_images[1:]} and {expected_labels[1:]}")
    _require_sampled(index, images, f"{episodes} episodes of N={num_classes}, K+1={samples_per_class} ({split})")
    return images, labels


def _require_sampled(index, episodes, what):
    """Non-degeneracy: a property of the episodes earns its points only on sampled ones. `episodes` is a list of
    one generator's episodes [K+1, N, 784] in the order drawn. Each image must be an Omniglot drawing (possibly under
    a normalisation slip, 0..255 or inverted: test_images_are_dataset_drawings alone charges those); grouped by the
    character it shows, an episode's images must form classes of K+1 drawings (a multiple of K+1 per character:
    classes that repeat a character, or images placed in the wrong class, are the other tests' to charge); an
    episode of N >= 2 classes must show two characters at least; and the episodes must not all hold the same
    N(K+1) drawings. Zeros, constants, noise, one drawing everywhere, random drawings without classes and one fixed
    episode all fail."""
    drawings = set()
    for episode, images in enumerate(episodes):
        samples_per_class, num_classes = images.shape[:2]
        characters: dict[int, int] = {}
        for position in np.ndindex(images.shape[:-1]):
            image = images[position]
            found = index.identify(image, lenient=True)
            assert found, (
                f"{what}: image {[episode, *position]} (episode, row, column) is not an Omniglot drawing (its values "
                f"range from {image.min():.3g} to {image.max():.3g}); this test checks real episodes only: load the "
                "drawings with self.load_drawings")
            row, drawing = found[0]
            characters[row] = characters.get(row, 0) + 1
            drawings.add((row, drawing))
        counts = sorted(characters.values())
        assert all(count % samples_per_class == 0 for count in counts), (
            f"{what}: episode {episode} holds no classes: grouped by the character they show, its "
            f"{images.shape[0] * num_classes} images form groups of {counts} drawings, where each class is K+1 = "
            f"{samples_per_class} drawings of one character (K support images and the query). This test checks "
            "real episodes only: choose N characters, then K+1 drawings of each")
        assert num_classes < 2 or len(characters) >= 2, (
            f"{what}: all images of episode {episode} show one character; the N = {num_classes} classes of an "
            "episode are different characters. This test checks real episodes only")
    if len(episodes) >= 2:
        per_episode = episodes[0].shape[0] * episodes[0].shape[1]
        assert len(drawings) > per_episode, (
            f"{what}: {len(episodes)} episodes hold only {len(drawings)} different drawings between them, what "
            "one episode holds: every _sample() call must draw new characters and drawings (from self.rng). This "
            "test checks sampled episodes only")


def _require_real_episodes(index, episodes, what):
    """`_require_sampled`, and one-hot labels (in any order: the label tests judge the order). `episodes` is a list
    of (images [K+1, N, 784], labels [K+1, N, N]) in the order drawn."""
    _require_sampled(index, [np.asarray(images) for images, _ in episodes], what)
    for labels in (np.asarray(labels) for _, labels in episodes):
        assert np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1), (
            f"{what}: the labels are not one-hot (every labels[k, n] holds a single 1); this test checks real "
            "episodes only (see test_support_rows_in_class_order and test_query_row_one_of_each_class)")


def _require_readable_labels(labels):
    """The checks below read each image's class from its label; say so plainly when the labels cannot say."""
    num_classes = labels.shape[-1]
    one_hot = np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1)
    assert one_hot and np.all(np.sort(labels.argmax(-1), axis=-1) == np.arange(num_classes)), (
        "this check reads each image's class from its label, but the labels are not as specified (every row "
        "labels each of the N classes once, one-hot: support rows np.eye(N), the query row a permutation of its "
        "rows); see test_support_rows_in_class_order and test_query_row_one_of_each_class")


def _classes(index, images, labels, regroup=True):
    """ClassIdentity of every class of every episode: [E][N] (drawings under a normalisation slip identified).

    With `regroup`, an episode whose classes mix characters (a layout bug: test_class_images_one_character's) is
    judged by its images grouped by character instead, so that the tests of what the sampler chose (distinct
    drawings and characters, the split, the pool) do not charge that bug again."""
    _require_readable_labels(labels)
    result = []
    for episode, (episode_images, episode_labels) in enumerate(zip(images, labels)):
        classes = [identify_class(index, drawings, lenient=True)
                   for drawings in class_members(episode_images, episode_labels)]
        assert not any(identity.unknown for identity in classes), (
            f"episode {episode} holds images that are not Omniglot drawings; this test checks real episodes only "
            "(see test_images_are_dataset_drawings)")
        if regroup and not all(identity.characters for identity in classes):
            classes = [identify_class(index, group, lenient=True)
                       for group in character_groups(index, episode_images)]
        result.append(classes)
    return result


def _calls(student, num_classes, samples_per_class, split, seed):
    """Two consecutive `_sample()` results of one generator, exactly as returned: [(images, labels, types)]."""
    got = cached_run(student, "sample_calls", num_classes=num_classes, samples_per_class=samples_per_class,
                     split=split, seed=seed, calls=2)
    return list(zip(got["images"], got["labels"], got["images_type"], got["labels_type"]))


@pytest.mark.points(1)
def test_sample_returns_float32_numpy(student, dataset):
    """_sample returns two float32 numpy arrays"""
    _, index = dataset
    for num_classes, samples_per_class, split in ((3, 2, "train"), (5, 4, "test")):
        calls = _calls(student, num_classes, samples_per_class, split, seed=1)
        _require_real_episodes(index, [(images, labels) for images, labels, _, _ in calls],
                               f"two _sample() calls (N={num_classes}, K+1={samples_per_class}, {split})")
        for images, labels, images_type, labels_type in calls:
            for name, value, kind in (("images", images, images_type), ("labels", labels, labels_type)):
                assert kind == "numpy.ndarray", f"_sample() returned {name} as a {kind}; expected a numpy array"
                assert value.dtype == np.float32, (
                    f"_sample() returned {name} of dtype {value.dtype}; expected float32 (e.g. .astype(np.float32))")


@pytest.mark.points(2)
def test_sample_shapes(student, dataset):
    """images [K+1, N, 784] and labels [K+1, N, N], for several N and K"""
    _, index = dataset
    for num_classes, samples_per_class in ((1, 2), (3, 2), (4, 5), (2, 20)):
        calls = _calls(student, num_classes, samples_per_class, "train", seed=2)
        for call, (images, labels, _, _) in enumerate(calls):
            where = f"with N={num_classes}, K+1={samples_per_class}, _sample() call {call + 1}"
            images_shape, labels_shape = tuple(images.shape), tuple(labels.shape)
            assert images_shape == (samples_per_class, num_classes, IMAGE_SIZE), (
                f"{where}: images have shape {images_shape}, expected {(samples_per_class, num_classes, IMAGE_SIZE)}")
            assert labels_shape == (samples_per_class, num_classes, num_classes), (
                f"{where}: labels have shape {labels_shape}, expected {(samples_per_class, num_classes, num_classes)}")
        _require_real_episodes(index, [(images, labels) for images, labels, _, _ in calls],
                               f"two _sample() calls with N={num_classes}, K+1={samples_per_class}")


@pytest.mark.points(3)
def test_support_rows_in_class_order(student, dataset):
    """support rows 0..K-1 are in class order: labels[k] is np.eye(N)"""
    _, index = dataset
    images, labels = _episodes(student, index, num_classes=5, samples_per_class=4, episodes=20)
    for episode, episode_labels in enumerate(labels):
        for row in range(labels.shape[1] - 1):
            assert np.array_equal(episode_labels[row], np.eye(5)), (
                f"episode {episode}, support row {row}: labels are\n{episode_labels[row]}\nexpected np.eye(N): "
                "support images stay in class order (image [k, n] is class n); only the query row is shuffled")


@pytest.mark.points(2)
def test_query_row_one_of_each_class(student, dataset):
    """the query row holds one image of each class, labelled one-hot"""
    _, index = dataset
    images, labels = _episodes(student, index, num_classes=5, samples_per_class=4, episodes=20)
    for episode, query in enumerate(labels[:, -1]):
        one_hot = np.all((query == 0) | (query == 1)) and np.all(query.sum(-1) == 1)
        assert one_hot and sorted(query.argmax(-1)) == list(range(5)), (
            f"episode {episode}: the query row's labels are\n{query}\nexpected each class exactly once, one-hot "
            "(a permutation of the rows of np.eye(N))")


@pytest.mark.points(2)
def test_images_are_dataset_drawings(student, dataset):
    """every image is an Omniglot drawing, as the store holds it divided by 255"""
    _, index = dataset
    images, _ = _episodes(student, index, num_classes=5, samples_per_class=4, episodes=20)
    for position in np.ndindex(images.shape[:3]):
        image = images[position]
        if index.identify(image):
            continue
        _, slips = to_ink(image)
        found = (f"it is a dataset drawing {' and '.join(slips)}" if slips and index.identify(image, lenient=True)
                 else "it is no dataset drawing")
        raise AssertionError(
            f"image {list(position)} (episode, row, column) is not a drawing in the specified form: {found}; "
            "expected ink values (strokes 1.0, background 0.0) exactly equal to store.images / 255, e.g. from "
            f"self.load_drawings (its values range from {image.min():.3f} to {image.max():.3f})")


@pytest.mark.points(2)
def test_class_images_one_character(student, dataset):
    """the K+1 images of a class (its support column and its query) are drawings of one character"""
    _, index = dataset
    images, labels = _episodes(student, index, num_classes=5, samples_per_class=4, episodes=20)
    for episode, classes in enumerate(_classes(index, images, labels, regroup=False)):
        for c, identity in enumerate(classes):
            assert identity.characters, (
                f"episode {episode}: the images labelled {c} (support column {c} and the query labelled {c}) are "
                "drawings of different characters; all K+1 images of a class must show one character (check how "
                "images are arranged into [K+1, N, 784]: a reshape is not a transpose)")


@pytest.mark.points(3)
def test_drawings_distinct_within_class(student, dataset):
    """a class never repeats a drawing (the query is not one of its support drawings)"""
    _, index = dataset
    for num_classes, samples_per_class, episodes in ((3, 20, 10), (5, 4, 20)):
        images, labels = _episodes(student, index, num_classes, samples_per_class, episodes=episodes)
        for episode, classes in enumerate(_classes(index, images, labels)):
            for c, identity in enumerate(classes):
                assert identity.distinct, (
                    f"with K+1={samples_per_class}, episode {episode}: class {c} uses one drawing twice; pick "
                    "K+1 distinct drawings per class (support and query together, without replacement)")


@pytest.mark.points(3)
def test_classes_distinct_characters(student, dataset):
    """the N classes of an episode are N different characters"""
    _, index = dataset
    # With N=20 of the 100 val characters, drawing with replacement repeats one in 86% of episodes.
    images, labels = _episodes(student, index, num_classes=20, samples_per_class=2, split="val", episodes=30)
    for episode, classes in enumerate(_classes(index, images, labels)):
        shown = len(frozenset().union(*(identity.characters for identity in classes)))
        assert len(classes) == 20 and distinct_characters(classes), (
            f"episode {episode}: two classes are the same character (its images show {shown} characters, N=20 "
            "classes need 20); choose N characters without replacement")


@pytest.mark.points(1)
def test_characters_from_requested_split(student, dataset):
    """batch_type selects the split: every character comes from it"""
    store, index = dataset
    for seed, split in enumerate(SPLITS):
        allowed = set(store.rows(split).tolist())
        images, labels = _episodes(student, index, num_classes=5, samples_per_class=2, split=split, seed=seed,
                                   episodes=20)
        for episode, classes in enumerate(_classes(index, images, labels)):
            for c, identity in enumerate(classes):
                assert identity.characters & allowed, (
                    f"batch_type={split!r}, episode {episode}, class {c}: the character "
                    f"{store.characters[min(identity.characters)]} is not in the {split} split (draw from "
                    "self.character_rows)")


# Seeds: a generator's stream must follow from config["seed"] alone. The other probes also seed the global
# generators (random, numpy, torch) from the test's seed, so a sampler that uses them loses this test only.
@pytest.mark.points(2)
def test_config_seed_determines_stream(student, dataset):
    """config["seed"] alone fixes the episode stream, whatever the global random state"""
    _, index = dataset
    streams = {}
    for seed, global_seed in ((5, 100), (5, 200), (6, 100)):
        images, labels = _episodes(student, index, num_classes=4, samples_per_class=3, seed=seed, episodes=5,
                                   global_seed=global_seed)
        _require_real_episodes(index, list(zip(images, labels)), f"episodes of config seed {seed}")
        streams[seed, global_seed] = images, labels
    same = all(np.array_equal(a, b) for a, b in zip(streams[5, 100], streams[5, 200]))
    assert same, (
        "two generators with config={'seed': 5} gave different episodes because the global random generators "
        "(random, np.random, torch) were in different states: take every random choice from self.rng, which "
        "__init__ seeds from config['seed'] (not from np.random, random or torch)")
    assert not np.array_equal(streams[5, 100][0], streams[6, 100][0]), (
        "generators with config seeds 5 and 6 gave the same episodes: seed self.rng from config['seed']")


# Query order: over M episodes of N=3, each of the 3! = 6 orders of the query row has frequency p = 1/6 for a correct
# generator. Hoeffding's inequality bounds P(|freq - p| > t) <= 2 exp(-2 M t^2) per order; with the union over the
# 6 orders, t = sqrt(ln(2 * 6 / FALSE_FAILURE) / (2 M)) makes a correct generator fail with probability <= 1e-6.
# M = 1200 gives t = 0.082: an unshuffled row (frequency 1), a rotation-only shuffle (1/3) or a reversed-or-not
# coin flip (1/2) all fail.
QUERY_ORDER_EPISODES = 1200
FALSE_FAILURE = 1e-6


@pytest.mark.points(2)
def test_query_order_uniform(student, dataset):
    """the query row is shuffled: every order of the classes is equally likely"""
    _, index = dataset
    num_classes = 3
    images, labels = _episodes(student, index, num_classes=num_classes, samples_per_class=2, seed=3,
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
    images, labels = _episodes(student, index, num_classes=5, samples_per_class=2, split="val", seed=4,
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
