"""The Omniglot builder on a tiny synthetic archive pair: every failure mode, atomicity, idempotence."""

from __future__ import annotations

import errno
import functools
import hashlib
import http.server
import shutil
import subprocess
import threading
import urllib.error
import zipfile

import numpy as np
import pytest
from PIL import Image

from omniglot_data import archives, prepare as prepare_module
from omniglot_data.__main__ import main
from omniglot_data.archives import Expected, content_digest, read_archives, verify_md5
from omniglot_data.errors import ChecksumError, CorruptArchiveError, DataNotFoundError, LayoutError, NetworkError
from omniglot_data.prepare import existing_build, prepare
from omniglot_data.store import CACHE_NAME, MANIFEST_NAME, PNG_TREE_NAME, load_store

from omniglot_fixtures import archive_entries, drawing_png, expected_for, make_mirror, write_zip


@pytest.fixture(autouse=True)
def no_mirror_from_the_environment(monkeypatch):
    """CI exports OMNIGLOT_MIRROR for the real build; these tests choose their own source."""
    monkeypatch.delenv("OMNIGLOT_MIRROR", raising=False)

EXPECTED = expected_for()
CHARACTERS = EXPECTED.characters


@pytest.fixture(scope="module")
def good_entries():
    return archive_entries()


@pytest.fixture
def mirror(tmp_path, good_entries):
    return make_mirror(tmp_path / "mirror", good_entries)


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


def run_cli(*argv, expected=EXPECTED):
    return main([*map(str, argv), "--workers", "1"], expected=expected)


def assert_no_build(data):
    """Nothing that looks like (part of) a finished dataset, and no leftover staging folder."""
    leftovers = sorted(path.name for path in data.iterdir() if path.name != ".omniglot-build.lock") \
        if data.exists() else []
    assert leftovers in ([], ["downloads"]), leftovers


def test_build_from_mirror_writes_tree_cache_and_manifest(mirror, data, capsys):
    assert run_cli("--mirror", mirror, "--data-dir", data) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"3 alphabets, {CHARACTERS} characters, {CHARACTERS * 20} images at 28x28" in summary
    assert str(data / CACHE_NAME) in summary

    store = load_store(data)
    assert store.images.shape == (CHARACTERS, 20, 28, 28) and store.images.dtype == np.uint8
    assert store.characters == sorted(store.characters, key=str.encode)
    assert store.characters[0] == "Alpha/character01" and "Beta_(Test)/character03" in store.characters
    assert store.drawings[store.row("Gamma/character02"), 19] == "0007_20"
    # The PNG tree and the cache agree, with ink = 255 - pixel.
    png = np.asarray(Image.open(store.png_path("Gamma/character02", 19)))
    assert png.shape == (28, 28) and png.dtype == np.uint8
    np.testing.assert_array_equal(store.images[store.row("Gamma/character02"), 19], 255 - png)
    assert not store.images.flags.writeable


def test_resize_filters_the_1bit_images_instead_of_nearest_neighbour(mirror, data):
    # mode '1' resized directly would give only 0/255; converting to 'L' first makes LANCZOS anti-alias.
    assert run_cli("--mirror", mirror, "--data-dir", data) == 0
    values = np.unique(load_store(data).images)
    assert len(values) > 16 and values.min() == 0


def test_second_run_only_checks_the_existing_build(mirror, data):
    first, built = prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert built
    cache_stamp = (data / CACHE_NAME).stat().st_mtime_ns
    shutil.rmtree(mirror)  # the second run must not need the archives at all
    second, built_again = prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert not built_again and second == first
    assert (data / CACHE_NAME).stat().st_mtime_ns == cache_stamp


@pytest.mark.parametrize("damage", ["png_removed", "cache_altered", "manifest_removed", "old_recipe",
                                    "foreign_manifest"])
