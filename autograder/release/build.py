"""`python -m autograder release`: generate the student starter code from the reference solutions.

    python -m autograder release                  write hw1/ and hw2/ from autograder/solutions/hwN/
    python -m autograder release --check          compare hw1/ and hw2/ with what the sources generate; write nothing
    python -m autograder release --out DIR        write a student-distributable tree to DIR (nothing from autograder/)
    python -m autograder release --assignment hw1 limit any of the above to one assignment (repeatable)

Exit codes: 0 done / in sync; 1 `--check` found drift; 2 invalid markers or syntax in a source (also argparse's
usage errors); 3 leak check failed (a solution line, marker text or instructor-only text would be released); 4 cannot
proceed (missing source folder, non-empty --out DIR without --force, nbgrader not installed, unsafe --out target).

Every run renders in memory, checks for leaks, and only then writes; each `hwN/` is replaced as a whole (built in a
sibling temporary folder, then renamed into place), so files deleted from the sources disappear from the release and
an interrupted run leaves the previous release intact.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import string
import sys
import tempfile
from pathlib import Path

from autograder import ASSIGNMENTS, PACKAGE_DIR, REPO_ROOT, SOLUTIONS_DIR
from autograder.release.leaks import find_leaks
from autograder.release.markers import MarkupError
from autograder.release.render import (LeakError, ReleasedFile, RenderedAssignment, is_executable, render_assignment,
                                       tree_files)
from autograder.release.stubs import NbgraderMissing

EXIT_OK, EXIT_DRIFT, EXIT_MARKUP, EXIT_LEAK, EXIT_CANNOT = 0, 1, 2, 3, 4

TEMPLATES_DIR = PACKAGE_DIR / "templates"
# What a student tree holds besides the assignments: repository files copied as they are...
STUDENT_COPIED = ("omniglot_data", "data_download.sh", "environment.yml")
# ...except the data package's modules that only the grader's probes use (in its sandbox, from the repository).
GRADER_ONLY_FILES = ("omniglot_data/trajectory.py", "omniglot_data/training_curve.py")
# ...and files rendered from autograder/templates (template name -> name in the tree).
STUDENT_TEMPLATES = {"student_README.md": "README.md", "student_pyproject.toml": "pyproject.toml",
                     "student_gitignore": ".gitignore"}
# No path of a student tree may contain these (case-insensitively): they name instructor-only material.
FORBIDDEN_PATH_PARTS = ("autograder", "solutions", "graders")


class CannotProceed(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit codes: 0 done or in sync; 1 --check found differences; 2 invalid solution markers or usage; "
                     "3 leak check failed (solution, marker or instructor-only text would be released); 4 cannot "
                     "proceed (missing files, non-empty --out DIR without --force, nbgrader not installed)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; exit 1 with a diff if hw1/, hw2/ differ from what the sources generate")
    mode.add_argument("--out", type=Path, metavar="DIR",
                      help="write a student-distributable tree (assignments, omniglot_data, data_download.sh, "
                           "environment.yml, README.md, pyproject.toml) to DIR instead of updating hw1/, hw2/")
    parser.add_argument("--force", action="store_true", help="with --out: replace DIR even if it is not empty")
    parser.add_argument("--assignment", action="append", choices=ASSIGNMENTS, metavar="NAME",
                        help=f"only this assignment ({', '.join(ASSIGNMENTS)}); repeatable; default: all")


def run(args: argparse.Namespace) -> int:
    return execute(args, source_root=SOLUTIONS_DIR, repo_root=REPO_ROOT)


def execute(args: argparse.Namespace, source_root: Path, repo_root: Path) -> int:
    """`run` on any layout: `source_root` holds `hwN/` solution folders, `repo_root` receives the `hwN/` releases."""
    assignments = tuple(dict.fromkeys(args.assignment or ASSIGNMENTS))
    if args.force and args.out is None:
        return _fail([], "release: --force only applies to --out DIR", EXIT_MARKUP)  # a usage error, like argparse's
    try:
        if args.check:
            differences = check(source_root, repo_root, assignments)
            if differences:
                print("\n".join(differences))
                print(f"release out of date: run `python -m autograder release` to regenerate "
                      f"{', '.join(name + '/' for name in assignments)}", file=sys.stderr)
                return EXIT_DRIFT
            print(f"release in sync: {', '.join(name + '/' for name in assignments)} match "
                  f"{_label(source_root, repo_root)}")
        elif args.out is not None:
            export_student_tree(source_root, repo_root, args.out, assignments, force=args.force)
            print(f"student tree written to {args.out}")
        else:
            for name in release(source_root, repo_root, assignments):
                print(f"released {name}/")
        return EXIT_OK
    except MarkupError as error:
        return _fail(error.problems, "invalid solution markers: nothing was written", EXIT_MARKUP)
    except LeakError as error:
        return _fail(error.problems, "leak check failed, nothing was written: the lines above would show students part "
                     "of a solution or instructor-only text. Move a line that is not part of the answer out of its "
                     "region; otherwise rewrite its copy outside the region (autograder/release/leaks.py says which "
                     "lines are too trivial to count); say instructor matters in the students' own terms", EXIT_LEAK)
    except (CannotProceed, NbgraderMissing) as error:
        return _fail([], f"release: {error}", EXIT_CANNOT)


def render(source_root: Path, label_root: Path, assignments=ASSIGNMENTS) -> dict[str, RenderedAssignment]:
    """Render every assignment (all marker and leak problems reported together); print the warnings."""
    rendered, markup, leaks = {}, [], []
    for name in assignments:
        source_dir = source_root / name
        if not source_dir.is_dir():
            raise CannotProceed(f"no solution folder {source_dir} for assignment {name!r}")
        try:
            rendered[name] = render_assignment(source_dir, _label(source_dir, label_root), name)
        except MarkupError as error:
            markup += error.problems
        except LeakError as error:
            leaks += error.problems
        else:
            for warning in rendered[name].warnings:
                print(warning, file=sys.stderr)
    if markup:
        raise MarkupError(markup)
    if leaks:
        raise LeakError(leaks)
    return rendered


def release(source_root: Path, output_root: Path, assignments=ASSIGNMENTS) -> list[str]:
    """Write `output_root/hwN/` for each assignment; return the assignments written."""
    rendered = render(source_root, output_root, assignments)
    for name, assignment in rendered.items():
        _publish(assignment.files, output_root / name)
    return list(rendered)


def check(source_root: Path, output_root: Path, assignments=ASSIGNMENTS) -> list[str]:
    """Differences between `output_root/hwN/` and what the sources generate: unified diffs, missing and extra files."""
    differences = []
    for name, assignment in render(source_root, output_root, assignments).items():
        differences += _compare(assignment.files, output_root / name, name)
    return differences


def export_student_tree(source_root: Path, repo_root: Path, out: Path, assignments=ASSIGNMENTS,
                        force: bool = False) -> None:
    """Write the tree students get to `out`: releases, data package, setup files; nothing instructor-only."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise CannotProceed(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CannotProceed(f"--out {out} is not empty; pass --force to replace its contents")
    if repo_root.resolve().is_relative_to(out) or out.is_relative_to(source_root.resolve()):
        raise CannotProceed(f"--out {out} would overwrite the repository or its solutions; choose another folder")

    files: dict[str, ReleasedFile] = {}
    for name, assignment in render(source_root, repo_root, assignments).items():
        files.update({f"{name}/{path}": file for path, file in assignment.files.items()})
    for name in STUDENT_COPIED:
        files.update(_read_tree(repo_root / name, name))
    for name in GRADER_ONLY_FILES:
        if files.pop(name, None) is None:
            raise CannotProceed(f"{repo_root / name} is missing (GRADER_ONLY_FILES in {Path(__file__).name} is stale)")
    values = _template_values(repo_root, assignments, files)
    for template, name in STUDENT_TEMPLATES.items():
        text = string.Template((TEMPLATES_DIR / template).read_text(encoding="utf-8")).substitute(values)
        files[name] = ReleasedFile(text.encode("utf-8"))
    forbidden = [f"{out}/{path}:1: instructor-only name in a student tree path"
                 for path in files if any(part in path.lower() for part in FORBIDDEN_PATH_PARTS)]
    # The assignments were checked when rendered; the copied files and the templates are checked here.
    forbidden += find_leaks([], {f"{out}/{path}": file.data.decode("utf-8", errors="replace")
                                 for path, file in files.items() if path.split("/")[0] not in assignments})
    if forbidden:
        raise LeakError(forbidden)
    _publish(files, out)


