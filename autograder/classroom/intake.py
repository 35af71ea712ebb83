"""Where grade-all's submissions come from: a folder per student, a Gradescope export, or a Canvas download.

- `folders`: SUBMISSIONS holds one folder or zip per student, named by student id.
- `gradescope`: the zip (or its unzipped folder) of Gradescope's "Export Submissions": `submission_metadata.yml`
  maps each `submission_<id>` folder to its `:submitters:` (`:name:`, `:sid:`, `:email:`), its `:created_at:` and
  the `:history:` of older submissions. The student id is the SID (the email where a student has none); a student
  named by two submissions keeps the one created last; a group submission counts for each member.
- `canvas`: the zip (or folder) of Canvas's "Download Submissions": files named
  `<loginname>[_LATE]_<userid>_<submissionid>_<original name>`, Canvas adding `-1`, `-2` to an original name the
  student had uploaded before (`hw1-1.py`). The student id is the Canvas user id; a student's files form one
  submission (for a name given twice, the upload with the larger id, i.e. the later one); `LATE` marks it late.
  Canvas puts no submission time in the download.

Exports are staged: each student's files (only the assignment's student files and zips, which the engine opens
later with its own checks) are copied into `STAGING/<student id>/`, so every grading reads a plain folder of one
student, and re-running on the same export gives the same content hashes (nothing is re-graded).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import stat
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from autograder.assignment import aware_datetime

# nbgrader's student ids are String(128); a conservative alphabet keeps ids safe as file names and CSV cells.
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
SOURCES = ("folders", "gradescope", "canvas")
GRADESCOPE_METADATA = "submission_metadata.yml"
_IGNORED_ENTRIES = {"__MACOSX"}
# <loginname>[_LATE]_<userid>_<submissionid>_<original file name>
# DOTALL: an original name with a newline is still the student's own file, not a reason to stop the class.
CANVAS_NAME = re.compile(r"(?P<login>[^_/]+)(?P<late>_LATE)?_(?P<user>\d+)_(?P<submission>\d+)_(?P<original>.+)",
                         re.DOTALL)
_CANVAS_REPEAT = re.compile(r"(?P<stem>.+)-\d+(?P<suffix>\.[^.]*)?")
_STAGING_MARKER = ".autograder-staging"
_MAX_METADATA_BYTES = 64 * 1024 * 1024
_MAX_STAGED_FILE_BYTES = 200 * 1024 * 1024  # a student's zip, copied as it is for the engine's own intake
_MAX_STAGED_STUDENT_BYTES = 400 * 1024 * 1024  # all of one student's staged files: no student fills the disk


class ClassroomError(Exception):
    """Bad input to grade-all (named in the message); nothing was graded."""


@dataclass(frozen=True)
class Submission:
    student_id: str
    path: Path
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    source: str = "folders"
    reference: str = ""  # where it came from: the export's submission folder, or the Canvas file names
    submitted_at: dt.datetime | None = None  # timezone-aware; None where the source does not say
    late: bool = False


# -- folders -----------------------------------------------------------------------------------------------------


def find_submissions(directory: Path) -> list[Submission]:
    """One Submission per student entry of `directory`; raise ClassroomError listing every unusable entry."""
    if not directory.is_dir():
        raise ClassroomError(f"submissions folder {directory} does not exist or is not a folder")
    submissions: dict[str, Submission] = {}
    problems = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or entry.name in _IGNORED_ENTRIES:
            continue
        if entry.is_dir():
            student_id = entry.name
        elif entry.is_file() and entry.suffix.lower() == ".zip":
            student_id = entry.name[: -len(".zip")]
        else:
            problems.append(f"{entry}: expected a folder or a .zip named by student id")
            continue
        if not STUDENT_ID.fullmatch(student_id):
            problems.append(f"{entry}: student id {student_id!r} must start with a letter or digit and use only "
                            f"letters, digits and . _ @ + - (at most 128 characters)")
        elif student_id in submissions:
            problems.append(f"{entry}: student {student_id} also has {submissions[student_id].path.name}; keep one")
        else:
            submissions[student_id] = Submission(student_id, entry)
    if problems:
        raise ClassroomError(f"{len(problems)} unusable entr{'y' if len(problems) == 1 else 'ies'} in {directory}:\n  "
                             + "\n  ".join(problems))
    return list(submissions.values())


# -- reading an export, zipped or not ----------------------------------------------------------------------------


class _Export:
    """The regular files of an export (a folder or a zip) by relative POSIX path, readable with a size cap.

    A zip's entry names pass the engine's own checks (no absolute paths, no `..`, no zip bombs); a folder is walked
    without following links. A single top folder (`assignment_123_export/`) is looked through.
    """

    def __init__(self, path: Path):
        from autograder.engine.submission import IntakeLimits, SubmissionRejected, _check_entry

        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._files: dict[str, Any] = {}
        self._refused: dict[str, str] = {}  # entry -> why it cannot be read (a zip bomb's ratio); raised on read
        if path.is_dir():
            for folder, subfolders, names in os.walk(path):  # never follows links
                subfolders[:] = [d for d in subfolders if d not in _IGNORED_ENTRIES]
                for name in names:
                    file = Path(folder, name)
                    if stat.S_ISREG(os.lstat(file).st_mode):
                        self._files[file.relative_to(path).as_posix()] = file
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
                # Names are checked here (an absolute or '..' name: the export is not what the service writes);
                # the compression ratio only when an entry is read: one student's over-compressible file (a zip
                # bomb, or a file of zeros that nobody grades) must not stop the class.
                max_ratio = IntakeLimits().max_ratio
                limits = IntakeLimits(max_file_bytes=_MAX_STAGED_FILE_BYTES, max_ratio=math.inf)
                for info in self._zip.infolist():
                    parts = _check_entry(info, limits)
                    if parts and info.compress_size and info.file_size / info.compress_size > max_ratio:
                        self._refused["/".join(parts)] = (f"expands {info.file_size / info.compress_size:.0f}x; "
                                                          f"entries compressed more than {max_ratio:.0f}x are "
                                                          "refused (zip bomb?)")
                    if parts and not any(part in _IGNORED_ENTRIES for part in parts) \
                            and not stat.S_ISLNK(info.external_attr >> 16):
                        self._files["/".join(parts)] = info
            except SubmissionRejected as exc:
                raise ClassroomError(f"{path}: {exc}") from None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ClassroomError(f"{path}: not a readable zip file ({exc})") from None
        else:
            raise ClassroomError(f"{path} does not exist")
        tops = {name.split("/", 1)[0] for name in self._files}
        if len(tops) == 1 and all("/" in name for name in self._files):  # one top folder: look through it
            top = tops.pop() + "/"
            self._files = {name[len(top):]: value for name, value in self._files.items()}
            self._refused = {name[len(top):]: why for name, why in self._refused.items()}

    def names(self) -> list[str]:
        return sorted(self._files)

    def read(self, name: str, limit: int) -> bytes:
        if name in self._refused:
            raise ClassroomError(f"{self.path}: {name}: {self._refused[name]}")
        entry = self._files[name]
        try:
            if self._zip is None:
                fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(fd, "rb") as stream:
                    data = stream.read(limit + 1)
            else:
                with self._zip.open(entry) as stream:
                    data = stream.read(limit + 1)
        except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, EOFError) as exc:
            raise ClassroomError(f"{self.path}: cannot read {name} ({exc})") from None
        if len(data) > limit:
            raise ClassroomError(f"{self.path}: {name} is larger than {limit} bytes")
        return data

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def detect_source(path: Path) -> str:
    """`gradescope` when the export holds submission_metadata.yml, `canvas` when every top-level file is named the
    Canvas way, else `folders` (a folder) or an error (a zip)."""
    export = _Export(path)
    try:
        names = export.names()
    finally:
        export.close()
    if GRADESCOPE_METADATA in names:
        return "gradescope"
    top_level = [name for name in names if "/" not in name and not name.startswith(".")]
    if top_level and all(CANVAS_NAME.fullmatch(name) for name in top_level):
        return "canvas"
    if path.is_dir():
        return "folders"
    raise ClassroomError(f"{path}: neither a Gradescope export (no {GRADESCOPE_METADATA}) nor a Canvas download "
                         "(files named <loginname>_<userid>_<submissionid>_<file>); give --source")


def read_submissions(path: Path, source: str, student_files: tuple[str, ...], staging: Path | None = None
                     ) -> list[Submission]:
    """The latest submission of every student in `path`; exports are staged into `staging` (see module doc)."""
    if source == "auto":
        source = detect_source(path)
    if source == "folders":
        return find_submissions(path)
    if source not in SOURCES:
        raise ClassroomError(f"unknown --source {source!r}; expected auto or one of {', '.join(SOURCES)}")
    staging = staging or path.parent / f"{path.name}.staged"
    export = _Export(path)
    try:
        reader: Callable[..., list[Submission]] = _gradescope if source == "gradescope" else _canvas
        return reader(export, student_files, _fresh_staging(staging))
    finally:
        export.close()


def _fresh_staging(staging: Path) -> Path:
    """Empty `staging`, which must be new or a staging folder made before (it holds our marker file)."""
    if staging.exists():
        if not (staging / _STAGING_MARKER).is_file():
            raise ClassroomError(f"staging folder {staging} exists and was not made by grade-all; remove it or give "
                                 "another --staging-dir")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / _STAGING_MARKER).write_text("grade-all stages the students' files of an export here; it empties this "
                                           "folder on each run\n")
    return staging


def _wanted(name: str, student_files: tuple[str, ...]) -> bool:
    """Files the engine will look at: the assignment's student files and zips (which it opens itself)."""
    base = PurePosixPath(name).name
    return base in student_files or base.lower().endswith(".zip")


