"""Probe worker: runs grader probes against one assignment's files and answers over the wire.

This file is copied into the worker's directory (as `_autograder_worker.py`, next to `_autograder_wire.py`, the
probes module and the assignment files) and started as::

    python -I _autograder_worker.py --probes probes.py --requests FD --replies FD

It imports nothing from `autograder`; inside the sandbox the repository does not exist. Each request is
``{"op": "call", "probe": NAME, "inputs": {...}, "nonce": N}``; each reply is ``{"op": "reply", "ok": true,
"outputs": {...}, "nonce": N}`` or ``{"op": "reply", "ok": false, "error": {"type", "message", "traceback"},
"nonce": N}``, echoing the request's nonce. The worker exits when the request
pipe closes. Nothing here is trusted by the harness: a reply only ever carries data to be checked.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import traceback

# `python -I` leaves the script's folder off sys.path; the wire module and the assignment files live there.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _autograder_wire as wire  # noqa: E402

# Frames from these files are the grading machinery, not the student's code: left out of tracebacks.
_MACHINERY = ("_autograder_worker.py", "_autograder_wire.py")
_HERE = os.path.dirname(os.path.abspath(__file__))
_probes_file: str | None = None  # the probes module's file name, once loaded (its frames are machinery too)


_full_tracebacks = False  # --full-tracebacks (the trusted reference worker): every frame but the machinery's


def _student_traceback(exc: BaseException) -> str:
    """The traceback of the submission's own frames only (the files beside this worker but the machinery and the
    probes), named relative to the submission: no library frame and no path of the grading host."""
    if _full_tracebacks:
        frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
                  if os.path.basename(frame.filename) not in _MACHINERY]
        return "".join(["Traceback (most recent call last):\n", *traceback.format_list(frames),
                        *traceback.format_exception_only(type(exc), exc)])
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename)
        name = os.path.relpath(path, _HERE)
        if os.path.dirname(path) != _HERE or name in _MACHINERY or name == _probes_file:
            continue
        frame.filename = name
        frames.append(frame)
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines) if frames else "".join(lines)


def _error_reply(exc: BaseException) -> dict:
    try:
        message = str(exc)
    except BaseException:  # a student exception whose __str__ itself raises
        message = "<exception message could not be printed>"
    try:
        trace = _student_traceback(exc)
    except BaseException:
        trace = ""
    return {
        "op": "reply",
        "ok": False,
        "error": {"type": type(exc).__name__, "message": message[:20000], "traceback": trace[-20000:]},
    }


def _load_probes(path: str):
    global _probes_file
    _probes_file = os.path.basename(path)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _call(probes, request: dict) -> dict:
    name = request.get("probe")
    inputs = request.get("inputs")
    if not isinstance(name, str) or name.startswith("_") or not isinstance(inputs, dict):
        raise ValueError(f"malformed probe request {request!r}")
    probe = getattr(probes, name, None)
    if not callable(probe):
        raise AttributeError(f"the probes module has no probe named {name!r}")
    outputs = probe(**inputs)
    if not isinstance(outputs, dict):
        raise TypeError(f"probe {name!r} must return a dict, got {type(outputs).__name__}")
    return outputs


def serve(probes_path: str, requests_fd: int, replies_fd: int) -> None:
    probes = None
    while True:
        try:
            request = wire.read_message(requests_fd)
        except wire.WireClosed:
            return
        started = time.perf_counter()
        try:
            if probes is None:
                # Imported at the first call: a student module that fails to import fails that call, with its traceback.
                probes = _load_probes(probes_path)
            reply = {"op": "reply", "ok": True, "outputs": _call(probes, request)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from student code are failures too
            reply = _error_reply(exc)
        nonce = request.get("nonce") if isinstance(request, dict) else None
        reply["seconds"] = time.perf_counter() - started
        reply["nonce"] = nonce
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            frame = wire.encode(reply)
        except BaseException as exc:
            frame = wire.encode({**_error_reply(exc), "nonce": nonce})
        wire.write_frame(replies_fd, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--replies", type=int, required=True)
    parser.add_argument("--full-tracebacks", action="store_true")
    args = parser.parse_args()
    global _full_tracebacks
    _full_tracebacks = args.full_tracebacks
    wire.die_with_parent()
    serve(args.probes, args.requests, args.replies)


if __name__ == "__main__":
    main()
