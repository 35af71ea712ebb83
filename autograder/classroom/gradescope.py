"""`python -m autograder gradescope hw1 -o hw1_autograder.zip`: a Gradescope autograder bundle.

The zip (Gradescope unpacks it into /autograder/source) holds

    setup.sh          Gradescope runs it once, as root, to build the image: bubblewrap, a Python >= 3.11 venv with the
                      kit's pinned packages (torch from the CPU wheel index), the Omniglot data; then makes source/
                      root-only
    run_autograder    runs per submission: copies /autograder/submission to a root-only folder and runs
                      `python -m autograder grade <graders> <copy> --json /autograder/results/results.json`
    bundle.env        the assignment's settings for both scripts (profile, sandbox policy, torch requirement)
    requirements.txt  the kit's other runtime packages, pinned to the versions installed where the bundle was built
    kit/              the engine (`autograder` package without any homework's graders or solutions),
                      `omniglot_data`, data_download.sh
    omniglot/         with --include-data: the two official Omniglot archives, which setup.sh builds the data from
                      (data_download.sh --mirror), so the image builds with no internet but the package indexes
    assignment/       graders/ (tests, probes, assignment.toml), solution/ (the reference files only),
                      release/ (the provided files only)

Sandbox policy: `auto` (default) grades inside bubblewrap when the container allows it, and otherwise with the
engine's --insecure-no-sandbox mode, which on Gradescope (root) still runs the student's code as an unprivileged
uid with rlimits and stamps the results with a warning; `bwrap` refuses to grade without bubblewrap (the student
then sees a "could not grade" result). Either way only the harness writes results.json.

`python -m autograder.classroom.gradescope sandbox-flag|record-sandbox-fallback|failure-results ...` are the helpers
run_autograder calls in the container. When the `auto` policy falls back, run_autograder prints why on its stdout
(shown to instructors only) and `record-sandbox-fallback` adds it to results.json as extra_data["sandbox_fallback"].
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder import PACKAGE_DIR, REPO_ROOT

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

TEMPLATES = PACKAGE_DIR / "templates" / "gradescope"
SANDBOX_POLICIES = ("auto", "bwrap")
SANDBOX_FALLBACK_KEY = "sandbox_fallback"  # results.json extra_data: why bubblewrap was not used (auto policy)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Parts of the autograder package a bundle never carries: every homework's graders and solutions (the bundle adds
# its own assignment's under assignment/) and the release templates.
_ENGINE_EXCLUDED = ("graders", "solutions", "templates")
BUNDLED_ARCHIVES_DIR = "omniglot"  # setup.sh: data_download.sh --mirror source/omniglot
_SKIPPED = ("__pycache__", ".pytest_cache")
_EXECUTABLE = 0o755
_REGULAR = 0o644
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same kit gives the same bundle, byte for byte


class BundleError(Exception):
    """The bundle cannot be built (named file missing, bad option)."""


@dataclass(frozen=True)
class BundleEntry:
    name: str  # path inside the zip
    data: bytes
    mode: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment", help="hw1, hw2, or a graders folder holding an assignment.toml")
    parser.add_argument("-o", "--output", type=Path, help="the zip to write (default: ASSIGNMENT_autograder.zip)")
    parser.add_argument("--profile", choices=("cpu", "gpu"), default="cpu",
                        help="grading profile (default cpu: Gradescope has no GPUs)")
    parser.add_argument("--sandbox", choices=SANDBOX_POLICIES, default="auto",
                        help="auto: bubblewrap when the container allows it, else an unprivileged uid without "
                             "namespaces (results say so); bwrap: refuse to grade without bubblewrap")
    parser.add_argument("--torch-index-url", default=TORCH_CPU_INDEX,
                        help=f"where setup.sh gets the pinned torch wheel (default: {TORCH_CPU_INDEX})")
    parser.add_argument("--without-data", action="store_true",
                        help="do not build the Omniglot data in setup.sh (for graders that never read it)")
    parser.add_argument("--include-data", action="store_true",
                        help="put the two Omniglot archives into the bundle, so setup.sh builds the data without "
                             "downloading them (from --mirror, else $OMNIGLOT_MIRROR, else the kit's "
                             "data/downloads/)")
    parser.add_argument("--mirror", type=Path, metavar="DIR",
                        help="with --include-data: the folder holding images_background.zip and "
                             "images_evaluation.zip")
    parser.add_argument("--solutions-dir", type=Path, help="reference files (default: from assignment.toml)")
    parser.add_argument("--release-dir", type=Path, help="the student release (default: from assignment.toml)")


def run(args: argparse.Namespace) -> int:
    from autograder.assignment import AssignmentError, load_assignment

    try:
        if args.include_data and args.without_data:
            raise BundleError("--include-data and --without-data contradict each other; pick one")
        if args.mirror is not None and not args.include_data:
            raise BundleError("--mirror only says where --include-data takes the Omniglot archives from; "
                              "add --include-data")
        assignment = load_assignment(args.assignment, args.solutions_dir, args.release_dir)
        archives = omniglot_archives(args.mirror) if args.include_data else None
        entries = bundle_entries(assignment, profile=args.profile, sandbox_policy=args.sandbox,
                                 torch_index_url=args.torch_index_url, with_data=not args.without_data,
                                 omniglot_archives=archives)
    except (AssignmentError, BundleError) as exc:
        print(f"gradescope: {exc}", file=sys.stderr)
        return 2
    output = args.output or Path(f"{assignment.name}_autograder.zip")
    write_zip(output, entries)
    print(describe(output, entries))
    return 0


def bundle_entries(assignment: Any, *, profile: str = "cpu", sandbox_policy: str = "auto",
                   torch_index_url: str = TORCH_CPU_INDEX, with_data: bool = True,
                   omniglot_archives: list[Path] | None = None) -> list[BundleEntry]:
    """Everything the bundle holds, sorted by name. `omniglot_archives` (see `omniglot_archives()`) go into the
    bundle for setup.sh to build the data from, instead of downloading them."""
    if sandbox_policy not in SANDBOX_POLICIES:
        raise BundleError(f"unknown sandbox policy {sandbox_policy!r}; expected one of {SANDBOX_POLICIES}")
    if omniglot_archives is not None and not with_data:
        raise BundleError("Omniglot archives were given for a bundle built without data")
    assignment.profile(profile)  # rejects an unknown profile
    torch, others = _requirements()
    entries = [_file("setup.sh", TEMPLATES / "setup.sh", _EXECUTABLE),
               _file("run_autograder", TEMPLATES / "run_autograder", _EXECUTABLE)]
    settings = {"ASSIGNMENT": assignment.name, "PROFILE": profile, "SANDBOX_POLICY": sandbox_policy,
                "TORCH_REQUIREMENT": torch, "TORCH_INDEX_URL": torch_index_url, "NEEDS_OMNIGLOT": str(int(with_data)),
                "OMNIGLOT_BUNDLED": str(int(omniglot_archives is not None))}
    entries.append(BundleEntry("bundle.env", "".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items()).encode(),
                               _REGULAR))
    entries.append(BundleEntry("requirements.txt", ("\n".join(others) + "\n").encode(), _REGULAR))
    entries += _tree("kit/autograder", PACKAGE_DIR, exclude_top=_ENGINE_EXCLUDED)
    entries += _tree("kit/omniglot_data", REPO_ROOT / "omniglot_data")
    entries.append(_file("kit/data_download.sh", REPO_ROOT / "data_download.sh", _EXECUTABLE))
    entries += [_file(f"{BUNDLED_ARCHIVES_DIR}/{path.name}", path) for path in omniglot_archives or ()]
    entries += _tree("assignment/graders", assignment.graders_dir)
    entries += [_file(f"assignment/solution/{name}", assignment.solutions_dir / name)
                for name in assignment.student_files]
    entries += [_file(f"assignment/release/{name}", path) for name, path in assignment.provided_sources().items()]
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise BundleError("two files would have the same name in the bundle")
    return sorted(entries, key=lambda entry: entry.name)


def omniglot_archives(mirror: Path | None = None) -> list[Path]:
    """The two official Omniglot archives for --include-data, checked the way setup.sh's build will check them (md5
    against upstream, else the content digest), so that a bad archive fails here rather than in Gradescope.

    Taken from `mirror`, else $OMNIGLOT_MIRROR, else `<data dir>/downloads` (where data_download.sh keeps what it
    downloaded)."""
    from omniglot_data.archives import ARCHIVE_MD5, ARCHIVE_NAMES, file_md5, mirror_archives, read_archives
    from omniglot_data.errors import DataError
    from omniglot_data.prepare import DOWNLOADS_NAME
    from omniglot_data.store import data_dir

    folder = mirror or (Path(os.environ["OMNIGLOT_MIRROR"]) if os.environ.get("OMNIGLOT_MIRROR") else None)
    if folder is None:
        folder = data_dir() / DOWNLOADS_NAME
        if not all((folder / name).is_file() for name in ARCHIVE_NAMES):
            raise BundleError(f"--include-data: no Omniglot archives in {folder} (where data_download.sh keeps what it "
                              f"downloads); pass --mirror DIR holding {' and '.join(ARCHIVE_NAMES)}, or set "
                              "OMNIGLOT_MIRROR")
    try:
        archives = mirror_archives(folder.expanduser().resolve())
        if any(file_md5(path) != ARCHIVE_MD5[path.name] for path in archives):
            read_archives(archives)  # a repacked mirror: its content must still be the official images
    except DataError as exc:
        raise BundleError(f"--include-data: {exc}") from None
    return archives


def _requirements() -> tuple[str, list[str]]:
    """(the torch requirement, every other runtime requirement pinned) from the kit's pyproject.toml."""
    from packaging.requirements import InvalidRequirement, Requirement

    pyproject = REPO_ROOT / "pyproject.toml"
    try:
        dependencies = [Requirement(d) for d in tomllib.loads(pyproject.read_text())["project"]["dependencies"]]
    except (OSError, KeyError, tomllib.TOMLDecodeError, InvalidRequirement) as exc:
        raise BundleError(f"cannot read [project] dependencies from {pyproject}: {exc}") from None
    torch = [r for r in dependencies if r.name.lower() == "torch"]
    if len(torch) != 1 or not (len(torch[0].specifier) == 1 and next(iter(torch[0].specifier)).operator == "=="):
        raise BundleError(f"{pyproject} must pin torch exactly once (torch==X.Y.Z); found "
                          f"{[str(r) for r in torch] or 'none'}")
    return str(torch[0]), [_pinned(r, pyproject) for r in dependencies if r not in torch]