# -- Gradescope --------------------------------------------------------------------------------------------------


def _gradescope(export: _Export, student_files: tuple[str, ...], staging: Path) -> list[Submission]:
    import yaml

    where = f"{export.path}: {GRADESCOPE_METADATA}"
    try:
        metadata = yaml.safe_load(export.read(GRADESCOPE_METADATA, _MAX_METADATA_BYTES))
    except yaml.YAMLError as exc:
        raise ClassroomError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(metadata, dict):
        raise ClassroomError(f"{where}: expected a mapping of submission folders (submission_<id>:) to their "
                             f"metadata, got {type(metadata).__name__}")
    names = export.names()
    latest: dict[str, tuple[Submission, str]] = {}
    claims: dict[str, set[tuple[str, str]]] = {}  # student id -> (email, submission folder) of every submitter
    problems = []
    for folder, entry in metadata.items():
        folder = str(folder)
        if not isinstance(entry, dict) or not isinstance(entry.get(":submitters"), list) or not entry[":submitters"]:
            problems.append(f"{folder}: expected :submitters: with at least one :name:/:sid:/:email: entry")
            continue
        created = aware_datetime(entry.get(":created_at"))
        if created is None:
            problems.append(f"{folder}: :created_at: must be a time with its UTC offset, got {entry.get(':created_at')!r}")
            continue
        if not any(name.startswith(folder + "/") for name in names):
            problems.append(f"{folder}: listed in {GRADESCOPE_METADATA} but the export has no {folder}/ folder")
            continue
        for submitter in entry[":submitters"]:
            if not isinstance(submitter, dict):
                problems.append(f"{folder}: a submitter is not a :name:/:sid:/:email: mapping")
                continue
            student_id = str(submitter.get(":sid") or submitter.get(":email") or "").strip()
            if not STUDENT_ID.fullmatch(student_id):
                # A student can type their own SID: one crafted id must not stop the class's grading.
                _warn(f"{where}: {folder}: submitter {submitter.get(':name')!r} left out: no usable :sid: or "
                      f":email: (got {student_id!r}; letters, digits and . _ @ + - expected)")
                continue
            first, _, last = str(submitter.get(":name") or "").strip().rpartition(" ")
            submission = Submission(student_id, staging / student_id, first_name=first or last,
                                    last_name=last if first else "", email=str(submitter.get(":email") or ""),
                                    source="gradescope", reference=folder, submitted_at=created)
            claims.setdefault(student_id, set()).add((submission.email.strip().lower(), folder))
            previous = latest.get(student_id)
            if previous is None or created > previous[0].submitted_at:
                latest[student_id] = (submission, folder)
    if problems:
        raise ClassroomError(f"{where}: {len(problems)} unusable submission(s):\n  " + "\n  ".join(problems))
    for student_id, claimed in sorted(claims.items()):
        if len({email for email, _ in claimed}) > 1:
            # Two people with one SID (a student typed another's): grading either would put one's work in the
            # other's grade. Neither is graded (their scores stay empty in the exports); the instructor is told.
            latest.pop(student_id)
            _warn(f"{where}: SID {student_id} is given by different students ("
                  + "; ".join(f"{folder}: {email or 'no email'}" for email, folder in sorted(claimed))
                  + "); none of them is graded until the SIDs are corrected")
    by_folded: dict[str, list[str]] = {}
    for student_id in latest:
        by_folded.setdefault(student_id.casefold(), []).append(student_id)
    for same in sorted(ids for ids in by_folded.values() if len(ids) > 1):
        # `Bob1` and `bob1` are one staging folder on a case-insensitive disk (macOS, Windows): one student's
        # files would be graded as the other's. Treated as one SID given twice.
        for student_id in same:
            latest.pop(student_id)
        _warn(f"{where}: SIDs {', '.join(sorted(same))} differ only in case; none of them is graded until the "
              "SIDs are corrected")
    for student_id, (submission, folder) in latest.items():
        target = staging / student_id
        target.mkdir()
        left = _MAX_STAGED_STUDENT_BYTES
        for name in names:
            if name.startswith(folder + "/") and _wanted(name, student_files):
                left -= _stage(export, name, target / name[len(folder) + 1:], left)
    return [latest[student_id][0] for student_id in sorted(latest)]


