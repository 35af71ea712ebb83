"""An assignment's grading description, read from `assignment.toml` in its graders folder.

    name = "hw1"
    student_files = ["load_data.py", "hw1.py"]   # the only files taken from a submission
    provided_files = []                          # taken from the official release, never from a submission
    probes = "probes.py"                         # shipped into the worker, next to the files above
    preload = ["torch", "numpy"]                 # imported once per grading run by the sandbox's fork server
    timeout = 60                                 # seconds per student.run call (@pytest.mark.timeout overrides)
    total_timeout = 1800                         # seconds for the whole grading run

    [sandbox]                                    # all optional; defaults in SandboxLimits
    memory_mb = 6144

    [profiles.cpu]                               # free-form budgets that graders read through the `profile` fixture
    train_steps = 200

    [written]                                    # optional: hand-graded questions and their points (the handout's)
    Q1 = 6

    [late]                                       # optional: late policy, applied by grade-all to each total
    due = 2026-10-01T23:59:00-07:00              # a TOML date-time (or ISO string) with its UTC offset
    grace_minutes = 15                           # this late still counts as on time
    penalty_per_day = 0.1                        # fraction of the total lost per started day late
    max_days = 3                                 # later than this: 0 points

See docs/writing-graders.md for the full reference.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from autograder import GRADERS_DIR, REPO_ROOT, SOLUTIONS_DIR

CONFIG_NAME = "assignment.toml"
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
PROFILES = ("cpu", "gpu")
# Names the worker's directory already uses; an assignment file with one of these names would shadow the machinery.
RESERVED_NAMES = frozenset({"_autograder_worker.py", "_autograder_wire.py", "omniglot_data", "sitecustomize.py",
                            "usercustomize.py", "conftest.py"})


class AssignmentError(Exception):
    """An assignment.toml (or the folders it names) that cannot be used for grading."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one worker. Every key may be set in assignment.toml's [sandbox] table."""

    memory_mb: int = 4096  # address space (RLIMIT_AS), CPU runs only: CUDA maps far more virtual memory than it uses
    max_processes: int = 64  # processes + threads of the worker's uid (RLIMIT_NPROC)
    max_file_mb: int = 64  # largest file the worker may write (RLIMIT_FSIZE)
    tmpfs_mb: int = 256  # size of each of the worker's writable folders (its directory, /tmp, /dev/shm)
    max_files: int = 20000  # files and folders in each of them (an inode cap, where the grader runs as root)
    output_kb: int = 64  # captured stdout+stderr kept per test
    reply_mb: int = 256  # largest reply frame accepted from the worker
    threads: int = 1  # OMP/MKL threads in the worker
    cpu_cores: float = 2.0  # CPU time a call may use, in cores' worth of its timeout (needs cgroups to count it)
    harness_memory_mb: int = 8192  # address space of the trusted harness (CPU runs): what workers send it is bounded

    @property
    def sandbox_memory_mb(self) -> int:
        """Memory of a whole sandbox, all its processes and its writable folders together (its cgroup's limit)."""
        return self.memory_mb + 3 * self.tmpfs_mb

    @classmethod
    def from_table(cls, table: dict, source: Path) -> "SandboxLimits":
        known = {f.name for f in fields(cls)}
        unknown = set(table) - known
        if unknown:
            raise AssignmentError(f"{source}: unknown [sandbox] keys {sorted(unknown)}; known keys are {sorted(known)}")
        for key, value in table.items():
            number_types = (int, float) if key == "cpu_cores" else (int,)
            if type(value) not in number_types or value <= 0:
                kind = "number" if key == "cpu_cores" else "integer"
                raise AssignmentError(f"{source}: [sandbox] {key} must be a positive {kind}, got {value!r}")
        return cls(**table)