def _read_tree(path: Path, name: str) -> dict[str, ReleasedFile]:
    if path.is_file():
        return {name: ReleasedFile(path.read_bytes(), is_executable(path))}
    if not path.is_dir():
        raise CannotProceed(f"{path} is missing; a student tree needs it")
    return {f"{name}/{relative}": ReleasedFile((path / relative).read_bytes(), is_executable(path / relative))
            for relative in tree_files(path)}


def _template_values(repo_root: Path, assignments, files: dict[str, ReleasedFile]) -> dict[str, str]:
    import tomllib

    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    conda_name = re.search(r"^name:\s*(\S+)", (repo_root / "environment.yml").read_text(encoding="utf-8"), re.MULTILINE)
    if conda_name is None:
        raise CannotProceed(f"{repo_root / 'environment.yml'} has no `name:` line")
    return {
        "conda_env": conda_name.group(1),
        "assignments": "\n".join(
            f"- `{name}/`" + (f": see `{name}/README.md`" if f"{name}/README.md" in files else "")
            for name in assignments
        ),
        "first_assignment": assignments[0],
        "version": project["version"],
        "requires_python": project.get("requires-python", ">=3.11"),
        "dependencies": "\n".join(f"    {json.dumps(dependency)}," for dependency in project["dependencies"]),
    }