# -- Canvas ------------------------------------------------------------------------------------------------------


def _canvas(export: _Export, student_files: tuple[str, ...], staging: Path) -> list[Submission]:
    # user id -> staged name -> (Canvas's submission id, file name, marked LATE)
    files: dict[str, dict[str, tuple[int, str, bool]]] = {}
    late_elsewhere: dict[str, bool] = {}  # LATE on a file that is not graded (the only mark of a PDF-only student)
    logins: dict[str, str] = {}
    problems = []
    for name in export.names():
        if "/" in name or name.startswith("."):
            continue  # Canvas puts every file at the top; anything nested is not a student's upload
        match = CANVAS_NAME.fullmatch(name)
        if match is None:
            problems.append(f"{name}: expected <loginname>[_LATE]_<userid>_<submissionid>_<file name>")
            continue
        original = _canvas_original(match["original"], student_files)
        user = match["user"]
        if logins.setdefault(user, match["login"]) != match["login"]:
            # Canvas writes one login per user id: another login here is a name built to pass as that user's file
            problems.append(f"{name}: user id {user} also has files of login {logins[user]!r}")
            continue
        chosen = files.setdefault(user, {})  # a student who uploaded only other files (a PDF) is still listed
        if not _wanted(original, student_files):
            late_elsewhere[user] = late_elsewhere.get(user, False) or bool(match["late"])
            continue
        number = int(match["submission"])
        if original not in chosen or number > chosen[original][0]:
            chosen[original] = (number, name, bool(match["late"]))
    if problems:
        raise ClassroomError(f"{export.path}: {len(problems)} file(s) not named the way Canvas names downloads:\n  "
                             + "\n  ".join(problems))
    submissions = []
    for user in sorted(files, key=int):
        target = staging / user
        target.mkdir()
        left = _MAX_STAGED_STUDENT_BYTES
        for original, (_, name, _) in sorted(files[user].items()):
            left -= _stage(export, name, target / original, left)
        used = sorted(files[user].values())
        # Canvas's login part is the sortable name run together ("smithalice"); a roster gives real names.
        submissions.append(Submission(user, target, last_name=logins[user], source="canvas",
                                      reference=", ".join(name for _, name, _ in used),
                                      late=any(is_late for _, _, is_late in used) if used
                                      else late_elsewhere.get(user, False)))
    return submissions


