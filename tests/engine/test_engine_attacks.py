"""The attack corpus: submissions that try to cheat or break the grader.

Each one targets the `attack` fixture assignment: `test_attacked` (1 point) calls the function the attack
subverts, `test_intact` (1 point) a function that stays correct, in a fresh worker. Every case asserts that the
attack gained nothing (the attacked test fails unless its answer is genuinely right), that the rest of the run is
intact (the other test passes, both tests are reported, no grader error), and that nothing outlives grading.
"""

import os
import shutil
import socket
import stat
import zipfile
from pathlib import Path

import pytest

from autograder.assignment import load_assignment
from autograder.engine import cgroups
from autograder.engine.grade import grade_submission
from autograder.engine.sandbox import inode_caps_available

from engine_helpers import ATTACK, ATTACKS, by_name, sandbox_processes

pytestmark = pytest.mark.usefixtures("sandbox")

ONLY_INTACT = {"test_attacked": "failed", "test_intact": "passed"}
NOTHING = {"test_attacked": "failed", "test_intact": "failed"}


def _grade(attack, submission: Path, worker_start: str = "fork") -> dict:
    results = grade_submission(attack, submission, worker_start=worker_start)
    assert results["extra_data"]["grader_errors"] == [], results["extra_data"]["grader_errors"]
    assert results["extra_data"]["sandbox"] == "bwrap"
    assert len(results["tests"]) == 2 and results["max_score"] == 2
    for test in results["tests"]:
        assert "not graded" not in test["output"], test["output"]
    assert sandbox_processes(results["extra_data"]["worker_uid"]) == [], "a worker process outlived grading"
    return results


def _submit(tmp_path: Path, attack_name: str, **substitutions) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    source = (ATTACKS / f"{attack_name}.py").read_text()
    for key, value in substitutions.items():
        source = source.replace(f"__{key}__", value)
    (folder / "target.py").write_text(source)
    return folder


def _statuses(results: dict) -> dict:
    return {name: test["status"] for name, test in by_name(results).items()}


# attack file -> expected status of each test; a message fragment the attacked test's feedback must contain
SIMPLE_ATTACKS = {
    "write_results_files": (ONLY_INTACT, "blocked /autograder/results/results.json"),
    "exit_at_import": (NOTHING, "SystemExit"),
    "os_exit_at_import": (NOTHING, "exited with code 0 before replying"),
    "exit_in_call": (ONLY_INTACT, "SystemExit"),
    "os_exit_in_call": (ONLY_INTACT, "exited with code 0 before replying"),
    "infinite_loop": (ONLY_INTACT, "timed out after 3 s"),
    "sleep_catch_all": (ONLY_INTACT, "timed out after 3 s"),
    "fork_bomb": (ONLY_INTACT, "timed out after 3 s"),
    "memory_bomb": (ONLY_INTACT, "ran out of memory (the limit is 1024 MiB)"),
    "snoop_filesystem": (ONLY_INTACT, "found []"),
    "read_known_paths": (ONLY_INTACT, "assert -1 == 42"),
    "monkeypatch_comparisons": (ONLY_INTACT, "assert 41 == 42"),
    "always_equal_object": (ONLY_INTACT, "cannot send a value of type target.Anything"),
    "always_equal_int": (ONLY_INTACT, "cannot send a value of type target.SneakyInt"),
    "oversized_frame": (ONLY_INTACT, "exceeds the"),
    "garbage_frame": (ONLY_INTACT, "unusable reply"),
    "early_frame": (NOTHING, "written out of turn"),
    "setsid_background": (ONLY_INTACT, "assert 41 == 42"),
    "write_outside": (ONLY_INTACT, "written: []"),
    "fill_disk": (ONLY_INTACT, "No space left on device"),
    "fill_dev": (ONLY_INTACT, "dev_shm_capped=True dev_file=blocked"),
    "escape_namespaces": (ONLY_INTACT, "gained: []"),
    "kill_everything": (ONLY_INTACT, "attacked"),
    "leave_traces": (ONLY_INTACT, "message queue refused"),
    "steer_fork_server": (ONLY_INTACT, "gained: []"),
    "extra_reply_key": (NOTHING, "keys the probe never sends: ['hoard']"),
    "many_files": (ONLY_INTACT, "capped=True"),  # an inode cap needs root (the mounts are the launcher's)
}


