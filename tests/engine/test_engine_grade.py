"""End to end on the toy assignment: scores, partial and extra credit, visibility, reports, fail-closed."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder.assignment import AssignmentError, load_assignment
from autograder.engine import sandbox as sandbox_module
from autograder.engine.grade import grade_submission
from autograder.classroom.report import render_html, render_markdown, render_table
from autograder.engine.sandbox import UID_BASE

from engine_helpers import ATTACK, ATTACKS, TOY, by_name, sandbox_processes

pytestmark = pytest.mark.usefixtures("sandbox")


@pytest.fixture(scope="module")
def reference_results(toy):
    return grade_submission(toy, TOY / "solution")


def test_reference_scores_full_marks_with_partial_and_extra_credit(reference_results):
    results = reference_results
    tests = by_name(results)
    assert all(test["status"] == "passed" for test in tests.values())
    assert tests["test_accuracy"]["score"] == pytest.approx(3.2)  # partial_credit(0.8) of 4 points
    assert tests["test_bonus"]["max_score"] == 0 and tests["test_bonus"]["score"] == 2  # extra credit
    assert results["max_score"] == 11 and results["score"] == pytest.approx(12.2)
    assert tests["test_describe"]["visibility"] == "hidden"
    assert tests["test_provided_offset"]["visibility"] == "after_due_date"
    assert tests["test_add"]["name"] == "test_add: add() sums two numbers"
    assert results["extra_data"]["grader_errors"] == [] and results["extra_data"]["sandbox"] == "bwrap"
    assert results["extra_data"]["profile"] == "cpu" and results["extra_data"]["submitted_files"] == ["toy.py"]


def test_blank_starter_scores_zero_without_crashing(toy):
    results = grade_submission(toy, TOY / "release")
    tests = by_name(results)
    # the provided helper is the official one whatever the submission, so only that test passes
    assert {n: t["status"] for n, t in tests.items() if t["status"] == "passed"} == {"test_provided_offset": "passed"}
    assert results["score"] == 1 and results["extra_data"]["grader_errors"] == []
    assert "add raised NotImplementedError: add" in tests["test_add"]["output"]
    assert 'File "toy.py", line 9, in add' in tests["test_add"]["output"]
    assert "_autograder_worker" not in tests["test_add"]["output"]


def test_provided_files_come_from_the_release_not_the_submission(toy, tmp_path):
    shutil.copy(TOY / "solution" / "toy.py", tmp_path / "toy.py")
    (tmp_path / "helper.py").write_text("OFFSET = 1000\n")
    results = grade_submission(toy, tmp_path)
    assert by_name(results)["test_provided_offset"]["status"] == "passed"
    assert results["extra_data"]["submitted_files"] == ["toy.py"]


def test_zip_submission_with_wrong_answers_and_output(toy, tmp_path):
    source = (TOY / "solution" / "toy.py").read_text()
    source = source.replace("return a + b", "print('adding', a, b)\n    return a - b")
    source = source.replace("return 0.8", "return 0.3")
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("my_hw/toy.py", source)
        zf.writestr("__MACOSX/my_hw/._toy.py", "junk")
    tests = by_name(grade_submission(toy, archive))
    assert tests["test_add"]["status"] == "failed"
    assert "adding 2 40" in tests["test_add"]["output"] and "assert -38 == 42" in tests["test_add"]["output"]
    assert tests["test_accuracy"]["score"] == 0 and "accuracy 0.30 is below 0.5" in tests["test_accuracy"]["output"]
    assert tests["test_scale"]["status"] == "passed"


def test_control_characters_from_the_submission_reach_no_record(toy, tmp_path):
    """Escape codes in a zip folder name, in printed output, in an exception message and in a worker's reported
    timing end up as visible escapes (or dropped) in results.json, the table and the feedback."""
    clear, clipboard, carriage = "\x1b[2J\x1b[H", "\x1b]52;c;aGVsbG8=\x07", "\rTotal: 77 / 77"
    source = (TOY / "solution" / "toy.py").read_text()
    source = source.replace("return a + b", f"print({clear + clipboard!r})\n    raise ValueError({carriage!r})")
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"deep/{clear}x/toy.py", "junk = 1\n")
        zf.writestr("toy.py", source)
    results = grade_submission(toy, archive)
    def strings(value):
        if isinstance(value, dict):
            return "".join(strings(key) + strings(item) for key, item in value.items())
        return "".join(map(strings, value)) if isinstance(value, list) else value if isinstance(value, str) else ""

    records = {"results.json": strings(results), "table": render_table(results),
               "markdown": render_markdown(results, show_hidden=True), "html": render_html(results, show_hidden=True)}
    for where, text in records.items():
        assert not any(ord(c) < 0x20 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in text), where
    add = by_name(results)["test_add"]["output"]
    assert "\\x1b[2J" in add and "\\x1b]52;c;aGVsbG8=\\x07" in add and "\\x0dTotal: 77 / 77" in add
    assert "\\x1b[2J" in results["output"]  # the ignored copy's location, in the intake note
    assert all(type(call["worker_seconds"]) in (float, type(None)) for test in results["tests"]
               for call in test["extra_data"]["calls"])


def test_tracebacks_show_the_students_frames_only(toy, tmp_path):
    """An error raised inside torch, called from the student's file: the feedback names the student's line, relative
    to the submission, and no probe, library or grading-host path."""
    submission = tmp_path / "submission"
    submission.mkdir()
    source = (TOY / "solution" / "toy.py").read_text()
    (submission / "toy.py").write_text(source.replace("return a + b",
                                                      "import torch\n    return torch.ones(2) @ torch.ones(3)"))
    output = by_name(grade_submission(toy, submission))["test_add"]["output"]
    assert 'File "toy.py", line' in output and "torch.ones(2) @ torch.ones(3)" in output and "RuntimeError" in output
    for host_detail in ("site-packages", "probes.py", "/sandbox", "_autograder", str(Path(sys.executable).parent)):
        assert host_detail not in output, (host_detail, output)


def test_reports_respect_visibility_and_escape_student_output(reference_results):
    results = json.loads(json.dumps(reference_results))
    results["tests"][0]["output"] = "<script>alert('x')</script> ```` fence"
    student_md = render_markdown(results)
    assert "test_describe" not in student_md and "test_provided_offset" not in student_md
    assert "2 more tests not shown yet" in student_md
    assert "test_describe" in render_markdown(results, show_hidden=True)
    assert "test_provided_offset" in render_markdown(results, after_due_date=True)
    page = render_html(results)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "default-src 'none'" in page
    table = render_table(results)
    assert "test_describe" in table and "Total: 10.2 / 11 + 2 extra credit" in table  # Gradescope's 12.2 / 11


def test_grader_bugs_fail_closed_and_are_flagged(toy, tmp_path):
    graders = tmp_path / "graders"
    shutil.copytree(TOY / "graders", graders)
    (graders / "test_broken.py").write_text("import pytest\n\nthis is not python\n")
    (graders / "test_misspelt.py").write_text(
        "import pytest\n\n@pytest.mark.point(3)\ndef test_x(student):\n    pass\n")
    assignment = load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")
    results = grade_submission(assignment, TOY / "solution")
    errors = "\n".join(results["extra_data"]["grader_errors"])
    assert "collection error in test_broken.py" in errors
    assert "collection error in test_misspelt.py" in errors and "'point' not found in `markers`" in errors
    assert "GRADER ERROR" in results["output"]
    # pytest stops before running anything when a file fails to collect: nothing scores, everything says why
    assert results["score"] == 0 and all("not graded" in test["output"] for test in results["tests"])


def test_missing_points_marker_is_a_grader_error(toy, tmp_path):
    graders = tmp_path / "graders"
    shutil.copytree(TOY / "graders", graders)
    (graders / "test_unmarked.py").write_text("def test_nothing(student):\n    pass\n")
    assignment = load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")
    results = grade_submission(assignment, TOY / "solution")
    assert results["score"] == 0 and results["tests"] == []
    assert "needs @pytest.mark.points" in "\n".join(results["extra_data"]["grader_errors"])


def test_reference_failure_is_a_grader_error_not_the_students(toy, tmp_path):
    solution = tmp_path / "solution"
    shutil.copytree(TOY / "solution", solution)
    (solution / "toy.py").write_text((solution / "toy.py").read_text().replace("return a + b", "return 1 / 0"))
    assignment = load_assignment(TOY / "graders", solutions_dir=solution, release_dir=TOY / "release")
    results = grade_submission(assignment, TOY / "solution")
    add = by_name(results)["test_add"]
    assert add["status"] == "failed" and add["output"].startswith("grader error (not your fault")
    [error] = results["extra_data"]["grader_errors"]
    assert error.startswith("test_add: add() sums two numbers: grader error") and "ZeroDivisionError" in error


def test_harness_killed_by_total_timeout_scores_unreported_tests_zero(tmp_path):
    graders = tmp_path / "graders"
    shutil.copytree(TOY / "graders", graders)
    toml = (graders / "assignment.toml").read_text().replace("total_timeout = 120", "total_timeout = 4")
    (graders / "assignment.toml").write_text(toml)
    (graders / "test_zz_slow.py").write_text(
        "import time, pytest\n\n@pytest.mark.points(5)\ndef test_grader_hangs():\n    time.sleep(60)\n")
    assignment = load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")
    results = grade_submission(assignment, TOY / "solution")
    slow = by_name(results)["test_grader_hangs"]
    assert slow["score"] == 0 and slow["output"].startswith("not graded: the grading harness stopped")
    assert results["max_score"] == 16
    assert any("total time limit of 4 s" in e for e in results["extra_data"]["grader_errors"])


def _toy_graders_without_tests(tmp_path: Path) -> Path:
    """A copy of the toy's graders folder (assignment.toml, probes.py) holding no test file yet."""
    graders = tmp_path / "graders"
    shutil.copytree(TOY / "graders", graders)
    for test_file in graders.glob("test_*.py"):
        test_file.unlink()
    return graders


