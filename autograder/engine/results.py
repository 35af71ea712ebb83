"""Scores from the harness's event lines, in the Gradescope results.json schema, failing closed.

Every collected test starts at 0. It scores only with a `result` line saying it passed, and then
`points * fraction` (partial credit). A test the harness never reported (it crashed, hung or was killed) scores 0
with a message saying so. Extra credit follows Gradescope: the test's max_score is 0 and its score is added on
top, so the total may exceed max_score.

Everything that may come from the submission (messages, its printed output, file names in the intake summary,
timings a worker reported, the training curve its run reported) passes `safe_text` / `_safe_calls` / `safe_curve`
here, the one place every record is built from: results.json, the terminal table, the feedback reports, the
gradebook and the CSV all read these results. `score_text` is the one way a total is written for people.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from omniglot_data.training_curve import MAX_POINTS as MAX_CURVE_POINTS
from omniglot_data.training_curve import SERIES as CURVE_SERIES

NOT_REPORTED = "not graded: the grading harness stopped before reporting this test (counted as 0)"
# Terminal and document control: C0 controls but tab and newline (ESC, carriage return, backspace, ...), DEL, C1
# controls, and the Unicode bidirectional overrides and isolates (text that displays in another order than it reads).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT_CHARS = 64 * 1024  # per message or output: beyond it, the submission is only making records bigger


def safe_text(value, limit: int = MAX_TEXT_CHARS) -> str:
    """`value` as text that cannot drive a terminal or a document: control characters shown as escapes
    (`\\x1b`), at most `limit` characters (the rest counted)."""
    text = value if isinstance(value, str) else str(value)
    cut = ""
    if len(text) > limit:
        cut = f"\n[... {len(text) - limit} more characters not shown]"
        text = text[:limit]
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}" if ord(found.group()) < 0x100
                        else f"\\u{ord(found.group()):04x}", text) + cut


def _number(value) -> float | None:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else None


def _safe_calls(calls) -> list[dict]:
    """The harness's record of probe calls, reduced to what it measured itself (the probe's name, its clock) and
    the worker's own figure only when it is a plain finite number."""
    if not isinstance(calls, list):
        return []
    return [{"probe": safe_text(call.get("probe", ""), 200), "seconds": _number(call.get("seconds")),
             "cpu_seconds": _number(call.get("cpu_seconds")), "worker_seconds": _number(call.get("worker_seconds"))}
            for call in calls if isinstance(call, dict)]


def safe_curve(value, total_steps: int | None = None) -> tuple[dict | None, str | None]:
    """A training curve from the sandbox (`omniglot_data.training_curve`) as plain numbers, or (None, why not).

    Kept only when it is {"steps": [int], "loss": [...], "accuracy": [...]} with 1..MAX_CURVE_POINTS strictly
    increasing steps from 1 (up to `total_steps`), each value a finite number or None. The submission may have
    written any of it: a curve is only ever drawn, never scored, and one that is not what a probe sends is
    dropped whole rather than repaired."""
    if not isinstance(value, dict) or set(value) != {"steps", *CURVE_SERIES}:
        return None, f"it is not a map of exactly steps, {', '.join(CURVE_SERIES)}"
    steps = value["steps"]
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_CURVE_POINTS:
        return None, f"it does not have 1 to {MAX_CURVE_POINTS} points"
    if any(type(step) is not int for step in steps):
        return None, "its steps are not whole numbers"
    if steps[0] < 1 or any(later <= earlier for earlier, later in zip(steps, steps[1:])):
        return None, "its steps do not increase from 1"
    if total_steps is not None and steps[-1] > total_steps:
        return None, f"its steps go past the {total_steps} steps trained"
    curve = {"steps": list(steps)}
    for name in CURVE_SERIES:
        values = value[name]
        if not isinstance(values, list) or len(values) != len(steps):
            return None, f"its {name} is not one value per step"
        if any(item is not None and _number(item) is None for item in values):
            return None, f"its {name} holds something other than finite numbers"
        curve[name] = [None if item is None else float(item) for item in values]
    return curve, None


