"""How far a correct-but-different solution's training drifts from the reference's replay: the audit's tolerance.

The accuracy tests check a submission's committed training trajectory by replaying secret segments with the
reference's step (`autograder/scoring/training_audit.py`) and require `||replayed - committed|| / ||committed - start||` to
stay under the grader's AUDIT_TOLERANCE. This script measures that error on EVERY segment of one full training run
of the cpu (or gpu) profile, for the reference itself, the validity corpus's correct alternates and a few of its
bugs (trusted code, so run in trusted workers without the sandbox), and prints a line per variant:

    ./kit python bench/audit_tolerance.py hw1 [--profile cpu] [--variants NAME ...]
    ./kit python bench/audit_tolerance.py hw2

An alternate's errors are float rounding amplified over a segment; a bug's are of the order of the segment's own
movement. The tolerance must sit far above the first and far below the second (docs/results.md quotes the run).
"""

from __future__ import annotations

import argparse
import importlib
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from autograder import GRADERS_DIR, SOLUTIONS_DIR  # noqa: E402
from autograder.assignment import load_assignment  # noqa: E402
from autograder.engine.harness.runner import OutputLog, ProbeRunner  # noqa: E402
from autograder.engine.sandbox import WorkerSpec  # noqa: E402
from autograder.engine.workdir import build_worker_files  # noqa: E402
from validity_corpus import build_submission, load_variants  # noqa: E402

# The variants whose training differs from the reference's by more than the sampler's random calls, and the bugs
# that show the other side of the gap.
DEFAULT_VARIANTS = {
    "hw1": ["reference", "clone_and_zero_gather_nll_loss", "mask_multiply_soft_target_loss_nested_forward",
            "looped_sampler_other_rng_call_order", "loss_over_all_rows", "double_softmax"],
    "hw2": ["reference", "protonet_cdist", "protonet_index_add_expanded_norms", "protonet_vectorised_over_tasks",
            "maml_while_loop_python_floats", "non-squared distance", "create_graph always False"],
}
METRICS_OF = {"hw1": {"": "mann_accuracy"}, "hw2": {"protonet": "protonet_accuracy", "maml": "maml_accuracy"}}


def runner(files: Path, assignment, scratch: Path, data_dir, device: str) -> ProbeRunner:
    spec = WorkerSpec(files_dir=files, probes=assignment.probes, mode="trusted", device=device,
                      limits=assignment.limits, scratch_dir=scratch, data_dir=data_dir)
    return ProbeRunner(spec, 3600, OutputLog(64 * 1024), "reference")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", choices=("hw1", "hw2"))
    parser.add_argument("--profile", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="*", default=None)
    args = parser.parse_args(argv)

    from autograder.engine.grade import default_data_dir

    assignment = load_assignment(GRADERS_DIR / args.assignment)
    sys.path.insert(0, str(assignment.graders_dir))
    metrics = importlib.import_module("metrics")
    audits = []
    real_audit = metrics.audit_trajectory

    def audit_every_segment(**kwargs):  # replay all segments, remember the Audit
        final, audit = real_audit(**{**kwargs, "segments": 10**9})
        audits.append(audit)
        return final, audit

    metrics.audit_trajectory = audit_every_segment
    bugs, alternates = load_variants(ROOT / "tests" / "fixtures" / "validity" / args.assignment)
    by_name = {variant.name: variant for variant in [*bugs, *alternates]}
    root = Path(tempfile.mkdtemp(prefix="audit-tolerance-"))
    budget = assignment.profile(args.profile)
    data_dir = default_data_dir()
    print(f"{args.assignment} {args.profile} profile, device {args.device}, tolerance {metrics.AUDIT_TOLERANCE:g}")
    try:
        reference_files = build_worker_files(root / "reference", assignment.reference_sources(),
                                             assignment.probes_path)
        for name in args.variants or DEFAULT_VARIANTS[args.assignment]:
            if name == "reference":
                files, kind = reference_files, "reference"
            else:
                variant = by_name[name]
                submission = build_submission(SOLUTIONS_DIR / args.assignment, variant, root / "sub" / name,
                                              assignment.student_files)
                sources = {file: submission / file for file in assignment.student_files}
                sources.update(assignment.provided_sources())
                files, kind = build_worker_files(root / "files" / name, sources, assignment.probes_path), variant.kind
            for prefix, metric in METRICS_OF[args.assignment].items():
                if prefix and name != "reference" and kind != "reference" and not _touches(by_name[name], prefix):
                    continue
                student = runner(files, assignment, root / "scratch", data_dir, args.device)
                reference = runner(reference_files, assignment, root / "scratch", data_dir, args.device)
                audits.clear()
                started = time.monotonic()
                try:
                    accuracy = getattr(metrics, metric)(student, reference, budget, args.device, train_seed=0,
                                                        init_seed=secrets.randbits(31), eval_seed=1, data_dir=None)
                    errors = sorted(error for *_, error in audits[0].segments)
                    outcome = (f"accuracy {accuracy:.3f}; {len(errors)} segments: max {errors[-1]:.2e}, "
                               f"median {errors[len(errors) // 2]:.2e}")
                except AssertionError as failure:
                    outcome = f"REJECTED: {str(failure).splitlines()[0][:300]}"
                finally:
                    student.close()
                    reference.close()
                print(f"{kind:9s} {name:48s} {metric:18s} {outcome} ({time.monotonic() - started:.0f} s)",
                      flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _touches(variant, prefix: str) -> bool:
    """Whether a HW2 variant edits the file of this metric's learner (protonet.py or maml.py)."""
    return any(edit["file"].startswith(prefix) for edit in (*variant.edits, *variant.methods))


if __name__ == "__main__":
    sys.exit(main())