# Every attack, with each test's worker forked by the run's fork server (the default) and with a fresh sandbox per
# test (`--worker-start fresh`): the switch must not change a grade. steer_fork_server targets the sandbox's init,
# which only with the fork server outlives a test (with fresh workers it is bwrap's own init, without
# capabilities, gone with the test's sandbox).
@pytest.mark.parametrize("name, worker_start", [
    (name, worker_start) for name in sorted(SIMPLE_ATTACKS) for worker_start in ("fork", "fresh")
    if (name, worker_start) != ("steer_fork_server", "fresh")])
def test_attack_gains_nothing(attack, tmp_path, name, worker_start):
    if name == "many_files" and not inode_caps_available():
        pytest.skip("inode caps need a grader running as root (the writable folders are mounted by the launcher)")
    expected, fragment = SIMPLE_ATTACKS[name]
    results = _grade(attack, _submit(tmp_path, name, HOST_DIR=repr(str(tmp_path)),
                                     HOST_PIDS=repr([os.getpid(), os.getppid()])), worker_start)
    assert results["extra_data"]["worker_start"] == worker_start
    assert _statuses(results) == expected
    assert results["score"] == sum(status == "passed" for status in expected.values())
    assert fragment in by_name(results)["test_attacked"]["output"]
    assert not (tmp_path / "PWNED").exists()


def test_huge_output_is_capped_and_the_answer_still_counts(attack, tmp_path):
    results = _grade(attack, _submit(tmp_path, "huge_stdout"))
    assert _statuses(results) == {"test_attacked": "passed", "test_intact": "passed"}
    output = by_name(results)["test_attacked"]["output"]
    assert len(output) < 20 * 1024  # output_kb = 16 in the attack assignment, plus the notice
    assert "more bytes of output not shown (limit 16384 bytes per test)" in output


def _edited_attack(tmp_path: Path, file_name: str, old: str, new: str):
    """The attack assignment with one text edit in one of its graders' files (a longer timeout, another limit)."""
    graders = tmp_path / "graders"
    shutil.copytree(ATTACK / "graders", graders)
    edited = graders / file_name
    edited.write_text(edited.read_text().replace(old, new))
    return load_assignment(graders, solutions_dir=ATTACK / "solution", release_dir=ATTACK / "release")


LONGER_TIMEOUT = ("test_attack.py", "@pytest.mark.timeout(3)", "@pytest.mark.timeout(60)")


def test_tensor_subclass_and_patched_torch_gain_nothing(tmp_path):
    # importing torch can take longer than the corpus's 3 s call timeout on a loaded machine: allow 60 s here
    assignment = _edited_attack(tmp_path, *LONGER_TIMEOUT)
    results = _grade(assignment, _submit(tmp_path, "tensor_subclass"))
    assert _statuses(results) == ONLY_INTACT
    # what arrived is a plain tensor (its subclass methods never ran in the harness), so the comparison is honest
    assert "assert tensor(" in by_name(results)["test_attacked"]["output"]


@pytest.mark.parametrize("worker_start", ["fork", "fresh"])
def test_memory_across_processes_is_bounded_by_the_sandboxs_cgroup(tmp_path, worker_start):
    if cgroups.available() == "none":
        pytest.skip("a limit on the sandbox as a whole needs cgroups (a grader running as root, with the memory and "
                    "pids controllers)")
    # 1.2 GiB written page by page: more than the corpus's 3 s on a loaded machine
    assignment = _edited_attack(tmp_path, *LONGER_TIMEOUT)
    results = _grade(assignment, _submit(tmp_path, "memory_across_processes"), worker_start)
    assert results["extra_data"]["cgroups"] in ("v1", "v2")
    assert _statuses(results) == ONLY_INTACT
    assert "all_held=False" in by_name(results)["test_attacked"]["output"]


