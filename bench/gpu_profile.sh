#!/usr/bin/env bash
# The GPU runs, two of them, each within about 5 minutes on one GPU:
#
#   OUT=/some/folder bash bench/gpu_profile.sh grading    # 1. grade in the sandbox with --profile gpu --device cuda
#   OUT=/some/folder bash bench/gpu_profile.sh            # 2. train and test every row of the results table
#   OUT=/tmp/smoke bash bench/gpu_profile.sh [grading] --smoke   # either one on any machine: CPU, seconds
#
# 1. bench/gpu_grading.py: both references (full marks) and both blank starters (0) graded inside bubblewrap, and
#    bench/sandbox_view (a sandboxed process sees one GPU and nothing of the host). $OUT/gpu_grading.{json,md}.
# 2. bench/gpu_profile.py: every reference model of both homeworks trained and tested in parallel (ProtoNet and MAML
#    with the batched-tasks step where bench/batched_tasks.py measures it faster on this card), then (time
#    permitting) the benchmark scripts. Results in $OUT:
#      gpu_results.json  everything (machine, commands, steps, accuracies with 95% CI, errors, bench ratios)
#      gpu_results.md    the table for docs/results.md
#      logs.tar.gz       every job's log, results.json, learning curves and TensorBoard events (no checkpoints)
#
# Extra arguments go to the Python driver (see --help there). PYTHON picks the interpreter (default: python3,
# or the kit's .venv when python3 lacks torch). GPU_PROFILE_SECONDS (default 280) bounds the whole run.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
: "${OUT:?set OUT to the folder that receives gpu_results.json, gpu_results.md and logs.tar.gz}"
mkdir -p "$OUT"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

python=${PYTHON:-python3}
if ! "$python" -c 'import torch' 2>/dev/null && [ -x "$root/.venv/bin/python" ]; then
    python="$root/.venv/bin/python"
fi
if [ ! -f data/omniglot28.npz ] || [ ! -f data/omniglot28.json ]; then
    echo "gpu_profile: data/omniglot28.npz and data/omniglot28.json are required (bash data_download.sh builds them)" >&2
    exit 2
fi

seconds=${GPU_PROFILE_SECONDS:-280}
if [ "${1:-}" = grading ]; then
    shift
    timeout --kill-after=5 $((seconds + 60)) "$python" bench/gpu_grading.py --python "$python" \
        --total-seconds "$((seconds + 30))" --out "$OUT" "$@"
    exit $?
fi
# The Python driver stops every job itself; this outer bound only catches the driver hanging.
timeout --kill-after=5 $((seconds + 15)) "$python" bench/gpu_profile.py --python "$python" \
    --total-seconds "$seconds" --out "$OUT" "$@"
status=$?
if [ ! -f "$OUT/gpu_results.json" ]; then
    echo "gpu_profile: the driver ended (exit $status) before writing results" >&2
    echo "{\"error\": \"driver exited with $status before writing results\"}" >"$OUT/gpu_results.json"
fi
exit $status
