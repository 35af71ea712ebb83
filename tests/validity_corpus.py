"""Build validity-corpus submissions from a reference solution (shared by the graders' corpus tests).

A corpus folder holds `bugs.toml` (reference + one bug, by exact snippet substitution) and `alternates.toml`
(correct solutions written differently, by replacing the body of solution regions). Building fails loudly when a
snippet or a region is not found exactly once, so a reference that changes under the corpus breaks the corpus
tests instead of silently testing nothing.
"""

from __future__ import annotations

import ast
import os
import re
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

# How the corpus gradings start each test's worker: the fork server (the default) or, with
# GRADING_WORKER_START=fresh, a fresh sandbox per test (to check that the switch changes no grade).
WORKER_START = os.environ.get("GRADING_WORKER_START", "fork")

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


class CorpusError(Exception):
    """The corpus no longer fits the reference (a snippet or region is missing or ambiguous), or is malformed."""


@dataclass(frozen=True)
class Variant:
    name: str
    tests: tuple[str, ...]  # node ids `test_file.py::test_name`, or group names the corpus test expands
    edits: tuple[dict, ...]  # bugs: {"file", "old", "new"}; alternates: {"file", "function", "body"}
    kind: str  # "bug" or "alternate"
    methods: tuple[dict, ...] = ()  # alternates: {"file", "function", "body"} whole-method rewrites after the regions


def load_variants(corpus_dir: Path) -> tuple[list[Variant], list[Variant]]:
    """(bugs, alternates) of a corpus folder."""
    bugs = tomllib.loads((corpus_dir / "bugs.toml").read_text())["bug"]
    alternates = tomllib.loads((corpus_dir / "alternates.toml").read_text())["alternate"]
    return ([Variant(b["name"], tuple(b["tests"]), tuple(b["edit"]), "bug") for b in bugs],
            [Variant(a["name"], tuple(a["tests"]), tuple(a.get("region", ())), "alternate",
                     tuple(a.get("method", ()))) for a in alternates])


def substitute(source: str, old: str, new: str, where: str) -> str:
    count = source.count(old)
    if count != 1:
        raise CorpusError(f"{where}: the snippet occurs {count} times in the reference (expected exactly once); "
                          f"update the corpus to the reference:\n{old}")
    return source.replace(old, new)


def _function_span(lines: list[str], qualified_name: str, where: str) -> tuple[int, int]:
    """(first, end) line indexes of the body of `Class.method` / `function` (nested by indentation)."""
    start, end, indent = 0, len(lines), -1
    for part in qualified_name.split("."):
        pattern = re.compile(rf"^(\s*)(?:class|def)\s+{re.escape(part)}\b")
        for number in range(start, end):
            match = pattern.match(lines[number])
            if match and len(match.group(1)) > indent:
                indent = len(match.group(1))
                start = number + 1
                end = next((n for n in range(start, end) if lines[n].strip()
                            and len(lines[n]) - len(lines[n].lstrip()) <= indent), end)
                break
        else:
            raise CorpusError(f"{where}: no {part!r} in the reference (looking for {qualified_name})")
    return start, end


def replace_region(source: str, qualified_name: str, body: str, where: str) -> str:
    """Replace what lies between the solution markers of `qualified_name` by `body`, at the markers' indent."""
    lines = source.splitlines(keepends=True)
    start, end = _function_span(lines, qualified_name, where)
    begins = [n for n in range(start, end) if lines[n].strip() == BEGIN]
    ends = [n for n in range(start, end) if lines[n].strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise CorpusError(f"{where}: {qualified_name} has {len(begins)} solution regions (expected exactly one)")
    indent = lines[begins[0]][: len(lines[begins[0]]) - len(lines[begins[0]].lstrip())]
    new_body = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", indent)
    return "".join(lines[: begins[0] + 1]) + new_body + "".join(lines[ends[0]:])


def replace_method(source: str, qualname: str, body: str, where: str) -> str:
    """Replace everything of one method after its docstring by `body` (a rewrite beyond one solution region)."""
    lines = source.splitlines(keepends=True)
    class_name, _, method_name = qualname.partition(".")
    methods = [item for node in ast.parse(source).body if isinstance(node, ast.ClassDef) and node.name == class_name
               for item in node.body if isinstance(item, ast.FunctionDef) and item.name == method_name]
    if len(methods) != 1:
        raise CorpusError(f"{where}: {len(methods)} methods {qualname} in the reference (expected exactly one)")
    docstring = methods[0].body[0]
    if not (isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)):
        raise CorpusError(f"{where}: {qualname} has no docstring to keep")
    new_body = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", " " * docstring.col_offset)
    return "".join(lines[: docstring.end_lineno]) + new_body + "".join(lines[methods[0].end_lineno:])


def build_submission(reference_dir: Path, variant: Variant, dest: Path, student_files: tuple[str, ...]) -> Path:
    """Write `dest/<student files>`: the reference's files with the variant's edits applied."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = {name: (reference_dir / name).read_text() for name in student_files}
    for number, edit in enumerate(variant.edits):
        name = edit["file"]
        if name not in sources:
            raise CorpusError(f"{variant.name}: edit {number} names {name!r}, not a student file {student_files}")
        where = f"{variant.kind} {variant.name!r}, edit {number} of {name}"
        if variant.kind == "bug":
            sources[name] = substitute(sources[name], edit["old"], edit["new"], where)
        else:
            sources[name] = replace_region(sources[name], edit["function"], edit["body"], where)
    for number, rewrite in enumerate(variant.methods):
        name = rewrite["file"]
        if name not in sources:
            raise CorpusError(f"{variant.name}: method rewrite {number} names {name!r}, not a student file")
        sources[name] = replace_method(sources[name], rewrite["function"], rewrite["body"],
                                       f"{variant.kind} {variant.name!r}, method rewrite {number} of {name}")
    for name, text in sources.items():
        (dest / name).write_text(text)
    for name in [name for name in sources if name.endswith(".py")]:
        try:
            compile(sources[name], str(dest / name), "exec")
        except SyntaxError as error:
            raise CorpusError(f"{variant.kind} {variant.name!r}: the edited {name} does not compile: {error}") from None
    return dest
