"""Errors of the data pipeline, each with the process exit code the command line reports for it.

Exit codes of `python -m omniglot_data` / `bash data_download.sh`: see EXIT_CODES below (also in `--help`).
"""

from __future__ import annotations

EXIT_CODES = """\
    0  ok: the dataset is built and verified (or was already, and the run only checked it)
    1  unexpected internal error (a bug: please report it with the traceback)
    2  usage: bad argument, or a --mirror / OMNIGLOT_MIRROR folder without the two archives
    3  network: the official archives could not be downloaded (use --mirror DIR or OMNIGLOT_MIRROR)
    4  checksum or content mismatch: md5 of a download, content digest, counts or image sizes differ
    5  corrupt or truncated archive (not a zip, bad CRC, undecodable PNG)
    6  wrong layout: unexpected or unsafe entry paths, duplicate alphabets, missing top folder
    7  disk full or another OS error while writing the build
    8  no complete build in the data folder (for --summary and for loaders)
  130  interrupted (Ctrl-C); nothing half-built is left behind
"""
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


class DataError(Exception):
    """Base of every error the pipeline reports as one line, with its own exit code."""

    exit_code = EXIT_INTERNAL


class UsageError(DataError):
    exit_code = 2


class NetworkError(DataError):
    exit_code = 3


class ChecksumError(DataError):
    """A checksum or a content check (counts, sizes, digest) disagrees with what was expected."""

    exit_code = 4


class CorruptArchiveError(DataError):
    exit_code = 5


class LayoutError(DataError):
    exit_code = 6


class StorageError(DataError):
    exit_code = 7


class DataNotFoundError(DataError, FileNotFoundError):
    """No complete build where one was looked for; the message says how to make one."""

    exit_code = 8
