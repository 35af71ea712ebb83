"""Calibration (autograder.scoring.calibration, `python -m autograder calibrate`), the HW1 grader's harness-side helpers and
the validity-corpus builder.

Fast tests: the bar rule and file handling on temporary files, the committed HW1 calibration against
assignment.toml, the drawing identification the data tests rely on (genuine duplicate drawings included), and that
every corpus variant still applies to the current reference.
One slower test runs `calibrate` on the real reference with a budget too small to learn anything and checks that it
refuses to write a bar.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder import GRADERS_DIR
from autograder.assignment import load_assignment
from autograder.scoring.calibration import (MIN_GAP, Bar, CalibrationError, calibrate_command, choose_bar, load_bar,
                                    pending_entry, read_calibration, write_profile)
from omniglot_data.testing import store  # noqa: F401 (the fixture: skips without the data)

HW1_GRADERS = GRADERS_DIR / "hw1"


def _load_grader_module(name: str):
    """A harness-side module of the HW1 grader, under a private name (tests of other graders may share names)."""
    sys.path.insert(0, str(HW1_GRADERS))
    try:
        spec = importlib.util.spec_from_file_location(f"_hw1_grader_{name}", HW1_GRADERS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HW1_GRADERS))
    return module


# ---------------------------------------------------------------------------------------------- the bar rule


def test_threshold_is_worst_seed_minus_margin_and_floor_is_best_untrained():
    threshold, floor = choose_bar([0.86, 0.88, 0.87], [0.49, 0.51, 0.50])
    assert threshold == pytest.approx(0.86 - 0.05) and floor == 0.51


def test_a_wide_seed_spread_widens_the_margin():
    values = [0.80, 0.90, 0.85]  # standard deviation 0.05: margin 2 * 0.05 = 0.10 > 0.05
    threshold, _ = choose_bar(values, [0.5, 0.5])
    assert threshold == pytest.approx(0.80 - 0.10, abs=1e-4)


def test_a_budget_that_barely_beats_untrained_is_refused():
    with pytest.raises(CalibrationError, match="does not clear an untrained model"):
        choose_bar([0.62, 0.63], [0.50, 0.51])


def test_non_finite_measurements_are_refused():
    with pytest.raises(CalibrationError, match="non-finite"):
        choose_bar([0.9, math.nan], [0.5])


def test_credit_is_zero_at_the_floor_full_at_the_threshold_linear_between():
    bar = Bar("m", "cpu", threshold=0.8, floor=0.5, values=(0.9,), untrained=(0.5,))
    assert bar.credit(0.5) == 0 and bar.credit(0.3) == 0 and bar.credit(math.nan) == 0
    assert bar.credit(0.8) == 1 and bar.credit(0.95) == 1
    assert bar.credit(0.65) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------- the file


def _measured(budget):
    return {"status": "measured", "budget": budget,
            "metrics": {"acc": {"threshold": 0.8, "floor": 0.5, "values": [0.9, 0.92], "untrained": [0.5, 0.49]}}}


def test_write_profile_keeps_the_other_profiles(tmp_path):
    write_profile(tmp_path, "hwX", "gpu", pending_entry("hwX", "gpu"))
    write_profile(tmp_path, "hwX", "cpu", _measured({"steps": 3}))
    data = read_calibration(tmp_path)
    assert set(data["profiles"]) == {"cpu", "gpu"} and data["assignment"] == "hwX"
    assert load_bar(tmp_path, "acc", "cpu", budget={"steps": 3}).threshold == 0.8


def test_pending_profile_fails_loudly_with_the_command(tmp_path):
    write_profile(tmp_path, "hwX", "gpu", pending_entry("hwX", "gpu"))
    with pytest.raises(CalibrationError, match="pending.*python -m autograder calibrate hwX --profile gpu"):
        load_bar(tmp_path, "acc", "gpu")


def test_budget_changed_since_calibration_fails_loudly(tmp_path):
    write_profile(tmp_path, "hwX", "cpu", _measured({"steps": 3}))
    with pytest.raises(CalibrationError, match="calibrated with the budget"):
        load_bar(tmp_path, "acc", "cpu", budget={"steps": 4})


def test_missing_profile_or_metric_fails_loudly(tmp_path):
    with pytest.raises(CalibrationError, match="has not been calibrated"):
        load_bar(tmp_path, "acc", "cpu")
    write_profile(tmp_path, "hwX", "cpu", _measured({"steps": 3}))
    with pytest.raises(CalibrationError, match="no bar for 'loss'"):
        load_bar(tmp_path, "loss", "cpu")


def test_corrupt_file_fails_loudly(tmp_path):
    (tmp_path / "calibration.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_bar(tmp_path, "acc", "cpu")


def test_committed_hw1_cpu_bar_is_measured():
    """The cpu bar every default grading uses: measured (>= 3 seeds) under the budget assignment.toml has now."""
    assignment = load_assignment(HW1_GRADERS)
    bar = load_bar(HW1_GRADERS, "mann_accuracy", "cpu", budget=assignment.profile("cpu"))
    assert len(bar.values) >= 3 and bar.threshold - bar.floor >= MIN_GAP
    assert bar.threshold < min(bar.values) and bar.floor >= max(bar.untrained)


@pytest.mark.parametrize("homework", ["hw1", "hw2"])
def test_committed_calibration_matches_assignment_toml(homework):
    """Every profile is measured under the budget assignment.toml has now (every metric of metrics.py has a bar
    that passed its out-of-sample check where one was run), or pending with the command that measures it."""
    graders = GRADERS_DIR / homework
    assignment = load_assignment(graders)
    metric_names = _metric_names(graders)
    for profile, entry in read_calibration(graders)["profiles"].items():
        if entry["status"] == "pending":
            assert entry["command"] == calibrate_command(homework, profile), (profile, entry)
            continue
        for metric in metric_names:
            bar = load_bar(graders, metric, profile, budget=assignment.profile(profile))
            assert bar.threshold < min(bar.values) and bar.floor >= max(bar.untrained), (profile, metric)
            check = entry["metrics"][metric].get("check")
            if check is not None:
                assert check["value"] >= bar.threshold and check["train_seed"] not in entry["metrics"][metric]["seeds"]


def _metric_names(graders: Path) -> list[str]:
    """METRICS of a graders folder's metrics.py, read without importing it (that would import torch)."""
    import ast

    tree = ast.parse((graders / "metrics.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "METRICS" for t in node.targets):
            return [key.value for key in node.value.keys]
    raise AssertionError(f"{graders / 'metrics.py'} defines no METRICS dict")


# ---------------------------------------------------------------------------------------------- calibrate itself


def test_calibrate_usage_errors(capsys):
    from autograder.cli import main

    assert main(["calibrate", "hw1", "--profile", "cpu", "--seeds", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["calibrate", "no-such-homework", "--profile", "cpu"]) == 2


@pytest.mark.slow
def test_calibrate_refuses_a_budget_the_reference_cannot_learn_in(tmp_path, store):
    """The real reference, trained 1 step: no better than untrained, so calibrate must raise, not write a bar."""
    from autograder.scoring.calibrate import calibrate

    assignment = load_assignment(HW1_GRADERS)
    tiny = dict(assignment.profile("cpu"), train_steps=1, eval_episodes=200)
    assignment = dataclasses.replace(assignment, profiles={"cpu": tiny})
    lines = []
    with pytest.raises(CalibrationError, match="does not clear an untrained model"):
        calibrate(assignment, "cpu", [1, 2], "cpu", None, log=lines.append)
    assert len(lines) == 2 and all("untrained" in line for line in lines)


# ---------------------------------------------------------------------------------------------- harness helpers


@pytest.fixture(scope="module")
def episodes_module(store):
    return _load_grader_module("hw1_episodes")


@pytest.fixture(scope="module")
def index(episodes_module):
    return episodes_module.store_and_index(None)[1]


def _drawing(store, row, drawing):
    return store.images[row, drawing].reshape(-1).astype(np.float32) / np.float32(255)


def test_every_store_drawing_identifies_as_itself(index):
    store = index.store
    rng = np.random.default_rng(0)
    for row, drawing in zip(rng.integers(len(store.characters), size=300), rng.integers(20, size=300)):
        assert (int(row), int(drawing)) in index.identify(_drawing(store, row, drawing))


def test_identification_tolerates_rounding_but_not_other_pixels(index):
    image = _drawing(index.store, 5, 3)
    assert index.identify(np.float32(1) - (np.float32(1) - image))  # another order of float32 operations
    assert not index.identify(image[::-1])
    assert not index.identify(1 - image)  # background 1.0: the PNG convention, not ink
    assert not index.identify(image.astype(np.float64) + 0.01)


def test_byte_identical_drawings_never_fail_a_correct_class(episodes_module, index):
    store = index.store
    row = store.row("Braille/character01")
    first, second = (list(store.drawings[row]).index(name) for name in ("0192_03", "0192_19"))
    assert np.array_equal(store.images[row, first], store.images[row, second])
    twins = np.stack([_drawing(store, row, first), _drawing(store, row, second), _drawing(store, row, 0)])
    identity = episodes_module.identify_class(index, twins)
    assert identity.characters == {row} and identity.distinct
    thrice = np.stack([_drawing(store, row, first)] * 3)  # only two drawings hold these pixels
    assert not episodes_module.identify_class(index, thrice).distinct
    repeated = np.stack([_drawing(store, row, 0), _drawing(store, row, 0)])
    assert not episodes_module.identify_class(index, repeated).distinct


def test_classes_of_one_character_are_not_distinct(episodes_module, index):
    store = index.store
    one = episodes_module.identify_class(index, np.stack([_drawing(store, 7, 0), _drawing(store, 7, 1)]))
    other = episodes_module.identify_class(index, np.stack([_drawing(store, 8, 0), _drawing(store, 8, 1)]))
    same = episodes_module.identify_class(index, np.stack([_drawing(store, 7, 2), _drawing(store, 7, 3)]))
    assert episodes_module.distinct_characters([one, other])
    assert not episodes_module.distinct_characters([one, other, same])
    mixed = episodes_module.identify_class(index, np.stack([_drawing(store, 7, 0), _drawing(store, 8, 1)]))
    assert not mixed.characters


def test_the_harness_sampler_draws_valid_secret_episodes(episodes_module, index):
    """The evaluation episodes the harness draws satisfy every property the data tests demand of students."""
    store = index.store
    images, labels = episodes_module.draw_episodes(store, "test", 4, 3, 50, seed=123)
    assert images.shape == (50, 3, 4, 784) and images.dtype == np.float32 and labels.dtype == np.float32
    assert np.all(labels[:, :-1] == np.eye(4))
    test_rows = set(store.rows("test").tolist())
    orders = set()
    for episode_images, episode_labels in zip(images, labels):
        orders.add(tuple(episode_labels[-1].argmax(-1)))
        classes = [episodes_module.identify_class(index, members)
                   for members in episodes_module.class_members(episode_images, episode_labels)]
        assert all(c.distinct and c.characters <= test_rows for c in classes)
        assert episodes_module.distinct_characters(classes)
    assert len(orders) > 10  # of 24 possible query orders
    hidden = episodes_module.hide_query_labels(labels)
    assert np.all(hidden[:, -1] == 0) and np.array_equal(hidden[:, :-1], labels[:, :-1])
    again, _ = episodes_module.draw_episodes(store, "test", 4, 3, 50, seed=123)
    assert np.array_equal(images, again)


def test_call_cache_reuses_replies_and_failures():
    cache = _load_grader_module("hw1_call_cache")
    from autograder.engine.harness import StudentError

    class Runner:
        side = "student"
        calls = 0

        def run(self, probe, **inputs):
            self.calls += 1
            if probe == "broken":
                raise StudentError("broken raised ValueError: no")
            return {"echo": inputs}

    runner = Runner()
    first = cache.cached_run(runner, "echo", x=np.arange(3), y=[1, "a"])
    assert cache.cached_run(runner, "echo", x=np.arange(3), y=[1, "a"]) is first and runner.calls == 1
    cache.cached_run(runner, "echo", x=np.arange(4), y=[1, "a"])
    assert runner.calls == 2
    for _ in range(2):
        with pytest.raises(StudentError, match="broken raised ValueError"):
            cache.cached_run(runner, "broken")
    assert runner.calls == 3


# ---------------------------------------------------------------------------------------------- corpus builder


def test_every_corpus_variant_applies_to_the_current_reference(tmp_path):
    from autograder import SOLUTIONS_DIR
    from validity_corpus import build_submission, load_variants

    reference = SOLUTIONS_DIR / "hw1"
    files = ("load_data.py", "hw1.py")
    bugs, alternates = load_variants(Path(__file__).resolve().parent / "fixtures" / "validity" / "hw1")
    assert len(bugs) >= 13 and len(alternates) >= 5
    for variant in [*bugs, *alternates]:
        built = build_submission(reference, variant, tmp_path / variant.name, files)
        changed = [name for name in files if (built / name).read_text() != (reference / name).read_text()]
        assert changed, f"{variant.name} leaves the reference unchanged"


def test_corpus_builder_fails_loudly_when_the_reference_moved():
    from validity_corpus import CorpusError, replace_region, substitute

    source = "def f(x):\n    # TODO\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    with pytest.raises(CorpusError, match="occurs 0 times"):
        substitute(source, "return y", "return 2 * y", "bug b")
    with pytest.raises(CorpusError, match="occurs 2 times"):
        substitute(source + source, "return x", "return 2 * x", "bug b")
    with pytest.raises(CorpusError, match="no 'g'"):
        replace_region(source, "g", "return 0", "alternate a")
    replaced = replace_region(source, "f", "y = x + 1\nreturn y", "alternate a")
    assert "    y = x + 1\n    return y\n    ### END SOLUTION" in replaced and "return x" not in replaced
    namespace = {}
    exec(compile(replaced, "f", "exec"), namespace)
    assert namespace["f"](1) == 2


def test_recorded_command_reproduces_the_device_and_seeds():
    """A measured entry's command must rerun the same measurement: the gpu profile measured on a CPU says so."""
    assert calibrate_command("hw2", "gpu", 3, 1, "cpu") == "python -m autograder calibrate hw2 --profile gpu --seeds 3 --device cpu"
    assert calibrate_command("hw2", "gpu", 3, 1, "cuda") == "python -m autograder calibrate hw2 --profile gpu --seeds 3"
    assert calibrate_command("hw1", "cpu", 5, 4, "cuda:1").endswith("--seeds 5 --first-seed 4 --device cuda:1")
    assert calibrate_command("hw1", "cpu", 5, 1, "cpu").endswith("--seeds 5")


def _programmed_measure(trained_by_seed: dict[int, float], untrained: float):
    """Stands in for `calibrate._measure`: a value per training seed, no worker started."""
    calls = []

    def measure(workers, function, budget, device, *, train_seed, eval_seed, train):
        calls.append((train_seed, train))
        return (trained_by_seed[train_seed] if train else untrained), 1.0
    return measure, calls


def test_calibrate_refuses_a_bar_the_reference_misses_from_the_graders_seed(monkeypatch, tmp_path):
    """Seeds 1-3 agree, but seed 0 (the one grading uses) sat at chance longer: that bar would fail correct code."""
    from autograder.scoring import calibrate as calibrate_module

    measure, calls = _programmed_measure({0: 0.58, 1: 0.83, 2: 0.79, 3: 0.81}, untrained=0.33)
    monkeypatch.setattr(calibrate_module, "_measure", measure)
    lines = []
    with pytest.raises(CalibrationError, match=r"out-of-sample check failed.*seed 0 reaches 0\.5800"):
        calibrate_module.calibrate(load_assignment(HW1_GRADERS), "cpu", [1, 2, 3], "cpu", None,
                                   data_dir=tmp_path, log=lines.append)
    assert calls[-1] == (0, True) and "out-of-sample" in lines[-1]


def test_calibrate_records_the_out_of_sample_check(monkeypatch, tmp_path):
    from autograder.scoring import calibrate as calibrate_module

    measure, calls = _programmed_measure({0: 0.80, 1: 0.83, 2: 0.79, 3: 0.81}, untrained=0.33)
    monkeypatch.setattr(calibrate_module, "_measure", measure)
    entry = calibrate_module.calibrate(load_assignment(HW1_GRADERS), "cpu", [1, 2, 3], "cpu", None,
                                       data_dir=tmp_path, log=lambda line: None)
    bar = entry["metrics"]["mann_accuracy"]
    assert bar["threshold"] == pytest.approx(0.74) and bar["check"]["train_seed"] == 0
    assert bar["check"]["value"] == 0.8 and len(entry["seconds_per_trained_run"]["mann_accuracy"]) == 4
    # Seed 0 among the calibration seeds (--first-seed 0): in-sample, so there is nothing left to check with.
    calls.clear()
    entry = calibrate_module.calibrate(load_assignment(HW1_GRADERS), "cpu", [0, 1], "cpu", None,
                                       data_dir=tmp_path, log=lambda line: None)
    assert "check" not in entry["metrics"]["mann_accuracy"] and calls.count((0, True)) == 1
