"""grade-all's executors with a stand-in task function: parallelism, GPU slots, isolation of failures, Slurm path."""

import os
from pathlib import Path

import pytest

from autograder.classroom.cluster import GradingJob, LocalExecutor, SlurmExecutor

TESTS_DIR = Path(__file__).resolve().parent
FAKE = "classroom_fake_tasks:fake_grade"


@pytest.fixture
def child_env(monkeypatch):
    """Executor children must import the fake task module from tests/."""
    path = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    return {**os.environ, "PYTHONPATH": path}


def job(student_id, **spec):
    spec.setdefault("tests", [["t1", 1.0, 1.0], ["t2", 0.0, 2.0]])
    return GradingJob(student_id, spec)


def test_failures_stay_with_their_own_submission(child_env):
    jobs = [job("good1"), job("exits", behaviour="exit"), job("killed", behaviour="sigkill"),
            job("raises", behaviour="raise"), job("hangs", behaviour="hang"), job("bad-reply", behaviour="not-a-dict"),
            job("good2")]
    executor = LocalExecutor(jobs=2, timeout_s=3, function=FAKE, env=child_env)
    outcomes = {o.student_id: o for o in executor.run(jobs)}

    assert set(outcomes) == {j.student_id for j in jobs}
    for good in ("good1", "good2"):
        assert outcomes[good].error == ""
        assert outcomes[good].results["score"] == 1.0
    assert "exited with code 3" in outcomes["exits"].error
    assert "killed by SIGKILL" in outcomes["killed"].error
    assert "ValueError: the fake grader broke" in outcomes["raises"].error
    assert "longer than 3 s" in outcomes["hangs"].error
    assert "returned list" in outcomes["bad-reply"].error
    assert all(outcomes[name].results is None for name in ("exits", "killed", "raises", "hangs", "bad-reply"))


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_stopped_job_takes_its_helper_processes_with_it(child_env, tmp_path):
    pid_file = tmp_path / "helper.pid"
    jobs = [job("hangs", behaviour="hang-with-helper", pid_file=str(pid_file))]
    [outcome] = LocalExecutor(jobs=1, timeout_s=3, function=FAKE, env=child_env).run(jobs)
    assert "longer than 3 s" in outcome.error
    assert not alive(int(pid_file.read_text()))


def test_jobs_run_side_by_side_and_gpus_are_never_shared(child_env):
    jobs = [job(f"s{i}", sleep=1.0) for i in range(4)]
    executor = LocalExecutor(jobs=2, gpus=[0, 1], timeout_s=60, function=FAKE, env=child_env)
    outcomes = list(executor.run(jobs))

    assert sorted(o.student_id for o in outcomes) == ["s0", "s1", "s2", "s3"]
    assert {o.device for o in outcomes} == {"cuda:0", "cuda:1"}
    for outcome in outcomes:
        assert outcome.results["extra_data"]["device"] == outcome.device  # the job's spec names its GPU
    spans = [(o.results["extra_data"]["started"], o.results["extra_data"]["ended"], o.device) for o in outcomes]
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, "with 2 jobs, some submissions must be graded at the same time"
    assert all(a[2] != b[2] for a, b in overlapping), "two jobs overlapped on one GPU"


def test_one_job_runs_submissions_one_after_another(child_env):
    jobs = [job(f"s{i}", sleep=0.3) for i in range(3)]
    outcomes = list(LocalExecutor(jobs=1, timeout_s=60, function=FAKE, env=child_env).run(jobs))
    spans = sorted((o.results["extra_data"]["started"], o.results["extra_data"]["ended"]) for o in outcomes)
    assert all(first[1] <= second[0] for first, second in zip(spans, spans[1:]))


def test_stopping_early_kills_running_jobs(child_env):
    jobs = [job("quick"), job("slow1", behaviour="hang"), job("slow2", behaviour="hang")]
    executor = LocalExecutor(jobs=3, timeout_s=600, function=FAKE, env=child_env)
    outcomes = executor.run(jobs)
    first = next(outcomes)
    assert first.student_id == "quick"
    outcomes.close()  # what Ctrl-C in grade-all does, through contextlib.closing
    assert executor._running == set()


def test_slurm_executor_through_submitit_local(child_env, tmp_path):
    jobs = [job("alice"), job("bob", behaviour="raise"), job("carol", tests=[["t1", 0.5, 1.0]])]
    executor = SlurmExecutor(tmp_path / "slurm", cluster="local", time_min=5, function=FAKE, poll_s=0.2)
    outcomes = {o.student_id: o for o in executor.run(jobs)}

    assert outcomes["alice"].results["score"] == 1.0
    assert outcomes["carol"].results["score"] == 0.5
    assert outcomes["bob"].results is None
    assert "the fake grader broke" in outcomes["bob"].error
    assert str(tmp_path / "slurm") in outcomes["bob"].error  # where to find the job's logs
    assert outcomes["alice"].results["extra_data"]["pid"] != os.getpid()


