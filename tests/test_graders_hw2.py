"""The HW2 grader (autograder/graders/hw2) through the real engine: the reference scores full marks, the blank starter
scores 0 without a crash, every bug of the validity corpus loses the points of the test named after it and keeps full
marks in the tests of its `keeps` (one bug, one deduction), and every correct-but-different solution scores full
marks on the tests of the code it changes.

The corpus lives in tests/fixtures/validity/hw2/: `bugs.toml` (exact text substitutions into the reference) and
`alternates.toml` (solution regions or whole methods rewritten), built with tests/validity_corpus.py (shared with
HW1) from the CURRENT reference at test time; a snippet or region that is not found exactly once fails loudly, so
the corpus cannot silently drift away from the code it mutates. The full reference and blank-starter gradings run
once per session and are shared.
"""

from __future__ import annotations

import ast
import os
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.assignment import load_assignment
from autograder.engine.grade import grade_submission
from autograder.engine.sandbox import SandboxUnavailable, check_bwrap
from omniglot_data.testing import store  # noqa: F401 (the fixture: skips without the data)
from validity_corpus import (WORKER_START, CorpusError, Variant, build_submission, replace_method, replace_region,
                             substitute)

REPO_ROOT = Path(__file__).resolve().parents[1]
GRADERS_DIR = REPO_ROOT / "autograder" / "graders" / "hw2"
REFERENCE_DIR = REPO_ROOT / "autograder" / "solutions" / "hw2"
CORPUS_DIR = REPO_ROOT / "tests" / "fixtures" / "validity" / "hw2"
STUDENT_FILES = ("protonet.py", "maml.py")
PARALLEL_GRADINGS = 2  # gradings at once (each runs its tests one after another); CI has 2 cores

pytestmark = pytest.mark.slow
BUGS = tomllib.loads((CORPUS_DIR / "bugs.toml").read_text())["bug"]
ALTERNATES = tomllib.loads((CORPUS_DIR / "alternates.toml").read_text())["alternate"]


# ---- building submissions ---------------------------------------------------------------------------------------


def build(entry: dict, kind: str, folder: Path) -> Path:
    """The reference's student files with the corpus entry applied (validity_corpus.build_submission, with
    [[alternate.method]] whole-method rewrites)."""
    edits = entry.get("edit", ()) if kind == "bug" else entry.get("region", ())
    variant = Variant(entry["name"], tuple(entry["tests"]), tuple(edits), kind, tuple(entry.get("method", ())))
    return build_submission(REFERENCE_DIR, variant, folder, STUDENT_FILES)


# ---- grading --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hw2_grader(store):
    with tempfile.TemporaryDirectory() as scratch:
        os.chmod(scratch, 0o711)
        try:
            check_bwrap(Path(scratch))
        except SandboxUnavailable as error:
            pytest.skip(f"bubblewrap unavailable: {error}")
    return load_assignment(GRADERS_DIR)


def full_points(test: dict) -> float:
    """What a test scores when it passes completely (extra credit has max_score 0 and scores its points)."""
    return test["extra_data"]["points"] if test["extra_data"]["extra_credit"] else test["max_score"]


def by_id(results: dict) -> dict[str, dict]:
    return {test["extra_data"]["id"]: test for test in results["tests"]}


def describe(results: dict) -> str:
    lines = [f"score {results['score']} / {results['max_score']}, grader errors: "
             f"{results['extra_data'].get('grader_errors')}"]
    for test in results["tests"]:
        lines.append(f"  {test['status']:7} {test['score']}/{test['max_score']} {test['extra_data']['id']}: "
                     f"{test.get('output', '')[:600]}")
    return "\n".join(lines)


def _wanted(session) -> set[str]:
    """The gradings the collected tests of this module read (all of them, or those chosen with -k / node ids)."""
    keys = set()
    for item in session.items:
        if item.module.__name__ != __name__ or "corpus_results" not in getattr(item, "fixturenames", ()):
            continue
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if "bug" in params:
            keys.add(f"bug:{params['bug']['name']}")
        elif "alternate" in params:
            keys.add(f"alternate:{params['alternate']['name']}")
        else:
            keys |= {"reference", "blank"}
    return keys


@pytest.fixture(scope="session")
def corpus_results(hw2_grader, tmp_path_factory, request):
    """The gradings the collected tests need (all, or those chosen with -k), run once, PARALLEL_GRADINGS at a time:
    the reference and the blank starter (all tests, cpu profile), each bug (its named tests and its keeps), each
    alternate (the tests of the files it changes)."""
    root = tmp_path_factory.mktemp("hw2-corpus")
    jobs: dict[str, tuple[Path, list[str] | None]] = {
        "reference": (REFERENCE_DIR, None),
        "blank": (hw2_grader.release_dir, None),
    }
    test_ids = _test_ids(hw2_grader)
    for number, bug in enumerate(BUGS):
        unknown = sorted(set(bug["tests"]) - set(test_ids))
        if unknown:
            raise CorpusError(f"bug {bug['name']!r}: no grader tests {unknown} (the grader has {test_ids})")
        unknown = sorted(set(bug.get("keeps", ())) - set(test_ids))
        if unknown:
            raise CorpusError(f"bug {bug['name']!r}: its keeps name no grader tests {unknown}")
        select = list(dict.fromkeys([*bug["tests"], *bug.get("keeps", ())]))
        jobs[f"bug:{bug['name']}"] = (build(bug, "bug", root / f"bug{number}"), select)
    for number, alternate in enumerate(ALTERNATES):
        unmatched = [p for p in alternate["tests"] if not any(_matches(test, p) for test in test_ids)]
        if unmatched:
            raise CorpusError(f"alternate {alternate['name']!r}: no grader test matches {unmatched}")
        selected = [test for test in test_ids if any(_matches(test, p) for p in alternate["tests"])]
        jobs[f"alternate:{alternate['name']}"] = (build(alternate, "alternate", root / f"alt{number}"), selected)

    wanted = _wanted(request.session)
    jobs = {name: job for name, job in jobs.items() if name in wanted}

    def grade(item):
        name, (submission, select) = item
        return name, grade_submission(hw2_grader, submission, profile="cpu", device="cpu", select=select,
                                      worker_start=WORKER_START)

    # The slowest (the two full gradings) first, so that the pool stays busy to the end.
    with ThreadPoolExecutor(PARALLEL_GRADINGS) as pool:
        results = dict(pool.map(grade, jobs.items()))
    for name, result in results.items():  # the time profile, shown with `pytest -s`
        print(f"{result['execution_time']:7.1f} s  {result['score']:g}/{result['max_score']:g}  {name}")
    return results