def test_torch_values_cross_the_boundary(toy, tmp_path):
    graders = _toy_graders_without_tests(tmp_path)
    (graders / "test_torch.py").write_text(
        "import numpy as np, pytest, torch\n\n@pytest.mark.points(1)\n"
        "def test_torch(student):\n"
        "    got = student.run('with_torch', n=4)\n"
        "    assert got['t'].dtype == torch.float64\n"
        "    assert torch.equal(got['t'], torch.arange(4.0, dtype=torch.float64) * 7)\n"
        "    assert got['h'].dtype == torch.float16 and got['b'].dtype == torch.bfloat16 and got['n'] == 4\n"
        "    x = torch.linspace(0, 1, 5)\n"
        "    back = student.run('echo', x=x, nested={'y': np.eye(2)})\n"
        "    assert torch.equal(back['x'], x) and np.array_equal(back['nested']['y'], np.eye(2))\n")
    assignment = load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")
    results = grade_submission(assignment, TOY / "solution")
    assert results["score"] == 1, results["tests"][0]["output"]


def test_reference_worker_is_shared_and_the_students_is_not(toy, tmp_path):
    """One reference worker per grading run and data view (trusted code: ~2 s of start-up saved per test), a fresh
    student worker for every test."""
    graders = _toy_graders_without_tests(tmp_path)
    with (graders / "probes.py").open("a") as probes:
        # a token drawn when the worker imports the probes (a sandboxed worker's pid is the same in every namespace)
        probes.write("\n\nimport os as _os\n\n_WORKER = _os.urandom(8).hex()\n\n\n"
                     "def worker():\n    return {'worker': _WORKER}\n\n\nREPLIES['worker'] = {'worker': 'text'}\n")
    (graders / "test_workers.py").write_text(
        "import pytest\n\nSEEN = []\n\n"
        "@pytest.mark.points(1)\n@pytest.mark.parametrize('round', [0, 1, 2])\n"
        "def test_workers(student, reference, round):\n"
        "    SEEN.append((student.run('worker')['worker'], reference.run('worker')['worker']))\n"
        "    students, references = zip(*SEEN)\n"
        "    assert len(set(students)) == len(SEEN) and len(set(references)) == 1, SEEN\n")
    assignment = load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")
    results = grade_submission(assignment, TOY / "solution")
    assert results["score"] == 3, [test["output"] for test in results["tests"]]