def test_bad_jobs_value_is_refused():
    with pytest.raises(ValueError, match="--jobs must be at least 1"):
        LocalExecutor(jobs=0)


def test_slurm_array_task_grades_on_the_gpu_it_was_allocated(child_env, tmp_path):
    """Slurm hands a task its GPU as CUDA_VISIBLE_DEVICES (a physical index); the task must pass that index on."""
    executor = SlurmExecutor(tmp_path / "slurm", cluster="local", gpus=1, time_min=5, function=FAKE, poll_s=0.2)
    # submitit's local executor allocates like Slurm would; make it hand out GPU 3 (no GPU is touched).
    executor.executor._executor.update_parameters(visible_gpus=(3,))
    [outcome] = executor.run([job("alice")])
    assert outcome.results["extra_data"]["device"] == "cuda:3"
    assert outcome.device == "cuda:3"


def test_slurm_grading_time_is_measured_inside_the_task(child_env, tmp_path):
    """grading_seconds must not count the wait before the task ran: here the submitting side only looks every 3 s
    (as it would look at a queue), while the task itself grades in about 0.3 s."""
    executor = SlurmExecutor(tmp_path / "slurm", cluster="local", time_min=5, function=FAKE, poll_s=3.0)
    outcomes = {o.student_id: o for o in executor.run([job("alice", sleep=0.3), job("bob", behaviour="raise")])}
    extra = outcomes["alice"].results["extra_data"]
    assert extra["ended"] - extra["started"] <= outcomes["alice"].seconds < 2.0
    assert outcomes["bob"].seconds is None  # failed, and submitit's local cluster has no accounting: unknown


# -- the class summary: messages counted by pattern, timeouts and import failures listed -----------------------------


def summary_row(student_id, *tests, status="graded", error=""):
    from autograder.classroom.gradebook import StudentRow

    results = None if status == "error" else {
        "tests": [{"name": name, "score": 0.0, "max_score": 2.0, "status": "failed", "output": output}
                  for name, output in tests]}
    return StudentRow(student_id=student_id, first_name="", last_name="", email="", status=status, error=error,
                      auto_score=0.0, written_score=0.0, score=0.0, max_score=4.0, results=results, seconds=1.0)


# Failure texts as the harness writes them (engine/harness/runner.py, the worker's student-only tracebacks).
SYNTAX = ("{} raised SyntaxError: invalid syntax (toy.py, line {})\nTraceback (most recent call last):\n"
          '  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed\n'
          '  File "/sandbox/toy.py", line {}\n    def broken(:\n')
TOP_LEVEL = ("{} raised NameError: name 'np' is not defined\nTraceback (most recent call last):\n"
             '  File "/sandbox/toy.py", line 3, in <module>\n    x = np.zeros(3)\n')


def test_summary_counts_messages_by_pattern_and_lists_timeouts_and_import_failures(tmp_path):
    from autograder.classroom.summary import write_summary

    rows = [summary_row("alice", ("add", "AssertionError: accuracy 0.31 is below 0.5"),
                        ("scale", "scale: timed out after 10 s (the worker was stopped)")),
            summary_row("bob", ("add", "AssertionError: accuracy 0.12 is below 0.5\nassert 0.12 >= 0.5"),
                        ("scale", "shape (2, 3), expected (3, 2)")),
            summary_row("carol", ("add", SYNTAX.format("add", 36, 36)), ("scale", SYNTAX.format("scale", 36, 36))),
            summary_row("dave", ("add", TOP_LEVEL.format("add")), ("scale", "shape (4, 3), expected (3, 4)")),
            summary_row("erin", status="error", error="grading took longer than 420 s and was stopped")]
    write_summary(tmp_path, "toy", rows, ["add", "scale"])
    markdown = (tmp_path / "summary.md").read_text()

    # bob's and alice's accuracies differ, the message is the same: counted twice, not once each
    assert "AssertionError: accuracy # is below # (2x)" in markdown
    assert "shape (#, #), expected (#, #) (2x)" in markdown
    imports = markdown.split("## Code that could not be imported")[1].split("## Timeouts")[0]
    assert "| carol | 2 | add raised SyntaxError: invalid syntax (toy.py, line 36) |" in imports
    assert "| dave | 1 | add raised NameError: name 'np' is not defined |" in imports
    assert "alice" not in imports and "bob" not in imports
    timeouts = markdown.split("## Timeouts")[1].split("## Grading time")[0]
    assert "| alice | scale | scale: timed out after 10 s (the worker was stopped) |" in timeouts
    assert "| erin | (the whole grading) | grading took longer than 420 s and was stopped |" in timeouts
    assert "bob" not in timeouts and "carol" not in timeouts


def test_summary_says_when_nothing_timed_out_or_failed_to_import(tmp_path):
    from autograder.classroom.summary import write_summary

    write_summary(tmp_path, "toy", [summary_row("alice", ("add", "AssertionError: wrong"))], ["add"])
    markdown = (tmp_path / "summary.md").read_text()
    assert "Every graded submission could be imported." in markdown and "No call timed out." in markdown
