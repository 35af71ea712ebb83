"""The trusted grading harness: a pytest plugin (`plugin`) and the worker client behind its fixtures (`runner`).

Grader tests may import `StudentError` (raised by `student.run` when the student's code fails a probe) and
`GraderError` (raised by `reference.run`) from here.
"""

from autograder.harness.runner import GraderError, StudentError

__all__ = ["GraderError", "StudentError"]
