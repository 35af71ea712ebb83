"""Submission intake: take the whitelisted files, and nothing else, out of a student's folder or zip.

Students zip strangely (a top folder, `__MACOSX/`, a copy of the whole repository), so each whitelisted file name
is looked for anywhere inside; when it occurs more than once the shallowest copy wins and the feedback says so.
Archives with absolute or `..` entry names, symlinks in place of a whitelisted file, encrypted entries, compression
methods zipfile cannot read, implausible compression ratios or sizes are rejected as a whole with a message naming
the entry (the grading then scores 0 with that message, like any other rejection). Only whitelisted files are ever
written out, read with a byte cap whatever sizes the archive claims.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

IGNORED_PARTS = ("__MACOSX",)


@dataclass(frozen=True)
class IntakeLimits:
    max_file_bytes: int = 2 * 1024 * 1024  # one whitelisted file
    max_archive_bytes: int = 200 * 1024 * 1024  # the zip itself
    max_total_uncompressed: int = 1024 * 1024 * 1024  # sum of the sizes the zip declares
    max_ratio: float = 200.0  # uncompressed/compressed, per entry and overall
    max_entries: int = 100_000


class SubmissionRejected(Exception):
    """The submission as a whole cannot be taken; the message says why and is shown to the student."""


@dataclass
class Intake:
    files: dict[str, Path] = field(default_factory=dict)  # whitelisted name -> extracted copy
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    rejected: str | None = None

    def summary(self) -> str:
        lines = []
        if self.rejected:
            lines.append(f"Submission rejected: {self.rejected}")
        lines += self.notes
        if self.missing and not self.rejected:
            lines.append(f"Missing from the submission: {', '.join(self.missing)}")
        return "\n".join(lines)


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(part in IGNORED_PARTS for part in parts) or parts[-1].startswith("._")


def _choose(found: dict[str, list[str]], notes: list[str]) -> dict[str, str]:
    """For each name, the shallowest location (ties: alphabetical), noting the ones not used."""
    chosen = {}
    for name, locations in found.items():
        locations = sorted(locations, key=lambda loc: (loc.count("/"), loc))
        chosen[name] = locations[0]
        if len(locations) > 1:
            notes.append(f"{name} found {len(locations)} times; used {locations[0]} (the shallowest), "
                         f"ignored {', '.join(locations[1:])}")
    return chosen


def _from_folder(folder: Path, whitelist: tuple[str, ...], dest: Path, limits: IntakeLimits, notes: list[str]):
    found: dict[str, list[str]] = {}
    count = 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel_root = Path(root).relative_to(folder)
        dirs[:] = [d for d in dirs if d not in IGNORED_PARTS]
        for name in names:
            count += 1
            if count > limits.max_entries:
                raise SubmissionRejected(f"the folder holds more than {limits.max_entries} files")
            if name not in whitelist or name.startswith("._"):
                continue
            found.setdefault(name, []).append((rel_root / name).as_posix())
    chosen = _choose(found, notes)
    files = {}
    for name, location in chosen.items():
        source = folder / location
        info = os.lstat(source)
        if stat.S_ISLNK(info.st_mode):
            raise SubmissionRejected(f"{location} is a symbolic link; submit the file itself")
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionRejected(f"{location} is not a regular file")
        if info.st_size > limits.max_file_bytes:
            raise SubmissionRejected(f"{location} is {info.st_size} bytes; the limit is {limits.max_file_bytes}")
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as stream:
            files[name] = _write_capped(stream, dest / name, location, limits)
    return files


def _write_capped(stream, target: Path, location: str, limits: IntakeLimits) -> Path:
    data = stream.read(limits.max_file_bytes + 1)
    if len(data) > limits.max_file_bytes:
        raise SubmissionRejected(f"{location} is larger than the {limits.max_file_bytes}-byte limit")
    target.write_bytes(data)
    target.chmod(0o644)
    return target


def _check_entry(info: zipfile.ZipInfo, limits: IntakeLimits) -> tuple[str, ...] | None:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise SubmissionRejected(f"the zip entry {info.filename!r} has an absolute path")
    if ".." in path.parts:
        raise SubmissionRejected(f"the zip entry {info.filename!r} points outside the archive ('..')")
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        raise SubmissionRejected(f"the zip entry {info.filename!r} expands {info.file_size / info.compress_size:.0f}x; "
                                 f"archives compressed more than {limits.max_ratio:.0f}x are refused (zip bomb?)")
    if info.is_dir() or not path.parts:
        return None
    return path.parts


def _from_zip(archive: Path, whitelist: tuple[str, ...], dest: Path, limits: IntakeLimits, notes: list[str]):
    if archive.stat().st_size > limits.max_archive_bytes:
        raise SubmissionRejected(f"{archive.name} is larger than {limits.max_archive_bytes} bytes")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise SubmissionRejected(f"{archive.name} is not a valid zip file ({exc})") from None
    with zf:
        entries = zf.infolist()
        if len(entries) > limits.max_entries:
            raise SubmissionRejected(f"{archive.name} holds more than {limits.max_entries} entries")
        total = sum(info.file_size for info in entries)
        if total > limits.max_total_uncompressed:
            raise SubmissionRejected(f"{archive.name} would expand to {total} bytes; the limit is "
                                     f"{limits.max_total_uncompressed} (zip bomb?)")
        by_location: dict[str, zipfile.ZipInfo] = {}
        found: dict[str, list[str]] = {}
        for info in entries:
            parts = _check_entry(info, limits)
            if parts is None or _ignored(parts) or parts[-1] not in whitelist:
                continue
            location = "/".join(parts)
            by_location[location] = info
            found.setdefault(parts[-1], []).append(location)
        files = {}
        for name, location in _choose(found, notes).items():
            info = by_location[location]
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SubmissionRejected(f"the zip entry {info.filename!r} is a symbolic link; submit the file itself")
            if info.file_size > limits.max_file_bytes:
                raise SubmissionRejected(f"{info.filename!r} is {info.file_size} bytes; the limit is "
                                         f"{limits.max_file_bytes}")
            if info.flag_bits & 0x1:
                raise SubmissionRejected(f"the zip entry {info.filename!r} is encrypted (password-protected); "
                                         "submit a zip without a password")
            try:
                with zf.open(info) as stream:
                    files[name] = _write_capped(stream, dest / name, info.filename, limits)
            except NotImplementedError:  # zipfile's answer to a compression method it lacks (e.g. deflate64)
                raise SubmissionRejected(f"the zip entry {info.filename!r} is compressed with a method this grader "
                                         "cannot read (compress type "
                                         f"{info.compress_type}); make the zip with the standard 'deflate' "
                                         "compression (e.g. `zip -r`, or your system's 'Compress')") from None
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as exc:
                raise SubmissionRejected(f"the zip entry {info.filename!r} cannot be read ({exc})") from None
        return files


def collect_submission(submission: str | Path, whitelist: tuple[str, ...] | list[str], dest: Path,
                       limits: IntakeLimits = IntakeLimits()) -> Intake:
    """Copy the whitelisted files of a folder, zip, or single file into `dest` (created, must not exist)."""
    submission = Path(submission)
    whitelist = tuple(whitelist)
    dest.mkdir(parents=True)
    intake = Intake()
    try:
        if submission.is_symlink():
            raise SubmissionRejected(f"{submission} is a symbolic link")
        if submission.is_dir():
            intake.files = _from_folder(submission, whitelist, dest, limits, intake.notes)
        elif submission.is_file() and zipfile.is_zipfile(submission):
            intake.files = _from_zip(submission, whitelist, dest, limits, intake.notes)
        elif submission.is_file() and submission.name in whitelist:
            with open(submission, "rb") as stream:
                intake.files = {submission.name: _write_capped(stream, dest / submission.name, submission.name, limits)}
        elif submission.exists():
            raise SubmissionRejected(f"{submission.name} is neither a folder, a zip, nor one of {', '.join(whitelist)}")
        else:
            raise SubmissionRejected(f"{submission} does not exist")
    except SubmissionRejected as exc:
        for path in intake.files.values():
            path.unlink(missing_ok=True)
        for leftover in dest.iterdir():
            leftover.unlink()
        intake.files = {}
        intake.rejected = str(exc)
    intake.missing = [name for name in whitelist if name not in intake.files]
    return intake