def _pinned(requirement: Any, pyproject: Path) -> str:
    """`numpy>=1.24` -> `numpy==<the version installed here>`, so the container grades with the versions the graders
    were developed and calibrated with. Requirements this Python does not need (markers) stay as written."""
    from importlib import metadata

    if requirement.marker is not None and not requirement.marker.evaluate():
        return str(requirement)
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        raise BundleError(f"{requirement.name} (required by {pyproject}) is not installed in this environment; "
                          "build the bundle from the kit's virtualenv") from None
    if not requirement.specifier.contains(version, prereleases=True):
        raise BundleError(f"installed {requirement.name} {version} does not satisfy {requirement} from {pyproject}")
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}=={version}{marker}"


def _file(name: str, path: Path, mode: int = _REGULAR) -> BundleEntry:
    try:
        return BundleEntry(name, path.read_bytes(), mode)
    except OSError as exc:
        raise BundleError(f"cannot read {path} for the bundle: {exc.strerror}") from None


def _tree(prefix: str, root: Path, exclude_top: tuple[str, ...] = ()) -> list[BundleEntry]:
    if not root.is_dir():
        raise BundleError(f"{root} is not a folder")
    entries = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in exclude_top or any(part in _SKIPPED for part in relative.parts) \
                or path.suffix == ".pyc" or not path.is_file():
            continue
        entries.append(_file(f"{prefix}/{relative.as_posix()}", path,
                             _EXECUTABLE if path.stat().st_mode & 0o111 else _REGULAR))
    return entries