def _safe_training_curve(record) -> dict | None:
    """A test's training curve as the harness recorded it (`safe_curve` plus the grader's own numbers: the bar's
    threshold and floor, the accuracy it measured), checked again here where every record is built."""
    if not isinstance(record, dict):
        return None
    curve, _ = safe_curve({key: record.get(key) for key in ("steps", *CURVE_SERIES)})
    if curve is None:
        return None
    return {**curve, **{key: _number(record.get(key)) for key in ("threshold", "floor", "measured")}}


def score_parts(tests: list[dict]) -> tuple[float, float, float, bool]:
    """(points, maximum, extra credit, whether any test is extra credit) of some tests of a results dict."""
    points = maximum = extra = 0.0
    has_extra = False
    for test in tests:
        if test.get("extra_data", {}).get("extra_credit"):
            extra, has_extra = extra + test["score"], True
        else:
            points, maximum = points + test["score"], maximum + test["max_score"]
    return _round(points), _round(maximum), _round(extra), has_extra


def score_text(tests: list[dict]) -> str:
    """A total as people read it: "80 / 80 + 10 extra credit" (Gradescope's `score` folds the extra credit in and
    may pass the maximum; written that way, "90 / 80" reads as a mistake). "80 / 80" without extra-credit tests."""
    return total_text(*score_parts(tests))


def total_text(points: float, maximum: float, extra: float = 0.0, has_extra: bool = False) -> str:
    """"80 / 80 + 10 extra credit" from its parts; the one wording of a total (results, feedback, exports)."""
    text = f"{_round(points):g} / {_round(maximum):g}"
    return f"{text} + {_round(extra):g} extra credit" if has_extra or extra else text


def score_line(tests: list[dict], withheld: int = 0) -> str:
    """"Score: 80 / 80 + 10 extra credit", saying how many more tests are not shown (their points not counted)."""
    line = f"Score: {score_text(tests)}"
    if withheld:
        line += f" ({withheld} more test{'s' if withheld != 1 else ''} not shown yet)"
    return line


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
            grader_errors.append(f"{entry['name']}: {safe_text(result.get('message', ''))}")
        message = safe_text((result or {}).get("message") or ("" if result else NOT_REPORTED))
        explanation = safe_text((result or {}).get("explanation") or "")
        if explanation and explanation not in message:  # a failed accuracy test's message is its explanation
            message = f"{explanation}\n{message}".strip()
        output = safe_text((result or {}).get("output") or "")
        text = message
        if output.strip():
            text = f"{message}\n\n--- output of your code ---\n{output}".lstrip()
        if passed and fraction < 1:
            text = f"partial credit: {fraction:.0%} of {points:g} points\n{text}".rstrip()
        curve = _safe_training_curve((result or {}).get("training_curve"))
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
                           "calls": _safe_calls((result or {}).get("calls", [])),
                           **({"training_curve": curve} if curve is not None else {})},
        })

    notes = []
    if intake_summary:
        notes.append(safe_text(intake_summary))
    if grader_errors:
        notes.append("GRADER ERROR (please tell the course staff): " + "\n".join(grader_errors))
    if extra_data.get("sandbox") == "insecure":
        notes.append("WARNING: graded WITHOUT the sandbox (--insecure-no-sandbox).")
    shown = [test for test in tests if test["visibility"] == "visible"]  # what every student sees at once
    total = [score_line(shown, len(tests) - len(shown))] if tests else []  # nothing graded: no total to read
    return {
        "score": _round(sum(t["score"] for t in tests)),
        "max_score": _round(sum(t["max_score"] for t in tests)),
        "execution_time": _round(execution_time),
        "output": "\n\n".join(total + notes),  # Gradescope shows it above the tests
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {**extra_data, **({"rejected": safe_text(extra_data["rejected"])}
                                        if extra_data.get("rejected") is not None else {}),
                       "grader_errors": grader_errors, "notes": notes},
    }
