"""Submission intake: whitelisted files found anywhere, everything else ignored, bad archives refused."""

import os
import stat
import zipfile
from pathlib import Path

import pytest

from autograder.engine.submission import IntakeLimits, collect_submission

WHITELIST = ("load_data.py", "hw1.py")


def make_zip(path: Path, entries: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_with_top_folder_and_macos_junk(tmp_path):
    archive = make_zip(tmp_path / "s.zip", {
        "hw1_submission/hw1.py": "x = 1\n",
        "hw1_submission/load_data.py": "y = 2\n",
        "__MACOSX/hw1_submission/._hw1.py": "junk",
        "hw1_submission/._load_data.py": "junk",
        "hw1_submission/notes.txt": "not whitelisted",
    })
    intake = collect_submission(archive, WHITELIST, tmp_path / "out")
    assert intake.rejected is None and intake.missing == []
    assert sorted(intake.files) == ["hw1.py", "load_data.py"]
    assert (tmp_path / "out" / "hw1.py").read_text() == "x = 1\n"
    assert sorted(os.listdir(tmp_path / "out")) == ["hw1.py", "load_data.py"]


def test_duplicates_prefer_the_shallowest_and_say_so(tmp_path):
    archive = make_zip(tmp_path / "s.zip", {"a/b/hw1.py": "deep", "a/hw1.py": "shallow", "z/hw1.py": "tie"})
    intake = collect_submission(archive, WHITELIST, tmp_path / "out")
    assert (tmp_path / "out" / "hw1.py").read_text() == "shallow"
    assert intake.notes == ["hw1.py found 3 times; used a/hw1.py (the shallowest), ignored z/hw1.py, a/b/hw1.py"]
    assert intake.missing == ["load_data.py"]
    assert "Missing from the submission: load_data.py" in intake.summary()


def test_folder_submission_ignores_other_files_and_skips_symlinked_dirs(tmp_path):
    folder = tmp_path / "sub"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "hw1.py").write_text("ok")
    (folder / "conftest.py").write_text("evil")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "load_data.py").write_text("someone else's")
    (folder / "link").symlink_to(secret)
    intake = collect_submission(folder, WHITELIST, tmp_path / "out")
    assert intake.files.keys() == {"hw1.py"} and intake.missing == ["load_data.py"]


def test_folder_symlink_in_place_of_a_file_is_rejected(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "hw1.py").symlink_to("/etc/passwd")
    intake = collect_submission(folder, WHITELIST, tmp_path / "out")
    assert "hw1.py is a symbolic link" in intake.rejected
    assert intake.files == {} and os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("entries, reason", [
    ({"../hw1.py": "x"}, "points outside the archive"),
    ({"a/../../hw1.py": "x"}, "points outside the archive"),
    ({"/etc/hw1.py": "x"}, "absolute path"),
    ({"C:/temp/hw1.py": "x"}, "absolute path"),
    ({"hw1.py": "x" * (3 * 1024 * 1024)}, "zip bomb"),
])
def test_bad_zip_entries_reject_everything(tmp_path, entries, reason):
    archive = make_zip(tmp_path / "s.zip", {"load_data.py": "fine", **entries})
    intake = collect_submission(archive, WHITELIST, tmp_path / "out")
    assert reason in intake.rejected
    assert intake.files == {} and os.listdir(tmp_path / "out") == []
    assert intake.summary().startswith("Submission rejected: ")


def test_zip_symlink_entry_is_rejected(tmp_path):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("hw1.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    intake = collect_submission(archive, WHITELIST, tmp_path / "out")
    assert "is a symbolic link" in intake.rejected


def test_size_caps(tmp_path):
    limits = IntakeLimits(max_file_bytes=100, max_total_uncompressed=10_000, max_ratio=1e9)
    too_big = make_zip(tmp_path / "big.zip", {"hw1.py": os.urandom(200)})
    assert "the limit is 100" in collect_submission(too_big, WHITELIST, tmp_path / "o1", limits).rejected
    huge_total = make_zip(tmp_path / "total.zip", {"other.bin": b"\0" * 20_000, "hw1.py": "x"})
    assert "would expand to 20001 bytes" in collect_submission(huge_total, WHITELIST, tmp_path / "o2", limits).rejected
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "hw1.py").write_bytes(b"x" * 101)
    assert "the limit is 100" in collect_submission(folder, WHITELIST, tmp_path / "o3", limits).rejected


def test_lying_zip_header_cannot_exceed_the_cap(tmp_path):
    """An entry that declares a small size but inflates to more is cut at the cap while reading."""
    archive = make_zip(tmp_path / "s.zip", {"hw1.py": b"a" * 5000})
    data = bytearray(archive.read_bytes())
    # patch the declared uncompressed size (local header offset 22, central directory entry offset 24) to 10 bytes
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    limits = IntakeLimits(max_file_bytes=100, max_ratio=1e9)
    intake = collect_submission(archive, WHITELIST, tmp_path / "out", limits)
    assert intake.rejected is not None and intake.files == {}


def test_single_file_and_non_zip(tmp_path):
    single = tmp_path / "hw1.py"
    single.write_text("solo")
    assert collect_submission(single, WHITELIST, tmp_path / "o1").files.keys() == {"hw1.py"}
    other = tmp_path / "notes.txt"
    other.write_text("?")
    assert "neither a folder, a zip" in collect_submission(other, WHITELIST, tmp_path / "o2").rejected
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    assert collect_submission(corrupt, WHITELIST, tmp_path / "o3").rejected is not None


def _set_entry_header(archive: Path, name: str, **fields) -> None:
    """Rewrite fields of one entry's local and central headers in place (what another zip tool would have written):
    flag_bits (offset 6 local, 8 central) and compress_type (8 local, 10 central)."""
    data = bytearray(archive.read_bytes())
    offsets = {"flag_bits": (6, 8), "compress_type": (8, 10)}
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(name)
    central = data.find(b"PK\x01\x02")
    while central != -1 and data[central + 46:central + 46 + len(name)] != name.encode():
        central = data.find(b"PK\x01\x02", central + 4)
    for field_name, value in fields.items():
        local_at, central_at = offsets[field_name]
        data[info.header_offset + local_at:info.header_offset + local_at + 2] = value.to_bytes(2, "little")
        data[central + central_at:central + central_at + 2] = value.to_bytes(2, "little")
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("fields, reason", [
    ({"flag_bits": 0x1}, "is encrypted (password-protected)"),
    ({"compress_type": 9}, "is compressed with a method this grader cannot read"),  # deflate64
])
def test_unreadable_zip_entries_are_a_clear_rejection(tmp_path, fields, reason):
    archive = make_zip(tmp_path / "s.zip", {"sub/hw1.py": "x = 1\n" * 100, "sub/load_data.py": "y = 2\n"})
    _set_entry_header(archive, "sub/hw1.py", **fields)
    intake = collect_submission(archive, WHITELIST, tmp_path / "out")
    assert intake.rejected is not None and reason in intake.rejected and "'sub/hw1.py'" in intake.rejected
    assert intake.files == {} and os.listdir(tmp_path / "out") == []