def _matches(test_id: str, pattern: str) -> bool:
    """A corpus `tests` entry names one test (`file.py::test`) or every test of a grader file (`file.py`)."""
    return test_id == pattern or test_id.split("::")[0] == pattern


def _test_ids(assignment) -> list[str]:
    """`file::test` of every grader test, read from the grader sources (no grading needed)."""
    ids = []
    for path in sorted(assignment.graders_dir.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids.append(f"{path.name}::{node.name}")
    return ids


# ---- the checks -------------------------------------------------------------------------------------------------


def test_reference_scores_full_marks_with_every_extra_credit(corpus_results):
    results = corpus_results["reference"]
    assert not results["extra_data"].get("grader_errors"), describe(results)
    failed = [test["extra_data"]["id"] for test in results["tests"] if test["status"] != "passed"]
    assert not failed, describe(results)
    assert results["score"] >= results["max_score"] > 0, describe(results)
    extra = sum(test["extra_data"]["points"] for test in results["tests"] if test["extra_data"]["extra_credit"])
    assert results["score"] == pytest.approx(results["max_score"] + extra, abs=1e-6), describe(results)
    assert {test["extra_data"]["id"] for test in results["tests"]} == set(_test_ids(load_assignment(GRADERS_DIR)))


def test_blank_starter_scores_zero_without_grader_errors(corpus_results):
    results = corpus_results["blank"]
    assert not results["extra_data"].get("grader_errors"), describe(results)
    assert results["score"] == 0, describe(results)
    assert len(results["tests"]) == len(corpus_results["reference"]["tests"]), describe(results)
    for test in results["tests"]:
        assert "NotImplementedError" in test["output"] or "not implemented" in test["output"].lower(), (
            f"{test['extra_data']['id']} should fail because of the starter's NotImplementedError:\n"
            + describe(results))


@pytest.mark.parametrize("bug", BUGS, ids=[bug["name"] for bug in BUGS])
def test_bug_loses_points_in_its_named_test(corpus_results, bug):
    results = corpus_results[f"bug:{bug['name']}"]
    assert not results["extra_data"].get("grader_errors"), describe(results)
    tests = by_id(results)
    keeps = [name for name in bug.get("keeps", ()) if name not in bug["tests"]]
    assert set(tests) == {*bug["tests"], *keeps}, f"graded {sorted(tests)}, expected only {bug['tests']} + {keeps}"
    for name in bug["tests"]:
        assert tests[name]["score"] < tests[name]["max_score"], (
            f"the bug {bug['name']!r} kept full marks in {name}:\n{describe(results)}")
    charged_again = [name for name in keeps if tests[name]["status"] != "passed"
                     or tests[name]["score"] < full_points(tests[name])]
    assert not charged_again, f"the bug {bug['name']!r} also lost points in {charged_again}:\n{describe(results)}"


@pytest.mark.parametrize("alternate", ALTERNATES, ids=[alternate["name"] for alternate in ALTERNATES])
def test_correct_alternate_scores_full_marks(corpus_results, alternate):
    results = corpus_results[f"alternate:{alternate['name']}"]
    assert not results["extra_data"].get("grader_errors"), describe(results)
    assert results["tests"], f"no grader test selected for {alternate['tests']}"
    lost = [test for test in results["tests"] if test["status"] != "passed" or test["score"] < full_points(test)]
    assert not lost, describe(results)


def test_corpus_edits_fail_loudly_when_they_no_longer_apply():
    with pytest.raises(CorpusError, match="occurs 0 times"):
        substitute("a = 1\n", "b = 2", "b = 3", "missing")
    with pytest.raises(CorpusError, match="occurs 2 times"):
        substitute("a = 1\na = 1\n", "a = 1", "a = 2", "ambiguous")
    source = (REFERENCE_DIR / "maml.py").read_text()
    with pytest.raises(CorpusError, match="_no_such_method"):
        replace_region(source, "MAML._no_such_method", "pass", "unknown method")
    with pytest.raises(CorpusError, match="0 solution regions"):
        replace_region(source, "MAML.train_step", "pass", "method without a region")
    with pytest.raises(CorpusError, match="0 methods MAML._no_such_method"):
        replace_method(source, "MAML._no_such_method", "pass", "unknown method")
