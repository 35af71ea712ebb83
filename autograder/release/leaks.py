"""The leak check: no solution line, no nbgrader marker and no instructor-only text may reach the student release.

Lines are compared as token sequences (words and single punctuation characters), so spacing does not hide a leak, and
a solution line also counts as leaked when it is only part of a released line, e.g. commented out
(`# loss = F.cross_entropy(logits, labels)`) or followed by a comment.

A region line is *trivial*, and not checked, when after removing its comment it

- is empty (blank or comment-only), or
- holds fewer than two content words, where content words are identifiers other than Python keywords and
  `self`/`cls`, and numbers (`pass`, `return`, `else:`, `)`, `]`, `break`, `return loss`, `x = []`, `self.step()`), or
- is shorter than 8 characters without whitespace (`i += 1`, `x = y`, `a, b = c`).

Such lines carry no part of the answer and turn up in any Python file; everything else must be absent from the release.
A reported line that is not part of the answer belongs outside the region; if it is part of the answer, the copy
outside the region gives it away and must be rewritten. A generic line that has to stay in the region and also
appears elsewhere (`with torch.no_grad():`) can be exempted, visibly and one line at a time, with the comment
`# leak-check: ignore` on that line (the comment goes away with the region).

Instructor-only text (`INSTRUCTOR_TEXT`) is what only makes sense on the instructors' side: the kit's commands
(`python -m autograder ...`), paths and modules of `autograder/`, calibration, nbgrader, solution sources. The release
speaks to students only, so any of it in any released file fails the release. The word "autograder" alone stays
allowed: students know that a grader runs their code.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from autograder.release.markers import MARKER_TEXT, SolutionRegion

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_NON_CONTENT_WORDS = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | {"self", "cls"}
_MIN_NON_WHITESPACE_CHARS = 8
_SEPARATOR = "\x1f"  # joins tokens; whitespace to the token pattern, so never part of a token
IGNORE_PRAGMA = re.compile(r"#\s*leak-check:\s*ignore\b")
INSTRUCTOR_TEXT = re.compile(
    r"-m\s+autograder\b|\bautograder\s+(?:release|calibrate|grade|grade-all|gradescope)\b|\bautograder[/.]\w"
    r"|\bcalibrat\w*|\bnbgrader\b|\b(?:solutions|graders)/|\binstructors?(?:'|\b(?:-only|:|\s+side))"
    r"|\b(?:bench|docs)/\w|--profile\b",  # the kit's own folders and the grader's flag: not in a student's tree
    re.IGNORECASE)


@dataclass(frozen=True)
class SolutionLine:
    source_path: str  # display path of the solution file
    line: int
    text: str  # without comment and surrounding whitespace


def is_trivial(code: str) -> bool:
    """Whether a region line (comment already removed) is too generic to count as a leak; see the module docstring."""
    if len("".join(code.split())) < _MIN_NON_WHITESPACE_CHARS:
        return True
    content_words = [word for word in _WORD.findall(code) if word not in _NON_CONTENT_WORDS]
    return len(content_words) < 2


def solution_lines(regions: list[SolutionRegion], source_path: str) -> list[SolutionLine]:
    """The non-trivial lines of `regions`, the ones the leak check looks for."""
    return [
        SolutionLine(source_path, number, code)
        for region in regions
        for number, code, comment in region.code_lines
        if not is_trivial(code) and not IGNORE_PRAGMA.search(comment)
    ]


def find_leaks(secrets: list[SolutionLine], released: dict[str, str]) -> list[str]:
    """`path:line: message` for each marker and each secret line in the `released` texts (display path -> text)."""
    found: list[tuple[str, int, str]] = []
    needles: dict[str, SolutionLine] = {}
    for secret in secrets:
        needles.setdefault(_joined(secret.text), secret)
    for path, text in released.items():
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            marker = MARKER_TEXT.search(line)
            if marker:
                found.append((path, number, f"nbgrader marker text {marker.group()!r} in the release"))
            instructor = INSTRUCTOR_TEXT.search(line)
            if instructor:
                found.append((path, number, f"instructor-only text {instructor.group()!r} in the release (students "
                                            "cannot use it; say what they need in their own terms)"))
        # One search per needle over the whole file; the separators keep a match within one line and whole tokens.
        haystack = "\n".join(_joined(line) for line in lines)
        for needle, secret in needles.items():
            start = haystack.find(needle)
            while start != -1:
                number = haystack.count("\n", 0, start) + 1
                found.append((path, number, f"solution line leaked: {secret.text!r} "
                                            f"(solution region line {secret.source_path}:{secret.line})"))
                next_line = haystack.find("\n", start)
                start = -1 if next_line == -1 else haystack.find(needle, next_line + 1)
    return [f"{path}:{number}: {message}" for path, number, message in sorted(found)]


def _joined(text: str) -> str:
    return _SEPARATOR + _SEPARATOR.join(_TOKEN.findall(text)) + _SEPARATOR
