"""Test a HW1 run from its newest checkpoint, for a run stopped before its own final test (e.g. at a deadline).

    python bench/hw1_evaluate_checkpoint.py --log_dir runs/hw1/lstm_N2_K1_H128_seed123 --num_classes 2 --num_shot 1

Takes the same flags as `hw1.py` (they must match the run's settings) and writes `<log_dir>/results.json` with the
keys `hw1.py` writes, using the same test episodes (`derive_seed(seed, 2)`) and the same 95% interval, plus
`"stopped_early": true`; `train_steps` is the step of the checkpoint that was tested.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import common

common.use_reference("hw1")

import torch  # noqa: E402

import hw1  # noqa: E402
from load_data import derive_seed  # noqa: E402
from omniglot_data.experiment import (  # noqa: E402
    format_accuracy,
    latest_checkpoint,
    load_checkpoint,
    mean_confidence_interval,
    resolve_device,
    write_json,
)


def main(argv=None) -> int:
    args = hw1.parse_args(argv)
    device = resolve_device(args.device)
    log_dir = Path(args.log_dir)
    found = latest_checkpoint(log_dir)
    if found is None:
        raise SystemExit(f"--log_dir {log_dir}: no checkpoint state<step>.pt to test")
    step, path = found
    state = load_checkpoint(path, map_location=device)
    settings = {name: getattr(args, name) for name in hw1.RUN_SETTINGS}
    if state["settings"] != settings:
        raise SystemExit(f"{path} was trained with {state['settings']}, but the flags say {settings}")
    model = hw1.build_model(args.model, args.num_classes, args.num_shot + 1, args.hidden_dim).to(device)
    model.load_state_dict(state["model"])
    started = time.perf_counter()
    test_loss, accuracies = hw1.evaluate(model, hw1.episode_loader(args, "test", derive_seed(args.seed, 2), device),
                                         args.num_test_episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    validation = state["curves"].get("validation") or []
    results = {
        **settings, "train_steps": step, "seed": args.seed, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "torch_version": torch.__version__, "train_seconds": round(state["train_seconds"], 1),
        "test_accuracy": mean, "test_accuracy_ci95": half_width, "test_loss": test_loss,
        "num_test_episodes": int(len(accuracies)),
        "final_val_accuracy": validation[-1][1] if validation else None,
        "stopped_early": True, "test_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(log_dir / "results.json", results)
    print(f"test accuracy of {path} ({len(accuracies)} episodes): {format_accuracy(mean, half_width)} (95% CI)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
