"""Build the 28x28 dataset (PNG tree + packed cache + manifest) from the two archives, atomically.

Layout of a complete build in the data folder:

    omniglot_resized/<Alphabet>/<characterNN>/<IIII>_<DD>.png   28x28, mode L, white background
    omniglot28.npz      images uint8 [1623, 20, 28, 28] ink (255 - png), characters [1623], drawings [1623, 20]
    omniglot28.json     manifest: recipe version, content digest, counts, sizes; written last

The manifest is the completion marker: it is removed before anything is replaced and written after
everything is in place, so an interrupted run never leaves a build that looks complete. Everything is
first written into a temporary folder inside the data folder (same file system, so renames are atomic).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from omniglot_data.archives import OMNIGLOT, ArchiveContent, Character, Expected, download_archives, \
    mirror_archives, read_archives
from omniglot_data.errors import ChecksumError, CorruptArchiveError, DataError, StorageError
from omniglot_data.store import CACHE_NAME, MANIFEST_NAME, PNG_TREE_NAME, load_split

# Bump whenever the output of a build changes (resize, file layout, cache arrays): older builds are then redone.
RECIPE_VERSION = 1
RECIPE = "Pillow: open PNG, convert('L'), resize((28, 28), LANCZOS); cache stores ink = 255 - pixel"
IMAGE_SIZE = (28, 28)
TEMP_PREFIX = ".omniglot-build-"
LOCK_NAME = ".omniglot-build.lock"
DOWNLOADS_NAME = "downloads"


def resize_character(character: Character, out_dir: Path | None, source_size: tuple[int, int]) -> np.ndarray:
    """Ink images uint8 [drawings, 28, 28] of one character; also writes its 28x28 PNGs into `out_dir`."""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    inks = np.empty((len(character.stems), *IMAGE_SIZE), dtype=np.uint8)
    for index, (stem, png) in enumerate(zip(character.stems, character.pngs)):
        try:
            image = Image.open(io.BytesIO(png))
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise CorruptArchiveError(f"{character.name}/{stem}.png: not a readable PNG ({error})") from None
        if image.size != source_size:
            raise ChecksumError(f"{character.name}/{stem}.png: {image.size[0]}x{image.size[1]} pixels, "
                                f"expected {source_size[0]}x{source_size[1]}")
        # Omniglot PNGs are mode '1' (1-bit), for which Pillow's resize silently falls back to NEAREST;
        # converting to 'L' first makes LANCZOS actually filter, giving the gray anti-aliased 28x28 images.
        small = image.convert("L").resize(IMAGE_SIZE, Image.Resampling.LANCZOS)
        if out_dir is not None:
            small.save(out_dir / f"{stem}.png", format="PNG")
        inks[index] = 255 - np.asarray(small, dtype=np.uint8)
    return inks


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; only the parent should react (stop the pool, clean up),
    # instead of every worker also printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _resize_task(task: tuple[Character, Path, tuple[int, int]]) -> np.ndarray:
    return resize_character(*task)


@dataclass(frozen=True)
class Summary:
    alphabets: int
    characters: int
    images: int
    split_sizes: dict[str, int]
    data_dir: Path
    cache_bytes: int
    png_tree_bytes: int

    def line(self) -> str:
        split = "/".join(str(size) for size in self.split_sizes.values()) or "none matching this build"
        return (f"Omniglot ready: {self.alphabets} alphabets, {self.characters} characters, {self.images} images "
                f"at {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}; split train/val/test {split}; "
                f"cache {self.data_dir / CACHE_NAME} ({_mib(self.cache_bytes)}), "
                f"PNGs {self.data_dir / PNG_TREE_NAME} ({_mib(self.png_tree_bytes)})")


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree_bytes(root: Path) -> int:
    return sum(entry.stat().st_size for entry in root.rglob("*.png"))


def _split_sizes(cache: Path) -> dict[str, int]:
    """Sizes of the committed split, if it names exactly the characters of this build (else {})."""
    try:
        split = load_split()
        with np.load(cache, allow_pickle=False) as packed:  # reads only the small `characters` member
            characters = set(packed["characters"].tolist())
    except (DataError, OSError, KeyError, ValueError):
        return {}
    if set().union(*split.values()) != characters:
        return {}
    return {name: len(names) for name, names in split.items()}


def read_manifest(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def summary_of(manifest: dict, data_dir: Path) -> Summary:
    return Summary(alphabets=manifest["alphabets"], characters=manifest["characters"], images=manifest["images"],
                   split_sizes=_split_sizes(data_dir / CACHE_NAME), data_dir=data_dir,
                   cache_bytes=manifest["cache"]["bytes"], png_tree_bytes=manifest["png_tree_bytes"])


def existing_build(data_dir: Path, expected: Expected = OMNIGLOT) -> dict | None:
    """The manifest of a complete, current build in `data_dir`, or None if it must be (re)built.

    Checks the recipe version, the source digest, the cache's sha256 and the PNG tree's shape, all
    cheap enough for a second run to finish in well under a second.
    """
    manifest = read_manifest(data_dir)
    try:
        return manifest if manifest is not None and _is_current(manifest, data_dir, expected) else None
    except (KeyError, TypeError):  # a manifest from some other tool or version: rebuild
        return None


def _is_current(manifest: dict, data_dir: Path, expected: Expected) -> bool:
    if manifest["recipe_version"] != RECIPE_VERSION:
        return False
    if expected.content_digest is not None and manifest["content_digest"] != expected.content_digest:
        return False
    cache = data_dir / CACHE_NAME
    if not cache.is_file() or cache.stat().st_size != manifest["cache"]["bytes"] \
            or _file_sha256(cache) != manifest["cache"]["sha256"]:
        return False
    tree = data_dir / PNG_TREE_NAME
    character_dirs = [entry for entry in tree.glob("*/*") if entry.is_dir()] if tree.is_dir() else []
    return len(character_dirs) == manifest["characters"] and \
        sum(len(os.listdir(entry)) for entry in character_dirs) == manifest["images"]


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One build per data folder at a time; a second one waits, then finds the first one's result."""
    with open(data_dir / LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _storage_errors(where: Path) -> Iterator[None]:
    """Turns OS errors (disk full, permissions, read-only file system) into a one-line StorageError."""
    try:
        yield
    except DataError:
        raise
    except OSError as error:
        reason = "disk full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))
        raise StorageError(f"{error.filename or where}: {reason} while preparing the dataset in {where}") from None


def _write_build(content: ArchiveContent, staging: Path, expected: Expected, workers: int) -> dict:
    """Writes the PNG tree and the cache into `staging`; returns the manifest (not yet written)."""
    png_tree = staging / PNG_TREE_NAME
    tasks = [(character, png_tree / character.name, expected.image_size) for character in content.characters]
    inks = np.empty((len(tasks), expected.drawings_per_character, *IMAGE_SIZE), dtype=np.uint8)
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.Pool(workers, initializer=_ignore_interrupts))
            results = pool.imap(_resize_task, tasks, chunksize=16)
        else:
            results = map(_resize_task, tasks)
        for row, character_inks in enumerate(results):
            inks[row] = character_inks

    cache = staging / CACHE_NAME
    # Uncompressed: loading 25 MB of raw arrays is faster than inflating a smaller file on every run.
    np.savez(cache, images=inks,
             characters=np.array([character.name for character in content.characters]),
             drawings=np.array([character.stems for character in content.characters]))
    return {
        "recipe_version": RECIPE_VERSION,
        "recipe": RECIPE,
        "content_digest": content.content_digest,
        "alphabets": content.alphabets,
        "characters": len(content.characters),
        "images": content.images,
        "image_size": list(IMAGE_SIZE),
        "cache": {"name": CACHE_NAME, "bytes": cache.stat().st_size, "sha256": _file_sha256(cache)},
        "png_tree_bytes": _tree_bytes(png_tree),
    }