def write_zip(output: Path, entries: list[BundleEntry]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=_ZIP_TIME)
            info.external_attr = (0o100000 | entry.mode) << 16  # regular file + permissions, kept by unzip
            # archives inside (the Omniglot zips) are compressed already: deflating them again only costs time
            info.compress_type = zipfile.ZIP_STORED if entry.name.endswith(".zip") else zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.data)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(output)


def describe(output: Path, entries: list[BundleEntry]) -> str:
    """What went into the bundle: size on disk, and file count and bytes per part."""
    parts: dict[str, list[int]] = {}
    for entry in entries:
        top = "/".join(entry.name.split("/")[:2]) if entry.name.startswith(("kit/", "assignment/")) \
            else entry.name.split("/")[0]
        count, size = parts.setdefault(top, [0, 0])
        parts[top] = [count + 1, size + len(entry.data)]
    lines = [f"wrote {output} ({output.stat().st_size / 1024:.1f} KiB zipped, {len(entries)} files, "
             f"{sum(len(e.data) for e in entries) / 1024:.1f} KiB unpacked)"]
    lines += [f"  {name:<28} {count:>4} files {size / 1024:>9.1f} KiB" for name, (count, size) in parts.items()]
    return "\n".join(lines)


# -- helpers run inside the Gradescope container by run_autograder ----------------------------------------------


