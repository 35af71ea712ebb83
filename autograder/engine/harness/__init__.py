"""The trusted grading harness: a pytest plugin (`plugin`) and the worker client behind its fixtures (`runner`).

Grader tests may import `StudentError` (raised by `student.run` when the student's code fails a probe) and
`GraderError` (raised by `reference.run`) from here, and `run_data_dir` for harness-side code that reads the store.
"""

from __future__ import annotations

import json
from pathlib import Path

from autograder.engine.harness.runner import GraderError, StudentError

__all__ = ["GraderError", "StudentError", "run_data_dir"]


def run_data_dir(config) -> str | None:
    """The Omniglot data folder this grading run gave the workers (`data_dir` of its run config), or None.

    Harness-side code that draws episodes or scores predictions must read the same store as the workers; None
    (no `--autograder-config`, or no data folder in it) means omniglot_data's default folder.
    """
    path = config.getoption("--autograder-config")
    return json.loads(Path(path).read_text()).get("data_dir") if path else None