def test_damaged_build_is_rebuilt(mirror, data, damage):
    prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    if damage == "png_removed":
        next((data / PNG_TREE_NAME).rglob("*.png")).unlink()
    elif damage == "cache_altered":
        with open(data / CACHE_NAME, "r+b") as cache:
            cache.seek(-1, 2)
            cache.write(b"\x00" if cache.read(1) != b"\x00" else b"\x01")
    elif damage == "manifest_removed":
        (data / MANIFEST_NAME).unlink()
    elif damage == "foreign_manifest":
        (data / MANIFEST_NAME).write_text('{"recipe_version": 1}')
    else:
        manifest = (data / MANIFEST_NAME).read_text().replace('"recipe_version": 1', '"recipe_version": 0')
        (data / MANIFEST_NAME).write_text(manifest)
    assert existing_build(data, EXPECTED) is None
    _, built = prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert built and existing_build(data, EXPECTED) is not None


def test_parallel_build_matches_serial_build(mirror, tmp_path):
    serial, _ = prepare(tmp_path / "serial", mirror=mirror, expected=EXPECTED, workers=1)
    parallel, _ = prepare(tmp_path / "parallel", mirror=mirror, expected=EXPECTED, workers=2)
    assert serial["cache"]["sha256"] == parallel["cache"]["sha256"]


# --- download path (no network in tests: the fetch function is replaced) ---

def test_verify_md5_rejects_a_wrong_checksum(tmp_path):
    path = tmp_path / "images_background.zip"
    path.write_bytes(b"not the archive")
    verify_md5(path, hashlib.md5(b"not the archive").hexdigest())
    with pytest.raises(ChecksumError, match=r"images_background\.zip: md5 .* expected 68d2"):
        verify_md5(path, "68d2efa1b9178cc56df9314c21c6e718")


def test_download_with_wrong_md5_fails_with_exit_4_and_keeps_nothing(data, mirror, monkeypatch, capsys):
    def fetch(url, destination):
        destination.write_bytes((mirror / url.rsplit("/", 1)[1]).read_bytes())  # right layout, but md5 differs

    monkeypatch.setattr(archives, "_urlopen_to_file", fetch)
    assert run_cli("--data-dir", data) == 4
    assert "md5" in capsys.readouterr().err
    assert not list((data / "downloads").iterdir())
    assert_no_build(data)


def test_download_with_matching_md5_builds_and_is_reused(data, mirror, monkeypatch):
    md5s = {name: archives.file_md5(mirror / name) for name in archives.ARCHIVE_NAMES}
    monkeypatch.setattr(archives, "ARCHIVE_MD5", md5s)
    fetched = []

    def fetch(url, destination):
        fetched.append(url)
        destination.write_bytes((mirror / url.rsplit("/", 1)[1]).read_bytes())

    prepare(data, expected=EXPECTED, workers=1, fetch=fetch)
    assert fetched == [archives.UPSTREAM_URL.format(name=name) for name in archives.ARCHIVE_NAMES]
    assert fetched[0] == "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_background.zip"
    prepare(data, expected=EXPECTED, workers=1, fetch=fetch, force=True)
    assert len(fetched) == 2  # verified copies in data/downloads are not fetched again


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_over_http_streams_verifies_and_builds(data, mirror, monkeypatch):
    """The real urllib downloader, against a local HTTP server standing in for GitHub."""
    handler = functools.partial(QuietFileHandler, directory=str(mirror))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setattr(archives, "UPSTREAM_URL", f"http://127.0.0.1:{server.server_address[1]}/{{name}}")
        monkeypatch.setattr(archives, "ARCHIVE_MD5",
                            {name: archives.file_md5(mirror / name) for name in archives.ARCHIVE_NAMES})
        try:
            assert run_cli("--data-dir", data) == 0
            missing = archives.UPSTREAM_URL.format(name="nothing-here.zip")
            with pytest.raises(NetworkError, match=r"nothing-here.zip answered HTTP 404"):
                archives._urlopen_to_file(missing, data / "nothing-here.zip")
        finally:
            server.shutdown()
    assert sorted(path.name for path in (data / "downloads").iterdir()) == list(archives.ARCHIVE_NAMES)
    assert existing_build(data, EXPECTED) is not None


