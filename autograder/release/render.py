"""Render one assignment's student release, in memory, from its reference solution folder.

`.py` files lose their solution regions (see `autograder.release.stubs`) and get a header telling the student which
parts are theirs; every other file is copied as it is. The release speaks to students only: it names no source file
and no instructor tool. The result is checked for leaks (`autograder.release.leaks`) before anybody writes it.
"""

from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from autograder.release.leaks import SolutionLine, find_leaks, solution_lines
from autograder.release.markers import MarkupError, find_regions
from autograder.release.stubs import clear_solutions

# Never part of a release, and ignored when comparing with one: caches that running the code or its tests leaves.
IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")

# A first or second line like `# -*- coding: utf-8 -*-` (PEP 263) must stay where it is.
_ENCODING_DECLARATION = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")


class LeakError(Exception):
    """Solution text or marker text would reach the release. `problems` are `path:line: message` strings."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ReleasedFile:
    data: bytes
    executable: bool = False


@dataclass
class RenderedAssignment:
    files: dict[str, ReleasedFile] = field(default_factory=dict)  # POSIX path relative to the assignment -> file
    warnings: list[str] = field(default_factory=list)


def tree_files(root: Path) -> list[str]:
    """Files under `root` (POSIX paths relative to it, sorted), without caches."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(name for name in subdirs if name not in IGNORED_DIRS)
        for name in files:
            if not name.endswith(IGNORED_SUFFIXES):
                found.append((Path(directory) / name).relative_to(root).as_posix())
    return sorted(found)


def is_executable(path: Path) -> bool:
    """From the mode bits (what git records), not from access rights, which depend on who runs the release."""
    return bool(path.stat().st_mode & 0o111)


def render_assignment(source_dir: Path, source_label: str, release_label: str) -> RenderedAssignment:
    """The release of the assignment whose reference solution is `source_dir`.

    `source_label` and `release_label` are how the source folder and the released folder are named in headers and
    messages (e.g. `autograder/solutions/hw1` and `hw1`). Raises MarkupError (all marker problems of all files) or
    LeakError.
    """
    rendered = RenderedAssignment()
    problems: list[str] = []
    secrets: list[SolutionLine] = []
    for relative in tree_files(source_dir):
        path = source_dir / relative
        source_path = f"{source_label}/{relative}"
        data = path.read_bytes()
        executable = is_executable(path)
        if relative.endswith(".py"):
            try:
                source = data.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.append(f"{source_path}:1: not UTF-8 ({error})")
                continue
            try:
                regions = find_regions(source, source_path)
                released = clear_solutions(source, regions, source_path)
            except MarkupError as error:
                problems.extend(error.problems)
                continue
            rendered.warnings += [
                f"{source_path}:{region.begin_line}: warning: no `# TODO` comment directly above the solution "
                "region tells students what to write"
                for region in regions
                if not region.has_todo_comment
            ]
            secrets += solution_lines(regions, source_path)
            header = student_header(f"{release_label}/{relative}", released.functions)
            data = _with_python_header(released.text, header).encode("utf-8")
        rendered.files[relative] = ReleasedFile(data, executable)
    if problems:
        raise MarkupError(problems)
    texts = {f"{release_label}/{name}": file.data.decode("utf-8", errors="replace")
             for name, file in rendered.files.items()}
    leaks = find_leaks(secrets, texts)
    if leaks:
        raise LeakError(leaks)
    return rendered


def student_header(release_path: str, functions: tuple[str, ...]) -> list[str]:
    """The comment lines that open a released `.py` file: what in it is the student's to write (`functions`, those
    with a TODO stub), or that it is provided."""
    if functions:
        names = ", ".join(functions[:-1]) + (" and " if len(functions) > 1 else "") + functions[-1]
        text = (f"{release_path}. Your work: the TODO blocks in {names} (each raises NotImplementedError until you "
                "write it). The rest of this file is provided: read it, but do not change it.")
    elif release_path.split("/")[1:2] == ["tests"]:
        text = (f"{release_path}: public tests, provided. Run them with `pytest {release_path.split('/')[0]}`; "
                "you need not change them.")
    else:
        text = f"{release_path}: provided code. Read it, but do not change it."
    return ["# " + line for line in textwrap.wrap(text, width=118, break_on_hyphens=False, break_long_words=False)]


def _with_python_header(text: str, header: list[str]) -> str:
    lines = text.splitlines(keepends=True)
    keep = 0  # leading lines that must stay first: a shebang (line 1), an encoding declaration (line 1 or 2)
    if lines and lines[0].startswith("#!"):
        keep = 1
    for index in (0, 1):
        if index < len(lines) and _ENCODING_DECLARATION.match(lines[index]):
            keep = index + 1
            break
        if index < len(lines) and not lines[index].lstrip().startswith("#"):
            break  # PEP 263: the declaration only counts on line 2 after a comment line
    head = "".join(lines[:keep])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + "".join(line + "\n" for line in header) + "".join(lines[keep:])
