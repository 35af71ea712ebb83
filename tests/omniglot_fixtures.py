"""A tiny synthetic Omniglot: two zips laid out like the official ones, with mode '1' 105x105 PNG drawings."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from omniglot_data.archives import Expected

# archive top folder -> alphabet -> number of characters
SMALL_LAYOUT = {
    "images_background": {"Alpha": 2, "Beta_(Test)": 3},
    "images_evaluation": {"Gamma": 2},
}
DRAWINGS = 20


def drawing_png(seed: int, size: tuple[int, int] = (105, 105)) -> bytes:
    """A black-on-white 1-bit PNG with a few random strokes, like an Omniglot drawing."""
    rng = np.random.default_rng(seed)
    image = Image.new("1", size, 1)
    pen = ImageDraw.Draw(image)
    for _ in range(3):
        points = [tuple(int(v) for v in rng.integers(10, min(size) - 10, size=2)) for _ in range(3)]
        pen.line(points, fill=0, width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def archive_entries(layout: dict = SMALL_LAYOUT, drawings: int = DRAWINGS) -> dict[str, dict[str, bytes]]:
    """{zip name: {entry path: bytes}} for `layout`; character ids run globally like Omniglot's IIII."""
    entries: dict[str, dict[str, bytes]] = {}
    character_id = 0
    for top, alphabets in layout.items():
        files = entries.setdefault(f"{top}.zip", {})
        for alphabet, characters in alphabets.items():
            for number in range(1, characters + 1):
                character_id += 1
                for drawer in range(1, drawings + 1):
                    path = f"{top}/{alphabet}/character{number:02d}/{character_id:04d}_{drawer:02d}.png"
                    files[path] = drawing_png(character_id * 100 + drawer)
    return entries


def write_zip(path: Path, files: dict[str, bytes], directory_entries: bool = True) -> Path:
    """Stored (uncompressed) so that tests can corrupt a PNG's bytes in place and hit a CRC error."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zipped:
        folders = sorted({entry.rsplit("/", depth)[0] + "/" for entry in files for depth in (1, 2, 3)
                          if entry.count("/") >= depth}) if directory_entries else []
        for folder in folders:
            zipped.writestr(folder, b"")
        for entry in sorted(files):
            zipped.writestr(entry, files[entry])
    return path


def make_mirror(folder: Path, entries: dict[str, dict[str, bytes]] | None = None) -> Path:
    """A mirror folder holding the two synthetic zips; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, files in (entries if entries is not None else archive_entries()).items():
        write_zip(folder / name, files)
    return folder


def expected_for(layout: dict = SMALL_LAYOUT, drawings: int = DRAWINGS) -> Expected:
    return Expected(alphabets=sum(len(alphabets) for alphabets in layout.values()),
                    characters=sum(sum(alphabets.values()) for alphabets in layout.values()),
                    drawings_per_character=drawings, content_digest=None)
