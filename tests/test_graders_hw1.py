"""The HW1 grader end to end, in the sandbox, with the cpu profile: the reference gets full marks (extra credit
included), the blank starter 0 without a crash, every corpus variant scores as it must (a bug loses points in its
named tests and in no test of its `keeps`), and a syntax error in one submission file costs only that file's tests.

The reference and the blank starter are graded once, with every test; each corpus variant (tests/fixtures/validity/
hw1/) only with the tests it concerns (`grade_submission(select=...)`). The gradings the collected tests need (all,
or those chosen with -k) start together on two threads when the first test needs one, and only those.
`pytest tests/test_graders_hw1.py -s` prints the per-test time profile of the full
reference grading.
"""

from __future__ import annotations

import ast
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder import GRADERS_DIR, REPO_ROOT, SOLUTIONS_DIR
from autograder.assignment import load_assignment
from omniglot_data.testing import store  # noqa: F401 (the fixture: skips without the data)
from validity_corpus import WORKER_START, CorpusError, build_submission, load_variants

CORPUS_DIR = Path(__file__).resolve().parent / "fixtures" / "validity" / "hw1"
HW1_GRADERS = GRADERS_DIR / "hw1"
BUGS, ALTERNATES = load_variants(CORPUS_DIR)
# bug name -> the tests (node ids or groups) it must NOT lose points in, apart from its own: one bug, one deduction
KEEPS = {bug["name"]: tuple(bug.get("keeps", ()))
         for bug in tomllib.loads((CORPUS_DIR / "bugs.toml").read_text())["bug"]}
# A submission file that does not even compile costs only the tests of that file: {case: (file, tests it loses,
# tests that must keep full marks)}. Not corpus entries: the corpus builder rejects code that does not compile.
SYNTAX_ERRORS = {
    "hw1_py_syntax_error": ("hw1.py", ["test_hw1_models.py::test_mann_forward_matches_reference"], ["data"]),
    "load_data_py_syntax_error": ("load_data.py", ["test_hw1_data.py::test_sample_shapes"], ["models"]),
}
PROFILE = "cpu"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hw1(store, sandbox):
    return load_assignment(HW1_GRADERS)


def _grade(assignment, submission, select=None):
    from autograder.engine.grade import grade_submission

    return grade_submission(assignment, submission, profile=PROFILE, select=select, worker_start=WORKER_START)


def _by_id(results: dict) -> dict:
    return {test["extra_data"]["id"]: test for test in results["tests"]}


def _time_profile(results: dict) -> str:
    lines = [f"HW1 grading, {PROFILE} profile: {results['execution_time']:.1f} s in total"]
    for test in sorted(results["tests"], key=lambda t: -t["extra_data"]["seconds"]):
        lines.append(f"  {test['extra_data']['seconds']:6.1f} s  {test['extra_data']['id']}")
    return "\n".join(lines)