def test_cpu_time_of_a_call_is_bounded_by_the_sandboxs_cgroup(tmp_path):
    if cgroups.available() == "none":
        pytest.skip("CPU time of a whole sandbox is counted by its cgroup (a grader running as root)")
    # half a core's worth of the 3 s timeout: 1.5 s of CPU, hit before the 3 s
    assignment = _edited_attack(tmp_path, "assignment.toml", "[sandbox]\n", "[sandbox]\ncpu_cores = 0.5\n")
    results = _grade(assignment, _submit(tmp_path, "cpu_hog"))
    assert _statuses(results) == ONLY_INTACT
    output = by_name(results)["test_attacked"]["output"]
    assert "of CPU time, more than the 1.5 s allowed" in output, output


def test_network_is_unreachable(attack, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0)
        port = listener.getsockname()[1]
        results = _grade(attack, _submit(tmp_path, "network", HOST_PORT=str(port)))
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert _statuses(results) == ONLY_INTACT
    assert "blocked ('127.0.0.1'" in by_name(results)["test_attacked"]["output"]


def test_pickle_reply_is_never_unpickled(attack, tmp_path):
    marker = tmp_path / "UNPICKLED"
    results = _grade(attack, _submit(tmp_path, "pickle_reply", MARKER=str(marker)))
    assert _statuses(results) == ONLY_INTACT
    assert "unusable reply" in by_name(results)["test_attacked"]["output"]
    assert not marker.exists()


def test_other_submissions_are_invisible(attack, tmp_path):
    other = tmp_path / "other-student"
    other.mkdir()
    (other / "target.py").write_text("# OTHER-SUBMISSION-SECRET-91c2\n")
    results = _grade(attack, _submit(tmp_path, "snoop_filesystem"))
    assert _statuses(results) == ONLY_INTACT
    assert "found []" in by_name(results)["test_attacked"]["output"]


def test_pytest_and_python_hooks_in_the_submission_are_ignored(attack, tmp_path):
    marker = tmp_path / "HOOK_RAN"
    folder = _submit(tmp_path, "monkeypatch_comparisons")
    hook = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "conftest.py").write_text(hook + "import pytest\n@pytest.hookimpl(tryfirst=True)\n"
                                        "def pytest_runtest_makereport(item, call):\n    call.excinfo = None\n")
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:autograder.engine.harness.plugin\n")
    (folder / "sitecustomize.py").write_text(hook)
    (folder / "usercustomize.py").write_text(hook)
    (folder / "evil.pth").write_text(f"import os; {hook}")
    (folder / "probes.py").write_text("def attacked():\n    return {'value': 42}\n")
    results = _grade(attack, folder)
    assert _statuses(results) == ONLY_INTACT
    assert results["extra_data"]["submitted_files"] == ["target.py"]
    assert not marker.exists()


def _zip(tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    path = tmp_path / "submission.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


GOOD = b"def attacked():\n    return 42\n\n\ndef intact(x):\n    return 2 * x\n"


def _symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize("entries, reason", [
    ([("sub/target.py", GOOD), ("../../escaped.py", b"x = 1\n")], "points outside the archive"),
    ([("target.py", GOOD), ("/tmp/absolute-escape.py", b"x = 1\n")], "has an absolute path"),
    ([_symlink_entry("target.py", "/work/main/tests/fixtures/engine/attack/solution/target.py")], "symbolic link"),
    ([("target.py", GOOD + b"#" * (16 * 1024 * 1024))], "zip bomb"),
], ids=["dotdot", "absolute", "symlink", "bomb"])
def test_malicious_zip_is_rejected_whole(attack, tmp_path, entries, reason):
    results = _grade(attack, _zip(tmp_path, entries))
    assert results["score"] == 0
    assert reason in results["extra_data"]["rejected"]
    assert f"Submission rejected: " in results["output"]
    assert not (tmp_path.parent / "escaped.py").exists() and not Path("/tmp/absolute-escape.py").exists()
