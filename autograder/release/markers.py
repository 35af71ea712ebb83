"""Find and validate the nbgrader solution markers of one Python source file.

A solution region is

    ### BEGIN SOLUTION
    ...reference code...
    ### END SOLUTION

where each marker is a comment alone on its line. nbgrader's own `ClearSolutions` matches the marker text as a plain
substring of any line, so a marker inside a string literal or after code would silently eat the wrong lines. We
therefore locate markers with `tokenize` (real COMMENT tokens only) and reject everything else before nbgrader runs.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"

# Any spelling of nbgrader's delimiters (solutions and hidden tests). Used to reject malformed or misplaced markers in
# the sources and, by the leak check, to prove that no marker survives in the release.
MARKER_TEXT = re.compile(r"\b(?:BEGIN|END)\s+(?:SOLUTION|HIDDEN\s+TESTS)\b")
_OWN_LINE = "a marker must be a comment on its own line"

# Token types that make a line "code" (a marker must not share its line with one of them).
_LAYOUT_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
# String-like tokens: a marker inside one is text, not a marker (FSTRING_MIDDLE exists from Python 3.12 on).
_STRING_TOKENS = {tokenize.STRING} | ({tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())


class MarkupError(Exception):
    """The source's markers (or its syntax) are invalid. `problems` are `path:line: message` strings."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SolutionRegion:
    begin_line: int  # 1-based line of `### BEGIN SOLUTION`
    end_line: int  # 1-based line of `### END SOLUTION`
    indent: str  # whitespace before the BEGIN marker; the stub is written at this indentation
    # (line, code without its comment, the comment or "") for each line between the markers
    code_lines: tuple[tuple[int, str, str], ...]
    has_todo_comment: bool  # whether a `# TODO` comment block sits directly above the region


@dataclass(frozen=True)
class _Marker:
    line: int
    is_begin: bool
    indent: str


def find_regions(source: str, path: str) -> list[SolutionRegion]:
    """Return the solution regions of `source` in file order; raise MarkupError listing every problem.

    `path` is only used in messages.
    """
    try:
        ast.parse(source, filename=path)
    except SyntaxError as error:
        raise MarkupError([f"{path}:{error.lineno or 1}: not valid Python: {error.msg}"]) from None
    lines = io.StringIO(source).readlines()
    comments, code_lines, string_spans = _scan_tokens(source, path)

    problems: list[str] = []
    markers: list[_Marker] = []
    for number, text in enumerate(lines, start=1):
        for match in MARKER_TEXT.finditer(text):
            where = (number, match.start())
            problem = None
            found = repr(match.group())
            if any(start <= where < end for start, end in string_spans):
                problem = f"marker text {found} inside a string literal; {_OWN_LINE}"
            elif number not in comments or comments[number][0] > match.start():
                problem = f"marker text {found} outside a comment; {_OWN_LINE}"
            elif number in code_lines:
                problem = f"marker {found} shares its line with code; {_OWN_LINE}"
            elif "HIDDEN" in match.group():
                problem = "hidden-test regions are not supported here (hidden tests go in autograder/graders/)"
            else:
                column, comment = comments[number]
                if comment.rstrip() not in (BEGIN_SOLUTION, END_SOLUTION):
                    expected = f"{BEGIN_SOLUTION!r} or {END_SOLUTION!r}"
                    problem = f"malformed marker {comment.strip()!r}: write exactly {expected}"
                else:
                    markers.append(_Marker(number, comment.rstrip() == BEGIN_SOLUTION, text[:column]))
            if problem:
                problems.append(f"{path}:{number}: {problem}")
                break  # one message per line is enough

    regions: list[SolutionRegion] = []
    open_marker: _Marker | None = None
    for marker in markers:
        if marker.is_begin and open_marker is not None:
            problems.append(
                f"{path}:{marker.line}: nested {BEGIN_SOLUTION!r}: the region opened at line {open_marker.line} "
                "is not closed yet"
            )
        elif marker.is_begin:
            open_marker = marker
        elif open_marker is None:
            problems.append(f"{path}:{marker.line}: {END_SOLUTION!r} without a matching {BEGIN_SOLUTION!r}")
        else:
            if marker.indent != open_marker.indent:
                problems.append(
                    f"{path}:{marker.line}: {END_SOLUTION!r} is indented differently from the {BEGIN_SOLUTION!r} "
                    f"at line {open_marker.line}; both markers must sit at the indentation of the region's code"
                )
            regions.append(_region(open_marker, marker, lines, comments))
            open_marker = None
    if open_marker is not None:
        problems.append(f"{path}:{open_marker.line}: {BEGIN_SOLUTION!r} is never closed by {END_SOLUTION!r}")
    if problems:
        raise MarkupError(problems)
    return regions


def _scan_tokens(source: str, path: str):
    """Comments by line (column, text), the lines holding code tokens, and the spans of string tokens."""
    comments: dict[int, tuple[int, str]] = {}
    code_lines: set[int] = set()
    string_spans: list[tuple[tuple[int, int], tuple[int, int]]] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = (token.start[1], token.string)
            elif token.type not in _LAYOUT_TOKENS:
                code_lines.update(range(token.start[0], token.end[0] + 1))
            if token.type in _STRING_TOKENS:
                string_spans.append((token.start, token.end))
    except (tokenize.TokenError, SyntaxError) as error:  # IndentationError is a SyntaxError
        line = getattr(error, "lineno", None) or (error.args[1][0] if len(error.args) > 1 else 1)
        raise MarkupError([f"{path}:{line}: cannot tokenize: {error.args[0]}"]) from None
    return comments, code_lines, string_spans


def _region(begin: _Marker, end: _Marker, lines: list[str], comments: dict[int, tuple[int, str]]) -> SolutionRegion:
    code = []
    for number in range(begin.line + 1, end.line):
        text, comment = lines[number - 1], ""
        if number in comments:
            text, comment = text[: comments[number][0]], comments[number][1]
        code.append((number, text.strip(), comment))
    return SolutionRegion(begin.line, end.line, begin.indent, tuple(code), _has_todo_above(begin.line, lines, comments))


def _has_todo_above(begin_line: int, lines: list[str], comments: dict[int, tuple[int, str]]) -> bool:
    """Whether the comment-only lines directly above `begin_line` include one starting with `# TODO`."""
    number = begin_line - 1
    while number >= 1 and number in comments and not lines[number - 1][: comments[number][0]].strip():
        if comments[number][1].lstrip("#").strip().startswith("TODO"):
            return True
        number -= 1
    return False
