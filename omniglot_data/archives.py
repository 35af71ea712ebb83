"""Getting the two official Omniglot archives and checking what is inside them.

Two sources: the upstream GitHub repository (checked by md5 of the zip files) or a local mirror
(`--mirror DIR` / `OMNIGLOT_MIRROR`), whose zip containers may legitimately differ from upstream,
so it is checked by content: layout, counts and a digest over every PNG.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from omniglot_data.errors import ChecksumError, CorruptArchiveError, LayoutError, NetworkError, UsageError

UPSTREAM_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}"
ARCHIVE_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
ARCHIVE_NAMES = tuple(ARCHIVE_MD5)
DOWNLOAD_TIMEOUT_S = 30
MIRROR_HINT = "use --mirror DIR or OMNIGLOT_MIRROR=DIR with a folder holding the two zips"
MAX_PNG_BYTES = 1 << 20  # Omniglot PNGs are a few hundred bytes; a larger entry is not Omniglot (or a zip bomb)

# `<top>/<Alphabet>/<characterNN>/<IIII>_<DD>.png`, the upstream layout; directory entries may precede the files.
_PNG_PATH = re.compile(r"(?P<alphabet>[^/]+)/(?P<character>character\d{2})/(?P<stem>\d{4}_\d{2})\.png")
# macOS archivers add these next to the data; they carry nothing and are skipped rather than rejected.
_FINDER_JUNK = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$)")


@dataclass(frozen=True)
class Expected:
    """What a good pair of archives holds. Defaults are the real Omniglot; tests pass a small synthetic set."""

    alphabets: int = 50
    characters: int = 1623
    drawings_per_character: int = 20
    image_size: tuple[int, int] = (105, 105)
    # `find images_background images_evaluation -name '*.png' | LC_ALL=C sort | xargs sha256sum | sha256sum`,
    # from the mirror's README; None skips the digest (only for synthetic test data).
    content_digest: str | None = "8745d3284205c70953ebeacd9061b7dfdadc5961afab7b71a1553c9aa5bcb1af"


OMNIGLOT = Expected()


@dataclass(frozen=True)
class Character:
    name: str  # "Alphabet/characterNN"
    stems: tuple[str, ...]  # "IIII_DD", sorted
    pngs: tuple[bytes, ...]  # file contents, in `stems` order


@dataclass(frozen=True)
class ArchiveContent:
    characters: tuple[Character, ...]  # sorted by name (C locale)
    alphabets: int
    content_digest: str

    @property
    def images(self) -> int:
        return sum(len(character.stems) for character in self.characters)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: Path, expected_md5: str) -> None:
    actual = file_md5(path)
    if actual != expected_md5:
        raise ChecksumError(f"{path}: md5 {actual}, expected {expected_md5} (incomplete or altered download)")


def mirror_archives(mirror: Path) -> list[Path]:
    """The two archives of a mirror folder, which must both be there."""
    if not mirror.is_dir():
        raise UsageError(f"mirror {mirror}: not a folder (expected one holding {' and '.join(ARCHIVE_NAMES)})")
    paths = [mirror / name for name in ARCHIVE_NAMES]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise UsageError(f"mirror {mirror}: missing {', '.join(missing)} (expected {' and '.join(ARCHIVE_NAMES)})")
    return paths


def _urlopen_to_file(url: str, destination: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(destination, "wb") as out:
            promised = response.headers.get("Content-Length")
            received = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                received += out.write(block)
        # http.client returns a short read, not an error, when the server hangs up early.
        if promised is not None and received != int(promised):
            raise NetworkError(f"download interrupted: {url} sent {received} of {promised} bytes; "
                               f"retry, or {MIRROR_HINT}")
    except urllib.error.HTTPError as error:
        raise NetworkError(f"download failed: {url} answered HTTP {error.code} {error.reason}; {MIRROR_HINT}") \
            from None
    except http.client.HTTPException as error:  # e.g. IncompleteRead: the connection dropped mid-file
        raise NetworkError(f"download interrupted: {url} ({type(error).__name__}); retry, or {MIRROR_HINT}") \
            from None
    except (urllib.error.URLError, socket.timeout, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise NetworkError(f"no network: cannot download {url} ({reason}); {MIRROR_HINT}") from None


def download_archives(downloads: Path, fetch: Callable[[str, Path], None] | None = None) -> list[Path]:
    """The upstream archives in `downloads/`, fetched unless a copy with the right md5 is already there.

    `fetch(url, path)` defaults to urllib with a timeout; tests pass their own.
    """
    fetch = fetch or _urlopen_to_file
    downloads.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, md5 in ARCHIVE_MD5.items():
        path = downloads / name
        if not (path.is_file() and file_md5(path) == md5):
            partial = path.with_name(name + ".part")
            try:
                fetch(UPSTREAM_URL.format(name=name), partial)
                verify_md5(partial, md5)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
        paths.append(path)
    return paths


def _check_entry_path(archive: Path, entry: str) -> None:
    # We never extract with zipfile (output paths are rebuilt from checked components), but an archive
    # carrying such entries is not an Omniglot archive and must not be half-trusted.
    parts = PurePosixPath(entry).parts
    if entry.startswith(("/", "\\")) or "\\" in entry or ".." in parts or (parts and ":" in parts[0]):
        raise LayoutError(f"{archive}: unsafe entry path {entry!r} (absolute, '..' or drive); refusing the archive")


def read_archive(archive: Path) -> dict[str, list[tuple[str, bytes]]]:
    """`{"Alphabet/characterNN": [(stem, png bytes), ...]}` of one archive, with its layout and CRCs checked."""
    top = archive.name.removesuffix(".zip")
    characters: dict[str, list[tuple[str, bytes]]] = {}
    try:
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                entry = info.filename
                _check_entry_path(archive, entry)
                if _FINDER_JUNK.search(entry):
                    continue
                if not (entry == top + "/" or entry.startswith(top + "/")):
                    raise LayoutError(f"{archive}: entry {entry!r} is outside {top}/ "
                                      f"(expected {top}/<Alphabet>/<characterNN>/<IIII>_<DD>.png)")
                inner = entry[len(top) + 1:]
                if info.is_dir():
                    if inner.count("/") > 2:
                        raise LayoutError(f"{archive}: unexpected folder {entry!r} (expected at most "
                                          f"{top}/<Alphabet>/<characterNN>/)")
                    continue
                match = _PNG_PATH.fullmatch(inner)
                if not match:
                    raise LayoutError(f"{archive}: unexpected entry {entry!r} "
                                      f"(expected {top}/<Alphabet>/<characterNN>/<IIII>_<DD>.png)")
                if info.file_size > MAX_PNG_BYTES:
                    raise CorruptArchiveError(f"{archive}: entry {entry!r} claims {info.file_size} bytes, "
                                              f"far more than an Omniglot PNG")
                name = f"{match['alphabet']}/{match['character']}"
                characters.setdefault(name, []).append((match["stem"], zipped.read(info)))
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise CorruptArchiveError(f"{archive}: corrupt or truncated zip ({error})") from None
    except FileNotFoundError:
        raise UsageError(f"{archive}: no such file") from None
    if not characters:
        raise LayoutError(f"{archive}: no PNG under {top}/ (expected {top}/<Alphabet>/<characterNN>/<IIII>_<DD>.png)")
    return characters


def content_digest(files: dict[str, bytes]) -> str:
    """sha256 of `sha256sum` lines over `{relative path: bytes}`, paths in C-locale (byte) order.

    Same value as `find images_background images_evaluation -name '*.png' | LC_ALL=C sort | xargs sha256sum
    | sha256sum` in a folder where both archives are unzipped.
    """
    total = hashlib.sha256()
    for path in sorted(files, key=lambda path: path.encode("utf-8")):
        total.update(f"{hashlib.sha256(files[path]).hexdigest()}  {path}\n".encode("utf-8"))
    return total.hexdigest()


def read_archives(archives: list[Path], expected: Expected = OMNIGLOT) -> ArchiveContent:
    """Both archives, checked for layout, counts and (if `expected` has one) the content digest."""
    characters: dict[str, list[tuple[str, bytes]]] = {}
    files: dict[str, bytes] = {}
    alphabet_source: dict[str, Path] = {}
    for archive in archives:
        top = archive.name.removesuffix(".zip")
        for name, drawings in read_archive(archive).items():
            alphabet = name.split("/")[0]
            if alphabet_source.setdefault(alphabet, archive) != archive:
                raise LayoutError(f"alphabet {alphabet!r} is in both {alphabet_source[alphabet]} and {archive}")
            characters[name] = sorted(drawings)
            files.update({f"{top}/{name}/{stem}.png": png for stem, png in drawings})

    _check_counts(characters, len(alphabet_source), expected)
    digest = content_digest(files)
    if expected.content_digest is not None and digest != expected.content_digest:
        raise ChecksumError(f"content digest of {' + '.join(map(str, archives))} is {digest}, expected "
                            f"{expected.content_digest} (some PNG differs from the official Omniglot images)")
    ordered = sorted(characters, key=lambda name: name.encode("utf-8"))
    return ArchiveContent(
        characters=tuple(Character(name, tuple(stem for stem, _ in characters[name]),
                                   tuple(png for _, png in characters[name])) for name in ordered),
        alphabets=len(alphabet_source),
        content_digest=digest,
    )


def _check_counts(characters: dict[str, list], alphabets: int, expected: Expected) -> None:
    if alphabets != expected.alphabets or len(characters) != expected.characters:
        raise ChecksumError(f"archives hold {alphabets} alphabets and {len(characters)} characters, "
                            f"expected {expected.alphabets} and {expected.characters}")
    for name, drawings in characters.items():
        if len(drawings) != expected.drawings_per_character:
            raise ChecksumError(f"character {name} has {len(drawings)} drawings, "
                                f"expected {expected.drawings_per_character}")