def test_cli_writes_files_and_exit_codes(tmp_path):
    command = [sys.executable, "-m", "autograder", "grade", str(TOY / "graders"), str(TOY / "release"),
               "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "f.md"),
               "--html", str(tmp_path / "f.html")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Total: 1 / 11 + 0 extra credit" in done.stdout
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["score"] == 1  # the passing after_due_date test: counted, but not in the text students see now
    assert written["output"].startswith("Score: 0 / 9 + 0 extra credit (2 more tests not shown yet)")
    assert (tmp_path / "f.md").read_text().startswith("# Feedback: toy")
    missing = subprocess.run(command[:5] + [str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('student_files = ["toy.py"]', 'student_files = ["../x.py"]'), "must be a plain file name"),
    (lambda t: "colour = 1\n" + t, "unknown keys ['colour']"),
    (lambda t: t.replace("[sandbox]", "[sandbox]\nmemory = 3"), "unknown [sandbox] keys ['memory']"),
    (lambda t: t.replace("timeout = 10", "timeout = -1"), "timeout must be a positive number"),
    (lambda t: t.replace('probes = "probes.py"', 'probes = "nothere.py"'), "nothere.py does not exist"),
    (lambda t: t.replace('probes = "probes.py"', 'probes = "toy.py"'), "clashes with an assignment file"),
    (lambda t: t.replace('provided_files = ["helper.py"]', 'provided_files = ["sitecustomize.py"]'), "is reserved"),
], ids=["path-in-name", "unknown-key", "unknown-limit", "bad-timeout", "missing-probes", "probes-clash",
        "reserved-name"])