@dataclass(frozen=True)
class LatePolicy:
    """`[late]` of assignment.toml: every started day past the due date (once past the grace period) costs
    `penalty_per_day` of the total; more than `max_days` days late scores 0."""

    due: dt.datetime  # timezone-aware
    grace_minutes: float = 0.0
    penalty_per_day: float = 0.0
    max_days: float | None = None

    def days_late(self, submitted_at: dt.datetime) -> int:
        """Started days past the due date; 0 on time or within the grace period."""
        late_s = (submitted_at - self.due).total_seconds()
        if late_s <= self.grace_minutes * 60:
            return 0
        return math.ceil(late_s / 86400)

    def penalty_fraction(self, submitted_at: dt.datetime) -> float:
        days = self.days_late(submitted_at)
        if days and self.max_days is not None and days > self.max_days:
            return 1.0
        return min(1.0, days * self.penalty_per_day)

    def to_json(self) -> dict:
        return {"due": self.due.isoformat(), "grace_minutes": self.grace_minutes,
                "penalty_per_day": self.penalty_per_day, "max_days": self.max_days}

    @classmethod
    def from_table(cls, table: Any, source: Path) -> "LatePolicy":
        where = f"{source}: [late]"
        if not isinstance(table, dict):
            raise AssignmentError(f"{where} must be a table")
        known = {"due", "grace_minutes", "penalty_per_day", "max_days"}
        if set(table) - known:
            raise AssignmentError(f"{where}: unknown keys {sorted(set(table) - known)}; known keys are {sorted(known)}")
        due = aware_datetime(table.get("due"))
        if due is None:
            raise AssignmentError(f"{where} due must be a date and time with its UTC offset, like "
                                  f"2026-10-01T23:59:00-07:00 (got {table.get('due')!r})")
        numbers = {}
        for key in ("grace_minutes", "penalty_per_day", "max_days"):
            value = table.get(key)
            if value is None:
                continue
            if type(value) not in (int, float) or value < 0 or (key == "penalty_per_day" and value > 1):
                expected = "a fraction between 0 and 1" if key == "penalty_per_day" else "a number >= 0"
                raise AssignmentError(f"{where} {key} must be {expected}, got {value!r}")
            numbers[key] = float(value)
        return cls(due=due, **numbers)

    @classmethod
    def from_json(cls, data: dict) -> "LatePolicy":
        return cls(due=dt.datetime.fromisoformat(data["due"]), grace_minutes=data["grace_minutes"],
                   penalty_per_day=data["penalty_per_day"], max_days=data["max_days"])


def _written_table(table: Any, source: Path) -> dict[str, float]:
    """`[written]`: question id -> positive points, in the handout's order."""
    if not isinstance(table, dict):
        raise AssignmentError(f"{source}: [written] must be a table of question = points")
    for question, points in table.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", question) or type(points) not in (int, float) \
                or points <= 0:
            raise AssignmentError(f"{source}: [written] {question} = {points!r}: expected a question id (letters, "
                                  "digits, . _ -) and a positive number of points")
    return {question: float(points) for question, points in table.items()}


@dataclass(frozen=True)
class Assignment:
    name: str
    graders_dir: Path
    solutions_dir: Path  # reference files (the instructor's solution)
    release_dir: Path  # the official student release: the source of provided files
    student_files: tuple[str, ...]
    provided_files: tuple[str, ...]
    probes: str
    timeout: float
    total_timeout: float
    limits: SandboxLimits
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    preload: tuple[str, ...] = ()  # third-party modules the fork server imports before forking workers
    written: dict[str, float] = field(default_factory=dict)  # hand-graded questions -> points ([written])
    late: LatePolicy | None = None  # [late]

    @property
    def probes_path(self) -> Path:
        return self.graders_dir / self.probes

    def profile(self, name: str) -> dict[str, Any]:
        if name not in PROFILES:
            raise AssignmentError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
        return dict(self.profiles.get(name, {}))

    def reference_sources(self) -> dict[str, Path]:
        """Reference side: solution files plus provided files, by the name they get in the worker."""
        files = {name: self.solutions_dir / name for name in self.student_files}
        files.update(self.provided_sources())
        return files

    def provided_sources(self) -> dict[str, Path]:
        return {name: self.release_dir / name for name in self.provided_files}

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "graders_dir": str(self.graders_dir),
            "solutions_dir": str(self.solutions_dir),
            "release_dir": str(self.release_dir),
            "student_files": list(self.student_files),
            "provided_files": list(self.provided_files),
            "probes": self.probes,
            "timeout": self.timeout,
            "total_timeout": self.total_timeout,
            "limits": {f.name: getattr(self.limits, f.name) for f in fields(SandboxLimits)},
            "profiles": self.profiles,
            "preload": list(self.preload),
            "written": dict(self.written),
            "late": self.late.to_json() if self.late else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Assignment":
        return cls(
            name=data["name"],
            graders_dir=Path(data["graders_dir"]),
            solutions_dir=Path(data["solutions_dir"]),
            release_dir=Path(data["release_dir"]),
            student_files=tuple(data["student_files"]),
            provided_files=tuple(data["provided_files"]),
            probes=data["probes"],
            timeout=float(data["timeout"]),
            total_timeout=float(data["total_timeout"]),
            limits=SandboxLimits(**data["limits"]),
            profiles=data["profiles"],
            preload=tuple(data.get("preload", ())),
            written=dict(data.get("written") or {}),
            late=LatePolicy.from_json(data["late"]) if data.get("late") else None,
        )


def _file_list(config: dict, key: str, source: Path) -> tuple[str, ...]:
    names = config.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise AssignmentError(f"{source}: {key} must be a list of file names")
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or len(path.parts) != 1 or not name.strip():
            raise AssignmentError(f"{source}: {key} entry {name!r} must be a plain file name (no folders)")
        if name in RESERVED_NAMES or name.endswith(".pth"):
            raise AssignmentError(f"{source}: {key} entry {name!r} is reserved for the grading machinery")
    if len(set(names)) != len(names):
        raise AssignmentError(f"{source}: {key} lists a file twice")
    return tuple(names)


