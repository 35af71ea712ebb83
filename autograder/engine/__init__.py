"""The grading engine: everything between a submission and its score, with the trust boundary inside it.

Trusted side: `grade` (one submission: intake, run folder, harness process, results), `submission` (what is taken
from an upload), `harness/` (the pytest plugin and the runners that talk to workers), `results` (fail-closed
scoring of the harness's events), `sandbox` (how a worker is launched: bubblewrap, uid, rlimits), `workdir` (the
folder a worker runs in). Copied into the sandbox, untrusted once there: `worker` (runs probes; fork-server mode)
and `wire` (the frame format both sides speak). Nothing here imports release tooling or class-scale workflows.
"""
