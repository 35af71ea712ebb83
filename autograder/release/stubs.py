"""Turn a reference solution file into student starter code with nbgrader's `ClearSolutions`.

nbgrader works on notebooks, so the file becomes a one-cell notebook. `ClearSolutions` writes the same stub for every
region; we give it a placeholder and then, from the parsed result, replace each placeholder by a message naming the
function the student has to implement (`raise NotImplementedError("TODO: implement DataGenerator._sample")`).
"""

from __future__ import annotations

import ast
import functools
import json
from collections import Counter
from typing import NamedTuple

from autograder.release.markers import BEGIN_SOLUTION, END_SOLUTION, MarkupError, SolutionRegion

# An identifier, so that the cleared source still parses; no real source may contain it (checked).
_PLACEHOLDER = "__autograder_release_stub_message__"


class NbgraderMissing(RuntimeError):
    pass


@functools.lru_cache(maxsize=1)
def _clear_solutions():
    try:
        # Imported here, not at module level: nbgrader (and Jupyter behind it) takes seconds to import.
        import nbformat
        from nbgrader.preprocessors import ClearSolutions
    except ImportError as error:
        raise NbgraderMissing(
            f"the release tool needs nbgrader ({error}); install the instructor extra: pip install -e '.[instructor]'"
        ) from None
    preprocessor = ClearSolutions(
        begin_solution_delimeter=BEGIN_SOLUTION,  # sic: nbgrader's spelling
        end_solution_delimeter=END_SOLUTION,
        code_stub={"python": f"raise NotImplementedError({_PLACEHOLDER})"},
        # Our cell carries no nbgrader metadata: we release plain files, not graded notebooks.
        enforce_metadata=False,
    )
    return nbformat, preprocessor


class ClearedSource(NamedTuple):
    text: str  # the source with every solution region replaced by its stub
    functions: tuple[str, ...]  # dotted names of the functions holding a stub, in file order, each once


def clear_solutions(source: str, regions: list[SolutionRegion], path: str) -> ClearedSource:
    """`source` with each of its (validated) `regions` replaced by a named NotImplementedError stub."""
    if _PLACEHOLDER in source:
        raise MarkupError([f"{path}:1: the file contains the release tool's reserved name {_PLACEHOLDER!r}"])
    if not regions:
        return ClearedSource(source, ())
    nbformat, preprocessor = _clear_solutions()
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    notebook, _ = preprocessor.preprocess(notebook, {})
    return _name_stubs(notebook.cells[0].source, regions, path)


def _name_stubs(cleared: str, regions: list[SolutionRegion], path: str) -> ClearedSource:
    try:
        tree = ast.parse(cleared, filename=path)
    except SyntaxError as error:
        line = _source_line(error.lineno or 1, regions)
        raise MarkupError(
            [f"{path}:{line}: replacing the solution regions by stubs leaves invalid Python ({error.msg}); "
             "a region must hold whole statements of one block"]
        ) from None
    stubs = sorted(_find_stubs(tree), key=lambda stub: stub[0].lineno)
    if len(stubs) != len(regions):
        raise RuntimeError(f"{path}: nbgrader left {len(stubs)} stubs for {len(regions)} solution regions")

    lines = cleared.split("\n")
    problems = []
    for (node, scope), region in zip(stubs, regions):
        stub_line = lines[node.lineno - 1]
        if stub_line[: len(stub_line) - len(stub_line.lstrip())] != region.indent:
            problems.append(f"{path}:{region.begin_line}: the stub is not at the indentation of the region's markers")
        if scope is None:
            problems.append(
                f"{path}:{region.begin_line}: solution region outside a function body; its stub would raise "
                "as soon as the module is imported (design.md: regions go inside a function body)"
            )
    if problems:
        raise MarkupError(problems)

    total = Counter(scope for _, scope in stubs)
    seen: Counter[str] = Counter()
    for node, scope in stubs:
        seen[scope] += 1
        message = f"TODO: implement {scope}"
        if total[scope] > 1:
            message += f" (part {seen[scope]} of {total[scope]})"
        literal = json.dumps(message, ensure_ascii=False)  # a valid Python string literal, double-quoted
        lines[node.lineno - 1] = lines[node.lineno - 1].replace(_PLACEHOLDER, literal, 1)
    released = "\n".join(lines)
    compile(released, path, "exec", dont_inherit=True)  # what students get must compile, not just its placeholder form
    return ClearedSource(released, tuple(total))


def _find_stubs(tree: ast.AST) -> list[tuple[ast.Raise, str | None]]:
    """Each placeholder stub with the dotted name of its innermost enclosing function (None outside functions)."""
    found: list[tuple[ast.Raise, str | None]] = []

    def visit(node: ast.AST, scope: tuple[str, ...], in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, scope + (child.name,), True)
            elif isinstance(child, ast.ClassDef):
                visit(child, scope + (child.name,), False)
            else:
                if _is_placeholder_stub(child):
                    found.append((child, ".".join(scope) if in_function else None))
                visit(child, scope, in_function)

    visit(tree, (), False)
    return found


def _is_placeholder_stub(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "NotImplementedError"
        and len(node.exc.args) == 1
        and isinstance(node.exc.args[0], ast.Name)
        and node.exc.args[0].id == _PLACEHOLDER
    )


def _source_line(released_line: int, regions: list[SolutionRegion]) -> int:
    """Map a line of the cleared source back to the solution file (each region shrank to one stub line)."""
    shift = 0
    for region in regions:
        stub_line = region.begin_line - shift
        if released_line <= stub_line:
            return released_line + shift if released_line < stub_line else region.begin_line
        shift += region.end_line - region.begin_line
    return released_line + shift