def _module_list(config: dict, key: str, source: Path) -> tuple[str, ...]:
    names = config.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _MODULE_NAME.fullmatch(n) for n in names):
        raise AssignmentError(f"{source}: {key} must be a list of module names (e.g. [\"torch\", \"numpy\"]), "
                              f"got {names!r}")
    return tuple(names)


def _positive_number(config: dict, key: str, default: float, source: Path) -> float:
    value = config.get(key, default)
    if type(value) not in (int, float) or value <= 0:
        raise AssignmentError(f"{source}: {key} must be a positive number of seconds, got {value!r}")
    return float(value)


def load_assignment(
    name_or_graders_dir: str | Path,
    solutions_dir: str | Path | None = None,
    release_dir: str | Path | None = None,
) -> Assignment:
    """Read an assignment by name (`"hw1"` -> autograder/graders/hw1) or from a graders folder.

    The reference files come from `solutions_dir` (default: `[paths] solutions` in assignment.toml, relative to
    it, else autograder/solutions/<name>); provided files from `release_dir` (default: `[paths] release`, else
    <repo>/<name>).
    """
    name_or_path = str(name_or_graders_dir)
    # A bare name is an assignment name even when a folder of that name (the student release hw1/) is in the cwd.
    by_name = GRADERS_DIR / name_or_path
    if "/" not in name_or_path and (by_name / CONFIG_NAME).is_file():
        graders_dir = by_name
    else:
        graders_dir = Path(name_or_graders_dir)
    source = graders_dir / CONFIG_NAME
    if not source.is_file():
        raise AssignmentError(
            f"no {CONFIG_NAME} in {graders_dir}; give an assignment name (hw1, hw2) or a graders folder holding one"
        )
    try:
        config = tomllib.loads(source.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AssignmentError(f"{source}: not valid TOML: {exc}") from None
    known = {"name", "student_files", "provided_files", "probes", "timeout", "total_timeout", "sandbox", "profiles",
             "paths", "preload", "written", "late"}
    unknown = set(config) - known
    if unknown:
        raise AssignmentError(f"{source}: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise AssignmentError(f"{source}: `name` (a non-empty string) is required")
    student_files = _file_list(config, "student_files", source)
    if not student_files:
        raise AssignmentError(f"{source}: student_files must list at least one file")
    provided_files = _file_list(config, "provided_files", source)
    overlap = set(student_files) & set(provided_files)
    if overlap:
        raise AssignmentError(f"{source}: {sorted(overlap)} listed both as student and as provided files")
    probes = config.get("probes", "probes.py")
    if not isinstance(probes, str) or not probes.endswith(".py") or "/" in probes:
        raise AssignmentError(f"{source}: probes must be a .py file name in the graders folder, got {probes!r}")
    if probes in student_files or probes in provided_files or probes in RESERVED_NAMES:
        raise AssignmentError(f"{source}: probes module name {probes!r} clashes with an assignment file")
    if not (graders_dir / probes).is_file():
        raise AssignmentError(f"{source}: probes module {graders_dir / probes} does not exist")
    profiles = config.get("profiles", {})
    if not isinstance(profiles, dict) or set(profiles) - set(PROFILES):
        raise AssignmentError(f"{source}: [profiles] may only hold tables {PROFILES}")
    paths = config.get("paths", {})
    if not isinstance(paths, dict) or set(paths) - {"solutions", "release"}:
        raise AssignmentError(f"{source}: [paths] may only hold `solutions` and `release`")

    def folder(explicit, key: str, default: Path) -> Path:
        if explicit is not None:
            return Path(explicit).resolve()
        if key in paths:
            return (graders_dir / paths[key]).resolve()
        return default

    assignment = Assignment(
        name=name,
        graders_dir=graders_dir.resolve(),
        solutions_dir=folder(solutions_dir, "solutions", SOLUTIONS_DIR / name),
        release_dir=folder(release_dir, "release", REPO_ROOT / name),
        student_files=student_files,
        provided_files=provided_files,
        probes=probes,
        timeout=_positive_number(config, "timeout", 60, source),
        total_timeout=_positive_number(config, "total_timeout", 3600, source),
        limits=SandboxLimits.from_table(config.get("sandbox", {}), source),
        profiles={key: dict(value) for key, value in profiles.items()},
        preload=_module_list(config, "preload", source),
        written=_written_table(config.get("written", {}), source),
        late=LatePolicy.from_table(config["late"], source) if "late" in config else None,
    )
    missing = [str(path) for path in assignment.reference_sources().values() if not path.is_file()]
    if missing:
        raise AssignmentError(f"{source}: reference or provided files missing: {', '.join(missing)}")
    return assignment


def aware_datetime(value) -> dt.datetime | None:
    """`value` as a time with its UTC offset (a datetime, or ISO 8601 text such as 2026-10-01T23:59:00-07:00);
    None when it is neither or has no offset (a naive time would be read in whatever zone the grader runs in)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, dt.datetime) and value.tzinfo is not None else None
