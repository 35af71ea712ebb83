"""`python -m autograder release` on fixture sources (tests/fixtures/release/), and --check on the real repository."""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import ASSIGNMENTS, REPO_ROOT, SOLUTIONS_DIR
from autograder.release import build as release
from autograder.release import stubs
from autograder.release.leaks import is_trivial
from autograder.release.markers import MarkupError, find_regions
from autograder.release.render import LeakError
from autograder.release.stubs import clear_solutions

FIXTURES = Path(__file__).parent / "fixtures" / "release"


def make_repo(tmp_path: Path, sources: str = "valid") -> Path:
    """A repository layout in tmp_path whose autograder/solutions/ holds the fixture assignments of `sources`."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / sources, repo / "autograder" / "solutions")
    return repo


def cli(repo: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    release.add_arguments(parser)
    return release.execute(parser.parse_args(list(argv)), repo / "autograder" / "solutions", repo)


def assignments(repo: Path) -> tuple[str, ...]:
    return tuple(sorted(path.name for path in (repo / "autograder" / "solutions").iterdir()))


def do_release(repo: Path) -> None:
    release.release(repo / "autograder" / "solutions", repo, assignments(repo))


# --- rendering -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", ["hw1/load_data.py", "hw2/protonet.py"])
def test_regions_become_named_stubs_at_their_indentation(tmp_path, relative):
    # The golden files were reviewed by hand: stubs at the region's indentation (module function, method with a
    # two-line TODO block, nested function, two regions in one function, four levels deep), TODO comments and the
    # code after a region kept, shebang and encoding lines still first, header below them.
    repo = make_repo(tmp_path)
    do_release(repo)
    released = (repo / relative).read_text()
    assert released == (FIXTURES / "expected" / relative).read_text()
    compile(released, relative, "exec")


def test_every_solution_line_is_gone_and_other_files_are_copied(tmp_path):
    repo = make_repo(tmp_path)
    do_release(repo)
    source = repo / "autograder" / "solutions" / "hw1"
    released = (repo / "hw1" / "load_data.py").read_text()
    for region in find_regions((source / "load_data.py").read_text(), "load_data.py"):
        for _, code, _ in region.code_lines:
            assert code not in released
    assert (repo / "hw1" / "sample.bin").read_bytes() == (source / "sample.bin").read_bytes()
    assert (repo / "hw1" / "run.sh").read_bytes() == (source / "run.sh").read_bytes()  # no header in shell scripts
    assert os.access(repo / "hw1" / "run.sh", os.X_OK)
    assert (repo / "hw1" / "README.md").read_bytes() == (source / "README.md").read_bytes()  # the handout as written


def test_headers_tell_students_what_is_theirs_and_name_no_source(tmp_path):
    repo = make_repo(tmp_path)
    do_release(repo)
    protonet = (repo / "hw2" / "protonet.py").read_text()
    assert protonet.startswith("# hw2/protonet.py. Your work: the TODO blocks in ProtoNet._step (each raises "
                               "NotImplementedError until you write it).\n# The rest of this file is provided")
    public_test = (repo / "hw1" / "tests" / "public_tests.py").read_text()
    assert public_test.startswith("# hw1/tests/public_tests.py: public tests, provided. Run them with `pytest hw1`")
    for path in (repo / "hw1").rglob("*.py"):
        assert "autograder" not in path.read_text(), f"{path} names the instructors' side"


def test_release_replaces_the_whole_assignment_folder_and_nothing_else(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "hw1" / "__pycache__").mkdir(parents=True)
    (repo / "hw1" / "removed_from_sources.py").write_text("old\n")
    (repo / "notes.txt").write_text("not ours\n")
    do_release(repo)
    assert not (repo / "hw1" / "removed_from_sources.py").exists()
    assert (repo / "notes.txt").read_text() == "not ours\n"
    assert sorted(path.name for path in repo.iterdir()) == ["autograder", "hw1", "hw2", "notes.txt"]  # no temp dirs


def test_a_failed_write_leaves_the_previous_release_intact(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    do_release(repo)
    before = {path: path.read_bytes() for path in (repo / "hw1").rglob("*") if path.is_file()}

    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError):
        do_release(repo)
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in (repo / "hw1").rglob("*") if path.is_file()} == before
    assert sorted(path.name for path in repo.iterdir()) == ["autograder", "hw1", "hw2"]


def test_assignment_option_limits_the_release(tmp_path, capsys):
    repo = make_repo(tmp_path)
    assert cli(repo, "--assignment", "hw1") == release.EXIT_OK
    assert (repo / "hw1").is_dir() and not (repo / "hw2").exists()
    assert "released hw1/" in capsys.readouterr().out


def test_missing_todo_comment_is_a_warning(tmp_path, capsys):
    repo = make_repo(tmp_path)
    source = repo / "autograder" / "solutions" / "hw2" / "protonet.py"
    todo = " " * 16 + "# TODO: compute the prototypes and the loss of this task.\n"
    source.write_text(source.read_text().replace(todo, ""))
    assert cli(repo) == release.EXIT_OK
    assert "autograder/solutions/hw2/protonet.py:9: warning: no `# TODO` comment" in capsys.readouterr().err


def test_missing_nbgrader_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nbgrader.preprocessors", None)  # makes the import fail
    stubs._clear_solutions.cache_clear()
    try:
        assert cli(make_repo(tmp_path)) == release.EXIT_CANNOT
    finally:
        stubs._clear_solutions.cache_clear()
    assert "pip install -e '.[instructor]'" in capsys.readouterr().err


# --- --check ---------------------------------------------------------------------------------------------------------


def test_check_passes_after_a_release_and_ignores_caches(tmp_path, capsys):
    repo = make_repo(tmp_path)
    do_release(repo)
    (repo / "hw1" / "__pycache__").mkdir()
    (repo / "hw1" / "__pycache__" / "load_data.cpython-311.pyc").write_bytes(b"\0")
    (repo / "hw1" / ".pytest_cache").mkdir()
    assert cli(repo, "--check") == release.EXIT_OK
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "release in sync" in out


def test_check_reports_an_edited_generated_file_with_a_diff(tmp_path, capsys):
    repo = make_repo(tmp_path)
    do_release(repo)
    released = repo / "hw2" / "protonet.py"
    released.write_text(released.read_text().replace('raise NotImplementedError("TODO: implement ProtoNet._step")',
                                                      "losses.append(0.0)"))
    assert cli(repo, "--check") == release.EXIT_DRIFT
    captured = capsys.readouterr()
    assert "--- hw2/protonet.py (on disk)" in captured.out and "+++ hw2/protonet.py (generated)" in captured.out
    assert "-                losses.append(0.0)" in captured.out
    assert '+                raise NotImplementedError("TODO: implement ProtoNet._step")' in captured.out
    assert "run `python -m autograder release`" in captured.err
    do_release(repo)
    assert cli(repo, "--check") == release.EXIT_OK


def test_check_reports_extra_missing_and_mode_changes(tmp_path, capsys):
    repo = make_repo(tmp_path)
    do_release(repo)
    (repo / "hw1" / "scratch.py").write_text("x = 1\n")
    (repo / "hw1" / "README.md").unlink()
    (repo / "hw1" / "run.sh").chmod(0o644)
    assert cli(repo, "--check") == release.EXIT_DRIFT
    out = capsys.readouterr().out
    assert "extra: hw1/scratch.py (not generated by the release)" in out
    assert "missing: hw1/README.md (the release generates it)" in out
    assert "mode: hw1/run.sh should be executable" in out


def test_check_before_any_release_lists_everything_missing(tmp_path, capsys):
    repo = make_repo(tmp_path)
    assert cli(repo, "--check") == release.EXIT_DRIFT
    assert "missing: hw2/protonet.py" in capsys.readouterr().out
    assert not (repo / "hw1").exists()


# --- leak check ------------------------------------------------------------------------------------------------------


def test_a_solution_line_duplicated_outside_its_region_is_a_leak(tmp_path, capsys):
    repo = make_repo(tmp_path, "leaky")
    assert cli(repo, "--assignment", "hw1") == release.EXIT_LEAK
    err = capsys.readouterr().err
    # Released line 8 = source line 6 below the two header lines; the region's copy is at source line 15.
    assert ("hw1/model.py:8: solution line leaked: 'hidden = [w * x for w, x in zip(weights, inputs)]' "
            "(solution region line autograder/solutions/hw1/model.py:15)") in err
    assert "outputs = []" not in err and "return outputs" not in err  # trivial lines repeat legitimately
    assert not (repo / "hw1").exists()


def test_a_commented_out_solution_line_is_a_leak(tmp_path):
    repo = make_repo(tmp_path)
    source = repo / "autograder" / "solutions" / "hw2" / "README.md"
    source.write_text(source.read_text() + "\nHint:    prototypes = {label: sum(group)/len(group) "
                                           "for label, group in task.items()}  # like this\n")
    with pytest.raises(LeakError, match=r"hw2/README.md:3: solution line leaked"):
        do_release(repo)


def test_a_line_marked_leak_check_ignore_may_repeat(tmp_path):
    repo = make_repo(tmp_path, "leaky")
    source = repo / "autograder" / "solutions" / "hw1" / "model.py"
    text = source.read_text().split("\n")
    assert text[14] == "    hidden = [w * x for w, x in zip(weights, inputs)]"
    text[14] += "  # leak-check: ignore"
    source.write_text("\n".join(text))
    release.release(repo / "autograder" / "solutions", repo, ("hw1",))
    assert "leak-check" not in (repo / "hw1" / "model.py").read_text()


@pytest.mark.parametrize("text", ["see autograder/graders/hw1/calibration.json", "run `python -m autograder grade`",
                                  "the bar comes from calibrate", "Instructors: edit the source instead",
                                  "from autograder.scoring import calibration", "made with nbgrader",
                                  "commands in the kit's docs/results.md", "measured by bench/threads.py",
                                  "if your course grades with `--profile gpu`"])
def test_instructor_text_in_a_released_file_is_a_leak(tmp_path, capsys, text):
    repo = make_repo(tmp_path)
    readme = repo / "autograder" / "solutions" / "hw2" / "README.md"
    readme.write_text(readme.read_text() + f"\nNote: {text}.\n")
    assert cli(repo) == release.EXIT_LEAK
    assert "hw2/README.md:3: instructor-only text" in capsys.readouterr().err
    assert not (repo / "hw2").exists()


def test_the_word_autograder_alone_may_reach_students(tmp_path):
    repo = make_repo(tmp_path)
    readme = repo / "autograder" / "solutions" / "hw2" / "README.md"
    readme.write_text(readme.read_text() + "\nThe autograder takes protonet.py only. Ask your instructor.\n")
    do_release(repo)
    assert "The autograder takes protonet.py only" in (repo / "hw2" / "README.md").read_text()


def test_marker_text_in_a_copied_file_is_a_leak(tmp_path, capsys):
    repo = make_repo(tmp_path)
    (repo / "autograder" / "solutions" / "hw1" / "notes.txt").write_text("answer:\n### BEGIN SOLUTION\n")
    assert cli(repo, "--check") == release.EXIT_LEAK
    assert "hw1/notes.txt:2: nbgrader marker text 'BEGIN SOLUTION' in the release" in capsys.readouterr().err


@pytest.mark.parametrize("line", ["", "pass", "return", "else:", ")", "]", "break", "return loss", "x = []",
                                  "self.step()", "return None", "i += 1", "x = y", "a, b = c"])
def test_trivial_lines(line):
    assert is_trivial(line)


@pytest.mark.parametrize("line", ["loss.backward()", "return self.model(x)", "total_loss = 0.0",
                                  "logits = F.softmax(scores, dim=-1)", 'reduction="mean",'])
def test_non_trivial_lines(line):
    assert not is_trivial(line)


# --- marker errors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "line", "message"), [
    ("unbalanced_end.py", 6, "'### END SOLUTION' without a matching '### BEGIN SOLUTION'"),
    ("unclosed.py", 3, "'### BEGIN SOLUTION' is never closed"),
    ("nested.py", 5, "nested '### BEGIN SOLUTION': the region opened at line 3 is not closed yet"),
    ("in_string.py", 3, "inside a string literal"),
    ("after_code.py", 2, "shares its line with code"),
    ("module_level.py", 2, "solution region outside a function body"),
    ("inside_expression.py", 4, "replacing the solution regions by stubs leaves invalid Python"),
])
def test_marker_errors_name_file_and_line(name, line, message):
    path = f"solutions/{name}"
    source = (FIXTURES / "invalid" / name).read_text()
    with pytest.raises(MarkupError) as caught:
        clear_solutions(source, find_regions(source, path), path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{path}:{line}: ")
    assert message in caught.value.problems[0]


@pytest.mark.parametrize(("text", "message"), [
    ("    # BEGIN SOLUTION\n", "malformed marker '# BEGIN SOLUTION'"),
    ("    ### BEGIN HIDDEN TESTS\n", "hidden-test regions are not supported"),
])
def test_malformed_markers(text, message):
    source = f"def f():\n{text}    return 1\n"
    with pytest.raises(MarkupError, match=rf"^f.py:2: {message}"):
        find_regions(source, "f.py")


def test_force_without_out_is_a_usage_error(tmp_path, capsys):
    assert cli(make_repo(tmp_path), "--force") == 2
    assert "--force only applies to --out DIR" in capsys.readouterr().err


def test_marker_errors_exit_2_and_write_nothing(tmp_path, capsys):
    repo = make_repo(tmp_path)
    do_release(repo)
    before = (repo / "hw1" / "load_data.py").read_bytes()
    shutil.copy(FIXTURES / "invalid" / "nested.py", repo / "autograder" / "solutions" / "hw1" / "broken.py")
    shutil.copy(FIXTURES / "invalid" / "in_string.py", repo / "autograder" / "solutions" / "hw2" / "broken.py")
    assert cli(repo) == release.EXIT_MARKUP
    err = capsys.readouterr().err
    # Every problem of every assignment is reported in one run.
    assert "autograder/solutions/hw1/broken.py:5: nested" in err
    assert "autograder/solutions/hw2/broken.py:3: marker text 'BEGIN SOLUTION' inside a string literal" in err
    assert (repo / "hw1" / "load_data.py").read_bytes() == before
    assert not (repo / "hw1" / "broken.py").exists()


# --- --out -----------------------------------------------------------------------------------------------------------


def make_student_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path)
    (repo / "omniglot_data" / "__pycache__").mkdir(parents=True)
    (repo / "omniglot_data" / "__init__.py").write_text('"""Provided data package."""\n')
    (repo / "omniglot_data" / "split.json").write_text("{}\n")
    for grader_only in release.GRADER_ONLY_FILES:  # used by the grader's probes only: left out of the tree
        (repo / grader_only).write_text('"""The training probe\'s record, replayed by the grader."""\n')
    (repo / "omniglot_data" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (repo / "data_download.sh").write_text("#!/usr/bin/env bash\npython -m omniglot_data \"$@\"\n")
    (repo / "data_download.sh").chmod(0o755)
    (repo / "environment.yml").write_text("# conda\nname: homework-env\ndependencies: [pip]\n")
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "kit"\nversion = "1.2.3"\nrequires-python = ">=3.10"\n'
        'dependencies = ["torch==2.13.0", "numpy>=1.24"]\n'
        '[project.optional-dependencies]\ninstructor = ["nbgrader>=0.9"]\n'
    )
    return repo


