"""`python -m autograder COMMAND ...`: one entry point, each command in its own module.

Only the chosen command's module is imported, so `grade` never pays for nbgrader's import and
`--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "demo": ("autograder.demo", "the main job: data summary, release status, grade reference and blank starter"),
    "release": ("autograder.release.build", "generate hw1/ and hw2/ from autograder/solutions (or --check them)"),
    "grade": ("autograder.engine.grade", "grade one submission (folder or zip) in the sandbox"),
    "grade-all": ("autograder.classroom.grade_all", "grade a whole class into a gradebook, CSV and feedback files"),
    "gradescope": ("autograder.classroom.gradescope", "build a Gradescope autograder bundle"),
    "similarity": ("autograder.classroom.similarity", "an HTML report of the submissions that share too much code"),
    "calibrate": ("autograder.scoring.calibrate", "train the reference under a profile budget and write thresholds"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m autograder COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`python -m autograder COMMAND --help` describes each command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"autograder: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m autograder {command}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
