"""The data_splits marker: a worker that trains sees no test character anywhere it can read."""

import pytest

from autograder.assignment import load_assignment
from autograder.engine.grade import grade_submission
from omniglot_data import DataNotFoundError, load_store

from engine_helpers import FIXTURES, by_name

DATASPLITS = FIXTURES / "datasplits"


def _have_data() -> bool:
    try:
        load_store()
    except DataNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _have_data(), reason="needs the Omniglot data: run `bash data_download.sh`")
def test_training_workers_cannot_reach_test_characters():
    results = grade_submission(load_assignment(DATASPLITS / "graders"), DATASPLITS / "solution")
    tests = by_name(results)
    assert tests["test_training_workers_hold_no_test_character"]["status"] == "passed", \
        tests["test_training_workers_hold_no_test_character"]["output"]
    assert tests["test_other_workers_see_the_whole_dataset"]["status"] == "passed", \
        tests["test_other_workers_see_the_whole_dataset"]["output"]
    assert results["score"] == 2
