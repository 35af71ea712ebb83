"""Build the pristine folder a worker runs in: machinery, probes module, assignment files, omniglot_data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autograder.engine.sandbox import WIRE_FILE, WORKER_FILE

SHIPPED_PACKAGES = ("omniglot_data",)
ENGINE_DIR = Path(__file__).resolve().parent  # worker.py and wire.py live here


def _package_dir(name: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def build_worker_files(dest: Path, files: dict[str, Path], probes: Path) -> Path:
    """Copy into `dest`: worker + wire (under reserved names), the probes module, `files` (name -> source) and
    the provided data package. Everything world-readable, nothing writable: workers get a fresh copy or a
    read-only bind of it."""
    dest.mkdir(parents=True)
    shutil.copyfile(ENGINE_DIR / "worker.py", dest / WORKER_FILE)
    shutil.copyfile(ENGINE_DIR / "wire.py", dest / WIRE_FILE)
    shutil.copyfile(probes, dest / probes.name)
    for name, source in files.items():
        shutil.copyfile(source, dest / name)
    for package in SHIPPED_PACKAGES:
        source = _package_dir(package)
        if source is not None:
            shutil.copytree(source, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for root, dirs, names in os.walk(dest):
        os.chmod(root, 0o755)
        for name in names:
            os.chmod(os.path.join(root, name), 0o644)
    return dest
