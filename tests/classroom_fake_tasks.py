"""Stand-in task functions for grade-all's executors (imported by the executors' child processes via PYTHONPATH).

Each takes the job spec like `autograder.classroom.grade_all.grade_task` and behaves as `spec["behaviour"]` says.
"""

import os
import signal
import time


def results_for(spec, started):
    tests = [{"name": name, "score": score, "max_score": max_score, "status": "passed" if score >= max_score
              else "failed", "output": "" if score >= max_score else f"{name} failed"}
             for name, score, max_score in spec.get("tests", [])]
    return {"score": sum(t["score"] for t in tests), "max_score": sum(t["max_score"] for t in tests),
            "tests": tests,
            "extra_data": {"pid": os.getpid(), "device": spec.get("device"), "started": started, "ended": time.time()}}


def fake_grade(spec):
    started = time.time()
    behaviour = spec.get("behaviour", "ok")
    time.sleep(spec.get("sleep", 0))
    if behaviour == "exit":
        os._exit(3)
    if behaviour == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if behaviour == "raise":
        raise ValueError("the fake grader broke")
    if behaviour == "hang":
        time.sleep(3600)
    if behaviour == "hang-with-helper":  # like the engine: a helper process in a session of its own
        import subprocess
        import sys

        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
        with open(spec["pid_file"], "w") as handle:
            handle.write(str(helper.pid))
        time.sleep(3600)
    if behaviour == "not-a-dict":
        return ["not", "results"]
    return results_for(spec, started)