def test_out_writes_a_student_tree_without_instructor_material(tmp_path, capsys):
    repo = make_student_repo(tmp_path)
    out = tmp_path / "student"
    assert cli(repo, "--out", str(out)) == release.EXIT_OK
    files = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert files == {
        ".gitignore", "README.md", "pyproject.toml", "data_download.sh", "environment.yml",
        "omniglot_data/__init__.py", "omniglot_data/split.json",
        "hw1/README.md", "hw1/load_data.py", "hw1/run.sh", "hw1/sample.bin", "hw1/tests/public_tests.py",
        "hw2/README.md", "hw2/protonet.py",
    }
    assert not any(word in path.lower() for path in files for word in ("autograder", "solutions", "graders"))
    assert (out / "hw1" / "load_data.py").read_bytes() == (FIXTURES / "expected" / "hw1" / "load_data.py").read_bytes()
    assert os.access(out / "data_download.sh", os.X_OK)
    tomllib = pytest.importorskip("tomllib", reason="Python < 3.11 has no tomllib")
    project = tomllib.loads((out / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == ["torch==2.13.0", "numpy>=1.24"]
    assert project["project"]["version"] == "1.2.3"
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["omniglot_data*"]
    assert "optional-dependencies" not in project["project"]
    readme = (out / "README.md").read_text()
    for expected in ("conda activate homework-env", "`hw1/`", "`hw2/`", "bash data_download.sh", "pytest hw1"):
        assert expected in readme
    assert "$" not in readme  # every template placeholder was filled
    assert not (repo / "hw1").exists()  # --out leaves the repository's release alone


def test_out_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    repo = make_student_repo(tmp_path)
    out = tmp_path / "student"
    out.mkdir()
    (out / "old_file.txt").write_text("from an earlier run\n")
    assert cli(repo, "--out", str(out)) == release.EXIT_CANNOT
    assert "is not empty; pass --force" in capsys.readouterr().err
    assert cli(repo, "--out", str(out), "--force", "--assignment", "hw2") == release.EXIT_OK
    assert not (out / "old_file.txt").exists() and not (out / "hw1").exists() and (out / "hw2").is_dir()


def test_out_refuses_the_repository_itself(tmp_path, capsys):
    repo = make_student_repo(tmp_path)
    assert cli(repo, "--out", str(repo), "--force") == release.EXIT_CANNOT
    assert "would overwrite the repository" in capsys.readouterr().err
    assert (repo / "autograder" / "solutions" / "hw1" / "load_data.py").exists()


def test_out_reports_a_missing_repository_file(tmp_path, capsys):
    repo = make_student_repo(tmp_path)
    (repo / "environment.yml").unlink()
    assert cli(repo, "--out", str(tmp_path / "student")) == release.EXIT_CANNOT
    assert "environment.yml is missing; a student tree needs it" in capsys.readouterr().err
    assert not (tmp_path / "student").exists()


def test_out_rejects_instructor_text_in_copied_files(tmp_path, capsys):
    repo = make_student_repo(tmp_path)
    (repo / "omniglot_data" / "__init__.py").write_text('"""Provided data package (see autograder/scoring)."""\n')
    assert cli(repo, "--out", str(tmp_path / "student")) == release.EXIT_LEAK
    assert "omniglot_data/__init__.py:1: instructor-only text 'autograder/s'" in capsys.readouterr().err
    assert not (tmp_path / "student").exists()


def test_out_rejects_instructor_names_in_paths(tmp_path, capsys):
    repo = make_student_repo(tmp_path)
    (repo / "omniglot_data" / "graders_notes.txt").write_text("oops\n")
    assert cli(repo, "--out", str(tmp_path / "student")) == release.EXIT_LEAK
    assert "omniglot_data/graders_notes.txt:1: instructor-only name in a student tree path" in capsys.readouterr().err
    assert not (tmp_path / "student").exists()


# --- the real repository ---------------------------------------------------------------------------------------------


def grader_points(assignment: str) -> tuple[float, float]:
    """(regular, extra credit) points of the grader tests, read from their @pytest.mark.points marks."""
    totals = {False: 0.0, True: 0.0}
    for path in sorted((REPO_ROOT / "autograder" / "graders" / assignment).glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                marks = {ast.unparse(d.func if isinstance(d, ast.Call) else d): d for d in node.decorator_list}
                if "pytest.mark.points" in marks:
                    points = ast.literal_eval(marks["pytest.mark.points"].args[0])
                    totals["pytest.mark.extra_credit" in marks] += points
    return totals[False], totals[True]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_handout_point_tables_add_up_to_the_graders_totals(assignment):
    handout = (SOLUTIONS_DIR / assignment / "README.md").read_text()
    rows = re.findall(r"^\| [^|]+ \| [^|]+ \| (autograder|hand) \| \+?(\d+)(?: extra credit)? \|$", handout, re.M)
    extra_rows = re.findall(r"^\| extra \| [^|]+ \| autograder \| \+(\d+) extra credit \|$", handout, re.M)
    total = re.search(r"\*\*Total: autograded (\d+) \+ (\d+) extra credit; written (\d+); total (\d+) \+ (\d+)\.\*\*",
                      handout)
    assert total, f"{assignment}/README.md: no line '**Total: autograded A + E extra credit; written W; total T + E.**'"
    autograded, extra, written, overall, overall_extra = map(int, total.groups())
    regular, extra_credit = grader_points(assignment)
    assert (autograded, extra) == (regular, extra_credit), (
        f"{assignment}/README.md says autograded {autograded} + {extra} extra credit; the graders' points marks add "
        f"up to {regular:g} + {extra_credit:g}")
    assert sum(int(points) for kind, points in rows if kind == "autograder") == autograded + extra
    assert sum(int(points) for kind, points in rows if kind == "hand") == written
    assert [int(points) for points in extra_rows] == [extra]
    assert (overall, overall_extra) == (autograded + written, extra)
    assert f"`{autograded} / {autograded} + {extra} extra credit`" in handout  # the autograder report's wording




def test_repository_student_tree_speaks_to_students_only(tmp_path):
    # The leak check covers every file of the tree: the assignments, omniglot_data, the set-up files, the templates.
    out = tmp_path / "student"
    result = subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(out)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"release --out failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    assert (out / "hw1" / "load_data.py").is_file() and (out / "omniglot_data" / "store.py").is_file()


def test_repository_release_is_in_sync():
    without_code = [name for name in ASSIGNMENTS if not any((SOLUTIONS_DIR / name).rglob("*.py"))]
    if without_code:
        pytest.skip(f"no reference solution yet in autograder/solutions/{', '.join(without_code)} (no .py files)")
    result = subprocess.run([sys.executable, "-m", "autograder", "release", "--check"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"release --check failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
