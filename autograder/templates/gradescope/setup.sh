#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (with network access).
# It installs bubblewrap, a Python >= 3.11 virtualenv with the kit's pinned packages (torch CPU wheel), and builds the
# Omniglot data (from the official archives inside the bundle when it was built with --include-data: then nothing
# but the package indexes is downloaded); then it locks the graders and reference solution away from any
# unprivileged user.
#
# Layout (AUTOGRADER_ROOT, default /autograder):
#   source/   this bundle: bundle.env, requirements.txt, kit/ (engine + omniglot_data), assignment/ (graders,
#             reference files, provided files), omniglot/ (the two archives, with --include-data); made root-only
#             (0700) at the end
#   venv/     the virtualenv (world-readable: the sandboxed worker runs its interpreter)
#   data/     the Omniglot build (world-readable, bound read-only into the sandbox)
#
# To try it outside Gradescope (as run_autograder): AUTOGRADER_PYTHON=an interpreter that already has the kit's
# packages skips the virtualenv and pip steps; AUTOGRADER_SKIP_APT=1 skips apt-get (bubblewrap installed already).
set -euo pipefail

root="${AUTOGRADER_ROOT:-/autograder}"
source_dir="$root/source"
# shellcheck source=/dev/null
. "$source_dir/bundle.env"
say() { printf '[setup] %s\n' "$*" >&2; }

export DEBIAN_FRONTEND=noninteractive
if [ "${AUTOGRADER_SKIP_APT:-0}" != 1 ]; then
    say "installing bubblewrap and Python"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends bubblewrap util-linux ca-certificates python3 python3-venv >/dev/null
fi

install_python() {  # a virtualenv in $root/venv with the kit's pinned packages
    python=""
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))' 2>/dev/null; then
            python=$(command -v "$candidate")
            break
        fi
    done
    if [ -z "$python" ]; then
        # Ubuntu 22.04 ships Python 3.10; its universe repository has 3.11.
        apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv >/dev/null
        python=$(command -v python3.11)
    fi
    # venv needs ensurepip, packaged separately for each Python on Debian/Ubuntu.
    "$python" -m venv "$root/venv" 2>/dev/null || {
        apt-get install -y -qq --no-install-recommends "$(basename "$python")-venv" >/dev/null
        "$python" -m venv "$root/venv"
}

say "installing Python packages ($TORCH_REQUIREMENT from $TORCH_INDEX_URL)"
"$root/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$root/venv/bin/python" -m pip install --quiet --disable-pip-version-check --index-url "$TORCH_INDEX_URL" \
    "$TORCH_REQUIREMENT"
"$root/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$source_dir/requirements.txt"
chmod -R a+rX "$root/venv"
}

if [ -n "${AUTOGRADER_PYTHON:-}" ]; then
    say "using $AUTOGRADER_PYTHON and its packages (AUTOGRADER_PYTHON)"
    python_bin=$(dirname "$AUTOGRADER_PYTHON")
else
    install_python
    python_bin="$root/venv/bin"
fi

if [ "$NEEDS_OMNIGLOT" = 1 ]; then
    mirror=()
    if [ "${OMNIGLOT_BUNDLED:-0}" = 1 ]; then
        say "building the Omniglot data in $root/data from the archives in the bundle (no download)"
        mirror=(--mirror "$source_dir/omniglot")
    else
        say "downloading and building the Omniglot data in $root/data"
    fi
    PATH="$python_bin:$PATH" bash "$source_dir/kit/data_download.sh" --data-dir "$root/data" "${mirror[@]}" --quiet
fi

chmod 0755 "$root"
[ -d "$root/data" ] && chmod -R a+rX "$root/data"
chmod 0700 "$source_dir"
say "done"