def _canvas_original(name: str, student_files: tuple[str, ...]) -> str:
    """The name the student gave the file: Canvas's `-1`, `-2` for a repeated upload removed where that gives one of
    the assignment's file names (`hw1-1.py` -> `hw1.py`), so a name of the student's own stays as it is."""
    match = _CANVAS_REPEAT.fullmatch(name)
    if match and name not in student_files:
        original = match["stem"] + (match["suffix"] or "")
        if original in student_files:
            return original
    return name


def _stage(export: _Export, name: str, target: Path, left: int) -> int:
    """Copy one file of the export (its name checked by `_Export`: no absolute path, no `..`) to `target`, within
    the `left` bytes of the student's staging budget; the bytes written. A file that cannot be read (too large, a
    zip bomb, corrupt) is left out with a warning, and the rest of the class is staged (the student is graded
    without it, as if it was not submitted)."""
    limit = min(_MAX_STAGED_FILE_BYTES, max(left, 0))
    try:
        data = export.read(name, limit)
    except ClassroomError as exc:
        budget = f" (what is left of the {_MAX_STAGED_STUDENT_BYTES} bytes staged per student)" \
            if limit < _MAX_STAGED_FILE_BYTES else ""
        _warn(f"{exc}{budget}; not staged as {target}: graded without it")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return len(data)


def _warn(message: str) -> None:
    """A warning for the instructor's terminal: it may quote a student's file name or email, so the control
    characters (ESC sequences that would drive the terminal) are shown as escapes."""
    from autograder.engine.results import safe_text

    print(f"intake: {safe_text(message)}", file=sys.stderr)