def _install(staging: Path, data_dir: Path, manifest: dict) -> None:
    """Moves a finished build from `staging` into `data_dir`; the manifest goes last."""
    (data_dir / MANIFEST_NAME).unlink(missing_ok=True)
    tree = data_dir / PNG_TREE_NAME
    if tree.exists():
        # A directory cannot be renamed over a non-empty one: park the old tree in staging, dropped with it.
        tree.rename(staging / "previous-tree")
    (staging / PNG_TREE_NAME).rename(tree)
    os.replace(staging / CACHE_NAME, data_dir / CACHE_NAME)
    manifest_tmp = staging / MANIFEST_NAME
    manifest_tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(manifest_tmp, data_dir / MANIFEST_NAME)


def _remove_stale_staging(data_dir: Path) -> None:
    # Left by a run that was killed outright (SIGKILL, power loss); safe because we hold the build lock.
    for stale in data_dir.glob(TEMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def prepare(data_dir: Path, mirror: Path | None = None, force: bool = False, expected: Expected = OMNIGLOT,
            workers: int = 2, fetch: Callable[[str, Path], None] | None = None,
            log: Callable[[str], None] = lambda _: None) -> tuple[dict, bool]:
    """Makes sure `data_dir` holds a complete, current build. Returns (manifest, whether it was built now).

    `mirror`: folder with the two zips (checked by content) instead of downloading (checked by md5 and content).
    `fetch(url, path)` replaces the downloader (tests). Raises `DataError` subclasses, each with its exit code.
    """
    if not force:
        # Checked before taking the lock too, so that a complete build in a read-only folder is fine.
        manifest = existing_build(data_dir, expected)
        if manifest is not None:
            return manifest, False
    with _storage_errors(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(data_dir):
            if not force:  # another run may have finished it while this one waited for the lock
                manifest = existing_build(data_dir, expected)
                if manifest is not None:
                    return manifest, False
            _remove_stale_staging(data_dir)
            started = time.monotonic()
            if mirror is not None:
                log(f"using the archives of mirror {mirror}")
                archives = mirror_archives(mirror)
            else:
                log("downloading the official archives (github.com/brendenlake/omniglot)")
                archives = download_archives(data_dir / DOWNLOADS_NAME, fetch)
            log("verifying the archives' content")
            content = read_archives(archives, expected)
            staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=data_dir))
            try:
                log(f"resizing {content.images} images to {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} with {workers} worker(s)")
                manifest = _write_build(content, staging, expected, workers)
                manifest["source"] = f"mirror {mirror}" if mirror is not None else "download"
                manifest["build_seconds"] = round(time.monotonic() - started, 1)
                _install(staging, data_dir, manifest)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return manifest, True