def grader_test_ids(file_name: str) -> list[str]:
    """Node ids of the tests a grader file defines (read from its source: the harness alone imports it)."""
    tree = ast.parse((HW1_GRADERS / file_name).read_text())
    return [f"{file_name}::{node.name}" for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


GROUPS = {"data": grader_test_ids("test_hw1_data.py"), "models": grader_test_ids("test_hw1_models.py")}
GROUPS["all"] = sorted(id_ for file in sorted(HW1_GRADERS.glob("test_*.py")) for id_ in grader_test_ids(file.name))


def _expand(entries) -> list[str]:
    """Node ids of corpus test entries (node ids or group names), without repeats, in order."""
    return list(dict.fromkeys(node for entry in entries for node in GROUPS.get(entry, [entry])))


def _broken_copy(file_name: str, dest: Path) -> Path:
    """The reference with `file_name` ending in a syntax error."""
    dest.mkdir(parents=True)
    for name in ("load_data.py", "hw1.py"):
        text = (SOLUTIONS_DIR / "hw1" / name).read_text()
        (dest / name).write_text(text + "\n\ndef unfinished(:\n" if name == file_name else text)
    return dest


def _wanted(session) -> set[str]:
    """The gradings the collected tests of this module read (all of them, or those chosen with -k / node ids)."""
    keys = set()
    for item in session.items:
        if item.module.__name__ != __name__:
            continue
        params = getattr(item, "callspec", None).params if hasattr(item, "callspec") else {}
        if "bug" in params or "alternate" in params:
            keys.add((params.get("bug") or params.get("alternate")).name)
        elif "case" in params:
            keys.add(params["case"])
        else:  # the reference and starter checks
            keys |= {"reference", "starter"}
    return keys


@pytest.fixture(scope="module")
def gradings(hw1, tmp_path_factory, request):
    """The gradings the collected tests need, started at once on two worker threads (longest first);
    {key: (select, future)}.

    Keys: "reference" and "starter" (all tests), each syntax-error case and each corpus variant's name (its own
    tests only).
    """
    root = tmp_path_factory.mktemp("hw1-corpus")
    wanted = _wanted(request.session)
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {key: (None, pool.submit(_grade, hw1, path)) for key, path in
               (("reference", SOLUTIONS_DIR / "hw1"), ("starter", REPO_ROOT / "hw1")) if key in wanted}
    for case, (file_name, loses, keeps) in SYNTAX_ERRORS.items():
        if case not in wanted:
            continue
        submission = _broken_copy(file_name, root / case)
        futures[case] = (_expand([*loses, *keeps]), pool.submit(_grade, hw1, submission, _expand([*loses, *keeps])))
    for variant in [*ALTERNATES, *BUGS]:  # slowest first: the two threads finish together
        if variant.name not in wanted:
            continue
        select = _expand([*variant.tests, *KEEPS.get(variant.name, ())] if variant.kind == "bug" else variant.tests)
        try:
            submission = build_submission(SOLUTIONS_DIR / "hw1", variant, root / variant.name, hw1.student_files)
        except CorpusError as error:  # fails this variant's test, loudly, and nothing else
            futures[variant.name] = (select, _failed(error))
            continue
        futures[variant.name] = (select, pool.submit(_grade, hw1, submission, select))
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _failed(error: Exception) -> Future:
    future = Future()
    future.set_exception(error)
    return future


@pytest.fixture(scope="module")
def reference_results(gradings):
    results = gradings["reference"][1].result()
    print("\n" + _time_profile(results))
    return results


@pytest.fixture(scope="module")
def starter_results(gradings):
    if not (REPO_ROOT / "hw1" / "hw1.py").is_file():
        pytest.fail("the released starter hw1/ is missing: run `python -m autograder release`")
    return gradings["starter"][1].result()


def _failure_report(tests) -> str:
    return "\n".join(f"- {t['extra_data']['id']}: {t['score']}/{t['extra_data']['points']} {t['status']}\n"
                     f"  {t['output'][:600]}" for t in tests)


def test_reference_gets_full_marks_and_all_extra_credit(reference_results):
    results = reference_results
    assert not results["extra_data"]["grader_errors"], results["extra_data"]["grader_errors"]
    short = [t for t in results["tests"] if t["status"] != "passed" or t["score"] < t["extra_data"]["points"]]
    assert not short, "the reference lost points:\n" + _failure_report(short)
    extra = sum(t["extra_data"]["points"] for t in results["tests"] if t["extra_data"]["extra_credit"])
    assert extra > 0 and results["score"] == results["max_score"] + extra


def test_reference_grading_runs_every_grader_test(reference_results):
    assert sorted(_by_id(reference_results)) == GROUPS["all"]
    assert "test_hw1_training.py::test_mann_accuracy" in GROUPS["all"]


def test_blank_starter_scores_zero_without_crashing(starter_results):
    results = starter_results
    assert not results["extra_data"]["grader_errors"], results["extra_data"]["grader_errors"]
    assert results["score"] == 0 and results["max_score"] > 0
    for test in results["tests"]:
        assert test["status"] == "failed", test["extra_data"]["id"]
        assert "NotImplementedError" in test["output"], (test["extra_data"]["id"], test["output"][:800])


# ---------------------------------------------------------------------------------------------- validity corpus


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_bug_loses_points_in_its_named_test(bug, gradings):
    select, future = gradings[bug.name]
    results = future.result()
    assert not results["extra_data"]["grader_errors"], results["extra_data"]["grader_errors"]
    tests = _by_id(results)
    assert sorted(tests) == sorted(select), "select= must run exactly the chosen tests"
    kept = [tests[i] for i in bug.tests if tests[i]["score"] >= tests[i]["extra_data"]["points"]]
    assert not kept, f"bug {bug.name!r} was not caught:\n" + _failure_report(kept)
    charged_again = [tests[i] for i in _expand(KEEPS[bug.name]) if i not in bug.tests
                     and (tests[i]["status"] != "passed" or tests[i]["score"] < tests[i]["extra_data"]["points"])]
    assert not charged_again, f"bug {bug.name!r} also lost points in:\n" + _failure_report(charged_again)


@pytest.mark.parametrize("case", sorted(SYNTAX_ERRORS))
def test_syntax_error_costs_only_that_files_tests(case, gradings):
    file_name, loses, keeps = SYNTAX_ERRORS[case]
    select, future = gradings[case]
    results = future.result()
    assert not results["extra_data"]["grader_errors"], results["extra_data"]["grader_errors"]
    tests = _by_id(results)
    assert sorted(tests) == sorted(select)
    lost = [tests[i] for i in loses]
    assert all(t["score"] == 0 and "SyntaxError" in t["output"] for t in lost), _failure_report(lost)
    short = [tests[i] for i in _expand(keeps) if tests[i]["status"] != "passed"
             or tests[i]["score"] < tests[i]["extra_data"]["points"]]
    assert not short, f"a syntax error in {file_name} also cost:\n" + _failure_report(short)


@pytest.mark.parametrize("alternate", ALTERNATES, ids=[a.name for a in ALTERNATES])
def test_correct_alternate_gets_full_marks(alternate, gradings):
    select, future = gradings[alternate.name]
    results = future.result()
    assert not results["extra_data"]["grader_errors"], results["extra_data"]["grader_errors"]
    tests = _by_id(results)
    assert sorted(tests) == sorted(select) and select
    short = [t for t in tests.values() if t["status"] != "passed" or t["score"] < t["extra_data"]["points"]]
    assert not short, f"correct alternate {alternate.name!r} lost points:\n" + _failure_report(short)