class DroppingHandler(QuietFileHandler):
    """Promises a whole file, sends ten bytes, hangs up: a connection lost mid-download."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"PK\x03\x04" + b"\x00" * 6)
        self.wfile.flush()
        self.close_connection = True


def test_connection_lost_mid_download_is_a_network_error(data, tmp_path):
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), DroppingHandler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with pytest.raises(NetworkError, match=r"download interrupted: .*x\.zip sent 10 of 100000 bytes"):
                archives._urlopen_to_file(f"http://127.0.0.1:{server.server_address[1]}/x.zip", tmp_path / "x.part")
        finally:
            server.shutdown()


def test_no_network_fails_with_exit_3_and_suggests_a_mirror(data, monkeypatch, capsys):
    def unreachable(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(archives.urllib.request, "urlopen", unreachable)
    assert run_cli("--data-dir", data) == 3
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("omniglot_data: error: no network: cannot download https://")
    assert "--mirror DIR" in error and "OMNIGLOT_MIRROR" in error
    with pytest.raises(NetworkError):
        prepare(data, expected=EXPECTED, workers=1)
    assert_no_build(data)


# --- bad archives ---

def _rewrite(mirror, name, transform):
    path = mirror / name
    path.write_bytes(transform(path.read_bytes()))


def test_truncated_zip_fails_with_exit_5(mirror, data, capsys):
    _rewrite(mirror, "images_evaluation.zip", lambda raw: raw[: len(raw) // 2])
    assert run_cli("--mirror", mirror, "--data-dir", data) == 5
    assert "images_evaluation.zip: corrupt or truncated zip" in capsys.readouterr().err
    assert_no_build(data)


def test_bad_crc_fails_with_exit_5(mirror, data, good_entries):
    first_png = good_entries["images_background.zip"][sorted(good_entries["images_background.zip"])[0]]
    # The fixture zips are stored uncompressed, so the PNG's bytes appear verbatim and can be flipped in place.
    _rewrite(mirror, "images_background.zip",
             lambda raw: raw.replace(first_png, first_png[:-20] + bytes(b ^ 0xFF for b in first_png[-20:]), 1))
    with pytest.raises(CorruptArchiveError, match="Bad CRC-32"):
        prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert_no_build(data)


def test_png_that_does_not_decode_fails_with_exit_5(tmp_path, data, good_entries):
    entries = {name: dict(files) for name, files in good_entries.items()}
    entries["images_evaluation.zip"]["images_evaluation/Gamma/character01/0006_01.png"] = b"\x89PNG garbage"
    mirror = make_mirror(tmp_path / "bad-png", entries)
    assert run_cli("--mirror", mirror, "--data-dir", data) == 5
    assert_no_build(data)


@pytest.mark.parametrize("entry, message", [
    ("images_background/Alpha/notes.txt", "unexpected entry"),
    ("images_background/Alpha/character01/extra/0001_01.png", "unexpected"),
    ("images_background/Alpha/character01/0001_1.png", "unexpected entry"),
    ("elsewhere/Alpha/character01/0001_01.png", "outside images_background/"),
    ("images_background/../../evil.png", "unsafe entry path"),
    ("/etc/evil.png", "unsafe entry path"),
])
def test_wrong_layout_fails_with_exit_6(tmp_path, data, good_entries, entry, message, capsys):
    entries = {name: dict(files) for name, files in good_entries.items()}
    entries["images_background.zip"][entry] = drawing_png(0)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_zip(mirror / "images_background.zip", entries["images_background.zip"], directory_entries=False)
    write_zip(mirror / "images_evaluation.zip", entries["images_evaluation.zip"])
    assert run_cli("--mirror", mirror, "--data-dir", data) == 6
    assert message in capsys.readouterr().err
    assert_no_build(data)


def test_alphabet_in_both_archives_is_a_layout_error(tmp_path, data, good_entries):
    entries = {name: dict(files) for name, files in good_entries.items()}
    entries["images_evaluation.zip"] = {path.replace("images_background/", "images_evaluation/"): png
                                        for path, png in entries["images_background.zip"].items()}
    with pytest.raises(LayoutError, match="'Alpha' is in both"):
        prepare(data, mirror=make_mirror(tmp_path / "dup", entries), expected=EXPECTED, workers=1)


def test_finder_junk_is_ignored(tmp_path, data, good_entries):
    entries = {name: dict(files) for name, files in good_entries.items()}
    entries["images_background.zip"]["__MACOSX/images_background/._Alpha"] = b"junk"
    entries["images_background.zip"]["images_background/Alpha/.DS_Store"] = b"junk"
    _, built = prepare(data, mirror=make_mirror(tmp_path / "junk", entries), expected=EXPECTED, workers=1)
    assert built


# --- content that is well-formed but not what was expected ---

def test_missing_drawing_fails_with_exit_4(tmp_path, data, good_entries, capsys):
    entries = {name: dict(files) for name, files in good_entries.items()}
    del entries["images_evaluation.zip"]["images_evaluation/Gamma/character02/0007_20.png"]
    assert run_cli("--mirror", make_mirror(tmp_path / "m", entries), "--data-dir", data) == 4
    assert "Gamma/character02 has 19 drawings, expected 20" in capsys.readouterr().err


def test_real_counts_are_the_default_expectation(mirror, data, capsys):
    assert main(["--mirror", str(mirror), "--data-dir", str(data), "--workers", "1"]) == 4
    assert "3 alphabets and 7 characters, expected 50 and 1623" in capsys.readouterr().err


def test_wrong_image_size_fails_with_exit_4(tmp_path, data, good_entries):
    entries = {name: dict(files) for name, files in good_entries.items()}
    entries["images_background.zip"]["images_background/Beta_(Test)/character02/0004_05.png"] = \
        drawing_png(1, size=(100, 105))
    with pytest.raises(ChecksumError, match=r"0004_05\.png: 100x105 pixels, expected 105x105"):
        prepare(data, mirror=make_mirror(tmp_path / "m", entries), expected=EXPECTED, workers=1)
    assert_no_build(data)


def test_content_digest_mismatch_fails_with_exit_4(mirror, data, capsys):
    wrong = Expected(**{**EXPECTED.__dict__, "content_digest": "0" * 64})
    assert run_cli("--mirror", mirror, "--data-dir", data, expected=wrong) == 4
    assert "content digest" in capsys.readouterr().err
    assert_no_build(data)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_content_digest_follows_the_documented_shell_recipe(mirror, tmp_path):
    unpacked = tmp_path / "unpacked"
    for name in archives.ARCHIVE_NAMES:
        zipfile.ZipFile(mirror / name).extractall(unpacked)
    shell = subprocess.run(
        "find images_background images_evaluation -name '*.png' | LC_ALL=C sort | xargs sha256sum | sha256sum",
        shell=True, cwd=unpacked, capture_output=True, text=True, check=True).stdout.split()[0]
    assert read_archives([mirror / name for name in archives.ARCHIVE_NAMES], EXPECTED).content_digest == shell
    files = {str(path.relative_to(unpacked)): path.read_bytes() for path in unpacked.rglob("*.png")}
    assert content_digest(files) == shell


# --- atomicity ---

def _fail_after(count, exception):
    real = prepare_module.resize_character
    calls = []

    def resize(*args):
        calls.append(args)
        if len(calls) > count:
            raise exception
        return real(*args)

    return resize


def test_interrupted_first_build_leaves_nothing_that_looks_complete(mirror, data, monkeypatch):
    monkeypatch.setattr(prepare_module, "resize_character", _fail_after(3, RuntimeError("power cut")))
    with pytest.raises(RuntimeError, match="power cut"):
        prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert_no_build(data)
    with pytest.raises(DataNotFoundError, match="data_download.sh"):
        load_store(data)


def test_ctrl_c_exits_130_and_keeps_the_previous_build(mirror, data, monkeypatch, capsys):
    previous, _ = prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    monkeypatch.setattr(prepare_module, "resize_character", _fail_after(2, KeyboardInterrupt()))
    assert run_cli("--mirror", mirror, "--data-dir", data, "--force") == 130
    assert "interrupted" in capsys.readouterr().err
    assert existing_build(data, EXPECTED) == previous
    assert not list(data.glob(".omniglot-build-*"))


def test_interruption_while_installing_is_detected_by_the_next_run(mirror, data, monkeypatch):
    prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    real_replace = prepare_module.os.replace

    def replace(source, target):
        if str(target).endswith(CACHE_NAME):
            raise RuntimeError("killed between renames")
        real_replace(source, target)

    monkeypatch.setattr(prepare_module.os, "replace", replace)
    with pytest.raises(RuntimeError):
        prepare(data, mirror=mirror, expected=EXPECTED, workers=1, force=True)
    monkeypatch.undo()
    assert existing_build(data, EXPECTED) is None  # manifest removed first, so this is not "complete"
    _, built = prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert built and existing_build(data, EXPECTED) is not None


def test_complete_build_is_accepted_without_writing_anything(mirror, data, monkeypatch):
    # e.g. a read-only data folder bound into the grading sandbox: no lock file may be needed
    prepare(data, mirror=mirror, expected=EXPECTED, workers=1)

    def no_lock(folder):
        raise PermissionError(13, "Permission denied", str(folder / ".omniglot-build.lock"))

    monkeypatch.setattr(prepare_module, "_exclusive", no_lock)
    assert run_cli("--mirror", mirror, "--data-dir", data) == 0
    (data / MANIFEST_NAME).unlink()
    assert run_cli("--mirror", mirror, "--data-dir", data) == 7  # a rebuild does need to write


def test_stale_staging_folder_of_a_killed_run_is_cleaned(mirror, data):
    stale = data / ".omniglot-build-killed"
    (stale / PNG_TREE_NAME).mkdir(parents=True)
    prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    assert not stale.exists()


def test_disk_full_fails_with_exit_7_and_cleans_up(mirror, data, monkeypatch, capsys):
    def savez(path, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(prepare_module.np, "savez", savez)
    assert run_cli("--mirror", mirror, "--data-dir", data) == 7
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("omniglot_data: error: ") and "disk full" in error and CACHE_NAME in error
    assert_no_build(data)


# --- command line ---

def test_mirror_without_the_archives_is_a_usage_error(tmp_path, data, capsys):
    (tmp_path / "empty").mkdir()
    assert run_cli("--mirror", tmp_path / "empty", "--data-dir", data) == 2
    assert "missing images_background.zip, images_evaluation.zip" in capsys.readouterr().err


def test_mirror_can_come_from_the_environment(mirror, data, monkeypatch):
    monkeypatch.setenv("OMNIGLOT_MIRROR", str(mirror))
    assert run_cli("--data-dir", data) == 0


def test_summary_without_a_build_exits_8(data, capsys):
    assert run_cli("--summary", "--data-dir", data) == 8
    assert "data_download.sh" in capsys.readouterr().err


def test_summary_of_a_build(mirror, data, capsys):
    prepare(data, mirror=mirror, expected=EXPECTED, workers=1)
    capsys.readouterr()
    assert run_cli("--summary", "--data-dir", data) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("Omniglot ready: 3 alphabets, 7 characters, 140 images")
    assert "split train/val/test none matching this build" in summary  # the committed split is for the real set


def test_bad_arguments_exit_2(mirror, data):
    assert run_cli("--no-such-option") == 2
    assert main(["--workers", "0", "--mirror", str(mirror), "--data-dir", str(data)], expected=EXPECTED) == 2
