"""`python -m omniglot_data`: download (or take from a mirror), verify and build the 28x28 Omniglot data."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omniglot_data import errors
from omniglot_data.archives import OMNIGLOT, Expected
from omniglot_data.errors import DataError, DataNotFoundError, UsageError
from omniglot_data.prepare import existing_build, prepare, summary_of
from omniglot_data.store import SETUP_HINT, data_dir as default_data_dir

PROG = "python -m omniglot_data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Download the official Omniglot archives (or take them from a local mirror), verify them, and "
                    "build data/omniglot_resized/ (28x28 PNGs) and data/omniglot28.npz. Idempotent: a second run "
                    "only checks the existing build.",
        epilog=_exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mirror", type=Path, metavar="DIR", default=os.environ.get("OMNIGLOT_MIRROR") or None,
                        help="folder holding images_background.zip and images_evaluation.zip; no download "
                             "(default: $OMNIGLOT_MIRROR)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", default=None,
                        help="where to build (default: $OMNIGLOT_DATA_DIR or <repo>/data)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build is present")
    parser.add_argument("--summary", action="store_true",
                        help="only print the summary of the existing build (exit 8 if there is none)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes resizing images (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary line")
    return parser


def _exit_code_help() -> str:
    return "exit codes:\n" + errors.EXIT_CODES.rstrip()


def main(argv: list[str] | None = None, *, expected: Expected = OMNIGLOT) -> int:
    """Runs the command; returns its exit code. `expected` is for tests on a small synthetic archive pair."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    target = (args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir())
    log = (lambda _: None) if args.quiet else (lambda message: print(f"omniglot_data: {message}", file=sys.stderr))
    try:
        if args.workers < 1:
            raise UsageError(f"--workers {args.workers}: expected at least 1")
        if args.summary:
            manifest = existing_build(target, expected)
            if manifest is None:
                raise DataNotFoundError(f"no complete Omniglot build in {target}; {SETUP_HINT}")
        else:
            mirror = args.mirror.expanduser().resolve() if args.mirror else None
            manifest, built = prepare(target, mirror=mirror, force=args.force, expected=expected,
                                      workers=args.workers, log=log)
            log(f"built in {manifest['build_seconds']} s" if built else f"already built and verified in {target}")
        print(summary_of(manifest, target).line())
        return errors.EXIT_OK
    except DataError as error:
        print(f"omniglot_data: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("omniglot_data: interrupted; nothing half-built looks complete (rerun to build)", file=sys.stderr)
        return errors.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