def _sandbox_flag(policy: str) -> int:
    """Print the `grade` flag the sandbox policy calls for here (nothing, or --insecure-no-sandbox)."""
    from autograder.engine.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem is None:
        return 0
    if policy == "auto":
        # The whole reason (bwrap's own words and the hint): run_autograder shows it to the instructors only.
        print("run_autograder: bubblewrap cannot run in this container; grading with an unprivileged uid instead "
              f"(--insecure-no-sandbox). Why:\n{problem.strip()}", file=sys.stderr)
        print("--insecure-no-sandbox")
        return 0
    print(f"this container cannot run the grading sandbox (bubblewrap): {problem.splitlines()[0]}", file=sys.stderr)
    return 3


def _failure_results(path: Path, reason: str) -> int:
    results = {
        "score": 0.0,
        "output": "The autograder could not grade this submission. This is not about your code; please tell the "
                  f"course staff.\n\n{reason.strip()}",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"grader_errors": [reason.strip()]},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    return 0


def _record_sandbox_fallback(results_path: Path, reason_path: Path) -> int:
    """Add why the sandbox fell back (the `sandbox-flag auto` message) to the harness's results.json, in
    extra_data, which Gradescope never shows students."""
    try:
        results = json.loads(results_path.read_text())
        reason = reason_path.read_text().strip()
    except (OSError, ValueError) as exc:
        print(f"record-sandbox-fallback: cannot read {exc.filename or results_path}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(results, dict) or not isinstance(results.get("extra_data", {}), dict):
        print(f"record-sandbox-fallback: {results_path} is not a results.json object with an extra_data object",
              file=sys.stderr)
        return 2
    results.setdefault("extra_data", {})[SANDBOX_FALLBACK_KEY] = reason
    results_path.write_text(json.dumps(results, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.classroom.gradescope",
                                     description="helpers that run_autograder calls inside the Gradescope container")
    commands = parser.add_subparsers(dest="command", required=True)
    flag = commands.add_parser("sandbox-flag", help="print the grade flag the sandbox policy calls for here")
    flag.add_argument("policy", choices=SANDBOX_POLICIES)
    failure = commands.add_parser("failure-results", help="write a results.json saying grading failed")
    failure.add_argument("path", type=Path)
    failure.add_argument("reason")
    fallback = commands.add_parser("record-sandbox-fallback",
                                   help="add why grading ran without bubblewrap to results.json (instructors only)")
    fallback.add_argument("results", type=Path)
    fallback.add_argument("reason_file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "sandbox-flag":
        return _sandbox_flag(args.policy)
    if args.command == "record-sandbox-fallback":
        return _record_sandbox_fallback(args.results, args.reason_file)
    return _failure_results(args.path, args.reason)


if __name__ == "__main__":
    raise SystemExit(main())