def _compare(expected: dict[str, ReleasedFile], directory: Path, name: str) -> list[str]:
    actual = set(tree_files(directory)) if directory.is_dir() else set()
    differences = [f"missing: {name}/{path} (the release generates it)" for path in sorted(expected.keys() - actual)]
    differences += [f"extra: {name}/{path} (not generated by the release)" for path in sorted(actual - expected.keys())]
    for path in sorted(expected.keys() & actual):
        on_disk = directory / path
        want, have = expected[path], on_disk.read_bytes()
        if want.data != have:
            differences.append(_diff(have, want.data, f"{name}/{path}"))
        elif want.executable != is_executable(on_disk):
            differences.append(f"mode: {name}/{path} should {'' if want.executable else 'not '}be executable")
    return differences


def _diff(have: bytes, want: bytes, path: str) -> str:
    if b"\0" in have or b"\0" in want:
        return f"binary file differs: {path}"
    lines = difflib.unified_diff(
        have.decode("utf-8", errors="replace").splitlines(keepends=True),
        want.decode("utf-8", errors="replace").splitlines(keepends=True),
        fromfile=f"{path} (on disk)", tofile=f"{path} (generated)",
    )
    no_newline = "\n\\ No newline at end of file\n"
    return "".join(line if line.endswith("\n") else line + no_newline for line in lines).rstrip("\n")


def _publish(files: dict[str, ReleasedFile], target: Path) -> None:
    """Make `target` a folder holding exactly `files` (paths relative to it): build a sibling, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise CannotProceed(f"{target} exists and is not a folder; refusing to replace it")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.release-", dir=target.parent))
    try:
        for relative, file in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file.data)
            if file.executable:
                mode = path.stat().st_mode
                path.chmod(mode | (mode & 0o444) >> 2)  # x wherever r
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private
        if not target.exists():
            os.rename(staging, target)
            return
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, retired / target.name)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(retired / target.name, target)
            raise
        shutil.rmtree(retired)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _label(path: Path, root: Path) -> str:
    """`path` relative to `root` in messages and headers when it is inside it (it is, for the real repository)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _fail(problems: list[str], summary: str, code: int) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    print(summary, file=sys.stderr)
    return code
