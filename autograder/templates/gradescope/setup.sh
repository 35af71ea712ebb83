#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (with network access).
# It installs bubblewrap, a Python >= 3.11 virtualenv with the kit's pinned packages (torch CPU wheel), and builds the
# Omniglot data; then it locks the graders and reference solution away from any unprivileged user.
#
# Layout (AUTOGRADER_ROOT, default /autograder):
#   source/   this bundle: bundle.env, requirements.txt, kit/ (engine + omniglot_data), assignment/ (graders,
#             reference files, provided files); made root-only (0700) at the end
#   venv/     the virtualenv (world-readable: the sandboxed worker runs its interpreter)
#   data/     the Omniglot build (world-readable, bound read-only into the sandbox)
set -euo pipefail

root="${AUTOGRADER_ROOT:-/autograder}"
source_dir="$root/source"
# shellcheck source=/dev/null
. "$source_dir/bundle.env"
say() { printf '[setup] %s\n' "$*" >&2; }

export DEBIAN_FRONTEND=noninteractive
say "installing bubblewrap and Python"
apt-get update -qq
apt-get install -y -qq --no-install-recommends bubblewrap util-linux ca-certificates python3 python3-venv >/dev/null

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

if [ "$NEEDS_OMNIGLOT" = 1 ]; then
    say "building the Omniglot data in $root/data"
    PATH="$root/venv/bin:$PATH" bash "$source_dir/kit/data_download.sh" --data-dir "$root/data" --quiet
fi

chmod 0755 "$root"
chmod -R a+rX "$root/venv"
[ -d "$root/data" ] && chmod -R a+rX "$root/data"
chmod 0700 "$source_dir"
say "done"
