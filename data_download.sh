#!/usr/bin/env bash
# Download (or take from a local mirror), verify and build the Omniglot data used by both homeworks:
#   data/omniglot_resized/<Alphabet>/<characterNN>/<IIII>_<DD>.png   (28x28)
#   data/omniglot28.npz                                              (packed uint8 cache)
#
# usage: bash data_download.sh [--mirror DIR] [--data-dir DIR] [--force] [--summary] [--quiet]
#   --mirror DIR (or OMNIGLOT_MIRROR=DIR): a folder with images_background.zip and images_evaluation.zip,
#   for machines without internet. Safe to rerun: a complete build is only re-checked (well under a second).
#
# Exit codes: 0 ok, 1 internal error, 2 usage, 3 no network, 4 checksum/content mismatch,
# 5 corrupt/truncated zip, 6 wrong layout, 7 disk full/OS error, 8 no build (--summary), 130 interrupted.
# (`python -m omniglot_data --help` explains each.)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Prefer the project's virtualenv; fall back to whatever python is active (e.g. a conda env).
if [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
else
    python="$(command -v python3 || command -v python || true)"
    if [[ -z "$python" ]]; then
        echo "data_download.sh: error: no python found; create the environment first (see README.md)" >&2
        exit 2
    fi
fi
# Stay in the caller's folder so relative --mirror/--data-dir paths mean what the caller meant.
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m omniglot_data "$@"