def test_assignment_toml_errors_name_the_key(tmp_path, edit, message):
    graders = tmp_path / "graders"
    shutil.copytree(TOY / "graders", graders)
    toml = graders / "assignment.toml"
    toml.write_text(edit(toml.read_text()))
    with pytest.raises(AssignmentError, match=re.escape(message)):
        load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")


def test_missing_reference_files_are_named(tmp_path):
    with pytest.raises(AssignmentError, match="reference or provided files missing: .*toy.py"):
        load_assignment(TOY / "graders", solutions_dir=tmp_path)


def test_refuses_to_grade_without_bubblewrap(toy, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    with pytest.raises(sandbox_module.SandboxUnavailable, match="bubblewrap .* is not installed"):
        grade_submission(toy, TOY / "solution")


def test_insecure_mode_grades_stamps_and_cleans_up(toy, attack, tmp_path):
    results = grade_submission(toy, TOY / "solution", insecure_no_sandbox=True)
    assert results["score"] == pytest.approx(12.2)
    assert results["extra_data"]["sandbox"] == "insecure"
    assert all(test["extra_data"]["sandbox"] == "insecure" for test in results["tests"])
    assert "graded WITHOUT the sandbox" in results["output"]
    (tmp_path / "target.py").write_text((ATTACKS / "setsid_background.py").read_text())
    results = grade_submission(attack, tmp_path, insecure_no_sandbox=True)
    assert [test["status"] for test in results["tests"]] == ["failed", "passed"]
    if os.geteuid() == 0:  # as root the worker had its own uid, so "no process of that uid" is checkable
        assert sandbox_processes(results["extra_data"]["worker_uid"]) == []


def _grade_attack_solution(args):
    from autograder.assignment import load_assignment as load

    graders, submission = args
    return grade_submission(load(graders), submission)["score"]


def test_parallel_grading_runs_do_not_interfere():
    """grade-all calls grade_submission from several processes at once: each must get its own result."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(ATTACK / "graders", ATTACK / "solution"), (ATTACK / "graders", ATTACK / "release")] * 2
    with ProcessPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(_grade_attack_solution, jobs)) == [2, 0, 2, 0]


def test_a_bare_name_is_an_assignment_even_with_a_same_named_folder_here(tmp_path, monkeypatch):
    import autograder.assignment as assignment_module

    graders_root = tmp_path / "graders"
    shutil.copytree(TOY / "graders", graders_root / "toy")
    monkeypatch.setattr(assignment_module, "GRADERS_DIR", graders_root)
    (tmp_path / "toy").mkdir()  # like the student release hw1/ next to the repository's graders
    monkeypatch.chdir(tmp_path)
    loaded = load_assignment("toy", solutions_dir=TOY / "solution", release_dir=TOY / "release")
    assert loaded.graders_dir == (graders_root / "toy").resolve()
    by_path = load_assignment(graders_root / "toy", solutions_dir=TOY / "solution", release_dir=TOY / "release")
    assert by_path.graders_dir == loaded.graders_dir


def _processes_mentioning(text: str) -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if text in cmdline and state != "Z":
                found[int(entry)] = cmdline
    return found


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="worker uids are only switched when grading as root")


def _worker_pythons(uid: int) -> list[int]:
    """Live worker interpreters (not bubblewrap's own processes) running as `uid`."""
    pids = set(sandbox_processes(uid))
    return [pid for pid in _processes_mentioning("_autograder_worker.py") if pid in pids]


@needs_root
def test_orphaned_sandboxes_are_reaped_by_the_next_run(tmp_path):
    from autograder.engine.grade import reap_orphaned_workers

    uid = UID_BASE + _a_dead_pid()  # the uid of a worker whose grading run has ended
    orphan = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                               "sleep", "300"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not sandbox_processes(uid):
            assert time.monotonic() < deadline, "the stand-in orphan never started"
            time.sleep(0.05)
        live = subprocess.Popen(["setpriv", f"--reuid={UID_BASE + os.getpid()}", f"--regid={UID_BASE + os.getpid()}",
                                 "--clear-groups", "--", "sleep", "300"], start_new_session=True)
        try:
            assert uid in reap_orphaned_workers()
            orphan.wait(10)
            assert live.poll() is None, "a worker whose grading run is alive must not be reaped"
        finally:
            live.kill()
            live.wait()
    finally:
        orphan.kill()
        orphan.wait()


def _a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_the_grader_stops_harness_and_workers(tmp_path, how):
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "target.py").write_text((ATTACKS / "sleep_catch_all.py").read_text())
    runs = tmp_path / "runs"
    runs.mkdir()
    graders = tmp_path / "graders"  # a long call timeout: a harness that outlived the grader would still be running
    shutil.copytree(ATTACK / "graders", graders)
    test_file = graders / "test_attack.py"
    test_file.write_text(test_file.read_text().replace("@pytest.mark.timeout(3)", "@pytest.mark.timeout(120)"))
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(graders), str(submission),
                               "--solutions", str(ATTACK / "solution"), "--release", str(ATTACK / "release")],
                              env={**os.environ, "TMPDIR": str(runs)}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    harness = []
    # Wait until the student's code runs in the worker: a grader killed while bubblewrap is still starting can
    # orphan the sandbox (see test_orphaned_sandboxes_are_reaped_by_the_next_run).
    while not harness or not _worker_pythons(UID_BASE + harness[0]):
        assert time.monotonic() < deadline, "the sandboxed worker never started"
        harness = [pid for pid, cmd in _processes_mentioning(str(runs)).items() if "autograder.engine.harness.plugin" in cmd]
        time.sleep(0.05)
    time.sleep(0.5)
    grader.send_signal(how)
    grader.wait(30)
    deadline = time.monotonic() + 10
    while (_processes_mentioning(str(runs)) or sandbox_processes(UID_BASE + harness[0])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(str(runs)) == {} and sandbox_processes(UID_BASE + harness[0]) == []
    if how == signal.SIGTERM:
        assert grader.returncode == 128 + signal.SIGTERM and os.listdir(runs) == []


def test_training_that_never_ends_fails_at_the_reference_paced_limit(toy, tmp_path):
    """A training call gets a multiple of the reference's own time for it (timed in the same run), not the test's
    whole timeout: a hung training fails in seconds here, and the message says why."""
    graders = _toy_graders_without_tests(tmp_path)
    with (graders / "probes.py").open("a") as probes:
        probes.write("\n\ndef train(steps):\n    toy.train(steps)\n    return {}\n\n\nREPLIES['train'] = {}\n")
    (graders / "test_training.py").write_text(
        "import pytest\n\nfrom autograder.scoring.training_time import run_paced\n\n\n"
        "@pytest.mark.points(1)\n@pytest.mark.timeout(300)\n"
        "def test_training(student, reference):\n"
        "    run_paced(student, reference, 'train', {'steps': 100}, 100, factor=5, floor=2)\n")
    solution = tmp_path / "solution"
    shutil.copytree(TOY / "solution", solution)
    with (solution / "toy.py").open("a") as source:
        source.write("\n\ndef train(steps):\n    import time\n    time.sleep(0.002 * steps)\n")
    assignment = load_assignment(graders, solutions_dir=solution, release_dir=TOY / "release")
    hung = tmp_path / "hung"
    shutil.copytree(TOY / "solution", hung)
    with (hung / "toy.py").open("a") as source:
        source.write("\n\ndef train(steps):\n    while True:\n        pass\n")
    results = grade_submission(assignment, hung)
    [test] = results["tests"]
    assert test["status"] == "failed" and "the limit is 5x the reference's time" in test["output"], test["output"]
    limit = float(test["output"].split("timed out after ")[1].split(" s")[0])
    assert limit < 300  # from the reference's pace (at least the floor of 2 s), not the marker
    honest = grade_submission(assignment, solution)
    assert honest["score"] == 1, honest["tests"][0]["output"]


def test_the_harness_runs_under_its_own_memory_limit(toy, tmp_path):
    """What workers send lands in the harness: its address space is capped too (harness_memory_mb, CPU runs)."""
    graders = _toy_graders_without_tests(tmp_path)
    config = graders / "assignment.toml"
    config.write_text(config.read_text().replace("[sandbox]\n", "[sandbox]\nharness_memory_mb = 3000\n"))
    (graders / "test_limit.py").write_text(
        "import resource\n\nimport pytest\n\n\n@pytest.mark.points(1)\n"
        "def test_limit():\n    assert resource.getrlimit(resource.RLIMIT_AS)[0] == 3000 * 1024 * 1024\n")
    assignment = load_assignment(graders, solutions_dir=TOY / "solution", release_dir=TOY / "release")
    assert grade_submission(assignment, TOY / "solution")["score"] == 1


def test_each_sandbox_has_a_cgroup_that_grading_removes(toy, tmp_path):
    from autograder.engine import cgroups
    from autograder.engine.sandbox import UID_BASE

    if cgroups.available() == "none":
        pytest.skip("no writable cgroups here (needs root and the memory and pids controllers)")
    results = grade_submission(toy, TOY / "solution")
    assert results["extra_data"]["cgroups"] == cgroups.available()
    harness_pid = results["extra_data"]["worker_uid"] - UID_BASE
    roots = [Path(point) / cgroups.PARENT for point, kind, _ in cgroups._mounts()]
    left = [folder for root in roots if root.is_dir() for folder in root.glob(f"sandbox-{harness_pid}-*")]
    assert left == [], left
    # a run killed outright leaves its (empty) group behind: the next grading removes it
    group = cgroups.Cgroup.create(64, 8)
    orphan = {name: folder.with_name(f"sandbox-4194305-{folder.name.rsplit('-', 1)[1]}")
              for name, folder in group.folders.items()}
    for name, folder in group.folders.items():
        folder.rename(orphan[name])
    assert set(cgroups.remove_orphans()) == {folder.name for folder in orphan.values()}
    assert not any(folder.exists() for folder in orphan.values())
