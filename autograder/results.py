"""Scores from the harness's event lines, in the Gradescope results.json schema, failing closed.

Every collected test starts at 0. It scores only with a `result` line saying it passed, and then
`points * fraction` (partial credit). A test the harness never reported (it crashed, hung or was killed) scores 0
with a message saying so. Extra credit follows Gradescope: the test's max_score is 0 and its score is added on
top, so the total may exceed max_score.
"""

from __future__ import annotations

import json
from pathlib import Path

NOT_REPORTED = "not graded: the grading harness stopped before reporting this test (counted as 0)"


def read_events(path: Path) -> list[dict]:
    """The harness's JSON lines; a torn last line (harness killed mid-write) is dropped."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _round(value: float) -> float:
    return round(value, 4)


def build_results(events: list[dict], *, harness_problem: str | None, intake_summary: str,
                  extra_data: dict, execution_time: float) -> dict:
    collected = next((e["tests"] for e in events if e.get("event") == "collected"), None)
    collect_errors = [e for e in events if e.get("event") == "collect_error"]
    reported = {e["id"]: e for e in events if e.get("event") == "result"}
    finished = any(e.get("event") == "finished" for e in events)

    grader_errors = []
    if harness_problem:
        grader_errors.append(harness_problem)
    if collected is None:
        grader_errors.append("the grader's tests could not be collected")
    for error in collect_errors:
        grader_errors.append(f"collection error in {error.get('where') or 'the graders folder'}: "
                             f"{error.get('message', '')}")
    if collected is not None and not finished and not harness_problem:
        grader_errors.append("the grading harness did not finish")

    tests = []
    for entry in collected or []:
        points = float(entry["points"])
        extra_credit = bool(entry["extra_credit"])
        result = reported.get(entry["id"])
        passed = bool(result and result.get("passed") is True)
        fraction = float(result.get("fraction", 0.0)) if passed else 0.0
        fraction = min(max(fraction, 0.0), 1.0)
        if result and result.get("grader_error"):
            grader_errors.append(f"{entry['name']}: {result.get('message', '')}")
        message = (result or {}).get("message") or ("" if result else NOT_REPORTED)
        output = (result or {}).get("output") or ""
        text = message
        if output.strip():
            text = f"{message}\n\n--- output of your code ---\n{output}".lstrip()
        if passed and fraction < 1:
            text = f"partial credit: {fraction:.0%} of {points:g} points\n{text}".rstrip()
        tests.append({
            "name": entry["name"],
            "score": _round(points * fraction),
            "max_score": 0.0 if extra_credit else points,
            "status": "passed" if passed else "failed",
            "output": text,
            "visibility": entry["visibility"],
            "extra_data": {"id": entry["id"], "extra_credit": extra_credit, "points": points,
                           "sandbox": extra_data.get("sandbox"),
                           "seconds": _round(float((result or {}).get("seconds", 0.0))),
                           "calls": (result or {}).get("calls", [])},
        })

    output = []
    if intake_summary:
        output.append(intake_summary)
    if grader_errors:
        output.append("GRADER ERROR (please tell the course staff): " + "\n".join(grader_errors))
    if extra_data.get("sandbox") == "insecure":
        output.append("WARNING: graded WITHOUT the sandbox (--insecure-no-sandbox).")
    return {
        "score": _round(sum(t["score"] for t in tests)),
        "max_score": _round(sum(t["max_score"] for t in tests)),
        "execution_time": _round(execution_time),
        "output": "\n\n".join(output),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {**extra_data, "grader_errors": grader_errors},
    }
