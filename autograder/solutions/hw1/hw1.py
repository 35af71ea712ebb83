"""Black-box meta-learning on Omniglot (HW1, part 2): a memory-augmented LSTM and, for extra credit, an attention model.

Both learners read an episode as one sequence of (K+1)*N steps, each step a drawing concatenated with its label,
where the query labels are hidden (zeroed). The prediction at every query step is y_ts = f_theta(D_tr, x_ts).

Train and evaluate (see `python hw1.py --help` for every option):

    python hw1/hw1.py --num_classes 2 --num_shot 1

Only `torch` and `load_data` are imported at module level, so importing this file (as the tests and the grader do)
is cheap; the training script's tools (tqdm, TensorBoard, matplotlib) are imported by `main`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from load_data import DRAWINGS_PER_CHARACTER, IMAGE_SIZE, DataGenerator, derive_seed
from omniglot_data.experiment import (
    add_compile_argument,
    add_threads_argument,
    check_new_run_folder,
    configure_threads,
    describe_device,
    format_accuracy,
    format_peak_memory,
    latest_checkpoint,
    load_checkpoint,
    mean_confidence_interval,
    peak_memory,
    plot_learning_curves,
    progress_bar,
    resolve_device,
    run_name,
    save_checkpoint,
    seed_everything,
    write_json,
    write_new_json,
)


def initialize_weights(module: nn.Module) -> None:
    """CS330's initialisation: Xavier-uniform weights and zero biases for Linear and recurrent layers (every layer
    of a stacked LSTM/RNN/GRU, forward and reverse direction)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.LSTM, nn.RNN, nn.GRU)):
        # Layer by layer, hh before ih: a one-layer LSTM draws the same random numbers as CS330's initialisation.
        for layer in range(module.num_layers):
            for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
                nn.init.xavier_uniform_(getattr(module, f"weight_hh_l{layer}{suffix}"))
                nn.init.xavier_uniform_(getattr(module, f"weight_ih_l{layer}{suffix}"))
                if module.bias:
                    nn.init.zeros_(getattr(module, f"bias_hh_l{layer}{suffix}"))
                    nn.init.zeros_(getattr(module, f"bias_ih_l{layer}{suffix}"))


def episode_sequence(input_images: torch.Tensor, input_labels: torch.Tensor) -> torch.Tensor:
    """Turn a batch of episodes into the sequence a black-box learner reads.

    Args:
        input_images: [B, K+1, N, 784] flattened drawings.
        input_labels: [B, K+1, N, N] one-hot labels (the query row K included: it must be hidden here).
    Returns:
        [B, (K+1)*N, 784+N]: step k*N + n is [input_images[:, k, n], label] with the image first, where label is
        input_labels[:, k, n] for the support rows k < K and all zeros for the query row k = K.
    The caller's tensors are left unchanged.
    """
    batch_size, samples_per_class, num_classes, _ = input_images.shape
    # TODO return the sequence [B, (K+1)*N, 784+N] of the docstring: step k*N + n is the image [:, k, n] followed by
    #   its label, row by row (the K support rows in order, then the N queries), with the query labels (row K)
    #   replaced by zeros. `input_labels` must not change: the caller needs the true query labels for the loss.
    ### BEGIN SOLUTION
    hidden_query = torch.zeros_like(input_labels[:, -1:])
    labels = torch.cat([input_labels[:, :-1], hidden_query], dim=1)
    sequence = torch.cat([input_images, labels], dim=-1)
    return sequence.reshape(batch_size, samples_per_class * num_classes, -1)
    ### END SOLUTION


class BlackBoxLearner(nn.Module):
    """What every HW1 learner shares: the episode sizes and the loss on the query predictions."""

    def __init__(self, num_classes: int, samples_per_class: int):
        super().__init__()
        self.num_classes = num_classes  # N
        self.samples_per_class = samples_per_class  # K + 1

    def loss_function(self, preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the query predictions.

        Args:
            preds: [B, K+1, N, N] logits (unnormalised scores), as returned by `forward`.
            labels: [B, K+1, N, N] one-hot labels.
        Returns:
            scalar tensor: the cross-entropy averaged over the B*N query predictions (row K); the support rows
            0..K-1 do not count.
        """
        # TODO return the cross-entropy of the query predictions only (row K of `preds`, logits) against the classes
        #   of row K of the one-hot `labels`, averaged over the B*N queries: a scalar tensor. The support rows must not
        #   count.
        ### BEGIN SOLUTION
        query_logits = preds[:, -1].reshape(-1, self.num_classes)
        query_classes = labels[:, -1].reshape(-1, self.num_classes).argmax(dim=-1)
        return F.cross_entropy(query_logits, query_classes)
        ### END SOLUTION


class MANN(BlackBoxLearner):
    """Memory-augmented network (Santoro et al., 2016, black-box view): two stacked LSTMs read the episode.

    `num_layers` (`--num_layers`, for the depth study of the written questions) stacks that many LSTM layers of
    width H inside layer1, the memory; layer2, the output LSTM of width N, stays one layer. forward does not change.
    """

    def __init__(self, num_classes: int, samples_per_class: int, hidden_dim: int, num_layers: int = 1):
        super().__init__(num_classes, samples_per_class)
        self.layer1 = nn.LSTM(IMAGE_SIZE + num_classes, hidden_dim, num_layers=num_layers, batch_first=True)
        self.layer2 = nn.LSTM(hidden_dim, num_classes, batch_first=True)
        initialize_weights(self.layer1)
        initialize_weights(self.layer2)

    def forward(self, input_images: torch.Tensor, input_labels: torch.Tensor) -> torch.Tensor:
        """Predict the class of every drawing of the episode.

        Args:
            input_images: [B, K+1, N, 784] flattened drawings.
            input_labels: [B, K+1, N, N] one-hot labels; the query row K is hidden from the model.
        Returns:
            [B, K+1, N, N] logits: out[b, k, n] scores the N classes for input_images[b, k, n].
        """
        batch_size, samples_per_class, num_classes, _ = input_images.shape
        # TODO the MANN: read the episode sequence (`episode_sequence`, [B, (K+1)*N, 784+N]) with self.layer1, then
        #   self.layer2, and return their output as [B, K+1, N, N] logits, out[b, k, n] for input_images[b, k, n] (the
        #   sequence's row-by-row order). The model must never see the query labels.
        ### BEGIN SOLUTION
        hidden, _ = self.layer1(episode_sequence(input_images, input_labels))
        logits, _ = self.layer2(hidden)
        return logits.reshape(batch_size, samples_per_class, num_classes, num_classes)
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------- extra credit


def episode_attention_mask(samples_per_class: int, num_classes: int, device=None) -> torch.Tensor:
    """Which sequence steps may NOT attend to which, for the attention learner.

    Returns:
        bool [L, L] with L = (K+1)*N, PyTorch's convention for `mask=` of nn.TransformerEncoder: True at [i, j]
        blocks step i from attending to step j. The first K*N steps are the support set, the last N the queries.
        A support step attends to every support step and to no query; a query step attends to every support step
        and to itself only (never to another query, so each query's prediction depends on D_tr and that query).
    """
    # TODO return the bool [L, L] mask of the docstring (True blocks step i from attending to step j): every step may
    #   attend to the K*N support steps, a query step also to itself, and nothing else.
    ### BEGIN SOLUTION
    length = samples_per_class * num_classes
    num_support = length - num_classes
    blocked = torch.ones(length, length, dtype=torch.bool, device=device)
    blocked[:, :num_support] = False
    queries = torch.arange(num_support, length, device=device)
    blocked[queries, queries] = False
    return blocked
    ### END SOLUTION


class AttentionLearner(BlackBoxLearner):
    """Extra credit: a small transformer encoder over the same episode sequence, with masked attention.

    No positional encoding: the support set is a set (each step carries its own label), and the mask, not the
    position, tells queries from support steps.
    """

    def __init__(self, num_classes: int, samples_per_class: int, hidden_dim: int, num_layers: int = 2,
                 num_heads: int = 4):
        super().__init__(num_classes, samples_per_class)
        self.embed = nn.Sequential(
            nn.Linear(IMAGE_SIZE + num_classes, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim))
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, dim_feedforward=2 * hidden_dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.readout = nn.Sequential(nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, num_classes))

    def forward(self, input_images: torch.Tensor, input_labels: torch.Tensor) -> torch.Tensor:
        """Same contract as `MANN.forward`: [B, K+1, N, 784], [B, K+1, N, N] -> [B, K+1, N, N] logits."""
        batch_size, samples_per_class, num_classes, _ = input_images.shape
        # TODO the learner of the class docstring: embed every step of the episode sequence (`episode_sequence`) with
        #   self.embed ([B, L, H]), run self.encoder with the episode's attention mask (`episode_attention_mask`), read
        #   out N logits per step with self.readout, and return them as [B, K+1, N, N], same order as MANN.forward.
        ### BEGIN SOLUTION
        tokens = self.embed(episode_sequence(input_images, input_labels))
        mask = episode_attention_mask(samples_per_class, num_classes, device=tokens.device)
        logits = self.readout(self.encoder(tokens, mask=mask, is_causal=False))
        return logits.reshape(batch_size, samples_per_class, num_classes, num_classes)
        ### END SOLUTION


MODELS = {"lstm": MANN, "attention": AttentionLearner}


def build_model(name: str, num_classes: int, samples_per_class: int, hidden_dim: int,
                num_layers: int = 1) -> BlackBoxLearner:
    """The learner selected by `--model` (lstm: MANN, attention: AttentionLearner); num_layers: the MANN's memory
    LSTM layers (the attention learner keeps its own two encoder layers)."""
    if name == "lstm":
        return MANN(num_classes, samples_per_class, hidden_dim, num_layers=num_layers)
    if num_layers != 1:
        raise ValueError(f"num_layers: only the lstm model takes it, got {num_layers} for {name}")
    return MODELS[name](num_classes, samples_per_class, hidden_dim)


# ---------------------------------------------------------------------------------------------- training script


def query_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] fraction of each episode's N queries whose highest-scoring class is the true one."""
    return (preds[:, -1].argmax(dim=-1) == labels[:, -1].argmax(dim=-1)).float().mean(dim=-1)


def episode_loader(args, split: str, seed: int, device: torch.device):
    """Batches of `args.meta_batch_size` episodes of `split`, as an endless iterator of tensors on `device`."""
    from torch.utils.data import DataLoader

    generator = DataGenerator(args.num_classes, args.num_shot + 1, split,
                              config={"seed": seed, "data_dir": args.data_dir}, cache=not args.no_cache)
    loader = DataLoader(generator, batch_size=args.meta_batch_size, num_workers=args.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=args.num_workers > 0)
    for images, labels in loader:
        yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model: BlackBoxLearner, batches, num_episodes: int) -> tuple[float, np.ndarray]:
    """Mean query loss and per-episode query accuracies over at least `num_episodes` episodes from `batches`."""
    was_training = model.training
    model.eval()
    losses, accuracies, seen = [], [], 0
    while seen < num_episodes:
        images, labels = next(batches)
        preds = model(images, labels)
        losses.append(model.loss_function(preds, labels) * len(images))
        accuracies.append(query_accuracy(preds, labels))
        seen += len(images)
    model.train(was_training)
    return float(torch.stack(losses).sum()) / seen, torch.cat(accuracies).cpu().numpy()


def prune_checkpoints(log_dir: Path, keep: int = 2) -> None:
    """Delete all but the newest `keep` `state<step>.pt` files of this run."""
    found = sorted((int(path.stem[len("state"):]), path) for path in log_dir.glob("state*.pt")
                   if path.stem[len("state"):].isdigit())
    for _, path in found[:-keep]:
        path.unlink(missing_ok=True)


RUN_SETTINGS = ("model", "num_classes", "num_shot", "hidden_dim", "num_layers", "meta_batch_size", "learning_rate")
# Arguments that do not change what is learned: left out of the run folder's name. The training length is among them:
# a longer run of the same settings continues the same folder with --resume.
NOT_HYPERPARAMETERS = ("train_steps", "eval_every", "num_val_episodes", "checkpoint_every", "resume",
                       "num_test_episodes", "device", "threads", "log_dir", "num_workers", "no_cache", "data_dir",
                       "compile")
RUNS_ROOT = Path("runs") / "hw1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Meta-train a black-box learner (MANN or attention) on N-way K-shot Omniglot, then report its "
                    "query accuracy on the test split with a 95% confidence interval.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--num_classes", type=int, default=2, help="N: classes (characters) per episode")
    parser.add_argument("--num_shot", type=int, default=1, help="K: labelled support drawings per class")
    parser.add_argument("--model", choices=sorted(MODELS), default="lstm",
                        help="lstm: the MANN; attention: the extra-credit transformer learner")
    parser.add_argument("--meta_batch_size", type=int, default=128, help="episodes per training step")
    parser.add_argument("--hidden_dim", type=int, default=128, help="H: hidden size (LSTM memory / model width)")
    parser.add_argument("--num_layers", type=int, default=1,
                        help="LSTM layers of the MANN's memory (layer1; the output LSTM layer2 stays one layer): "
                             "the depth study of the written questions; lstm only")
    parser.add_argument("--learning_rate", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--train_steps", type=int, default=25000, help="total training steps (meta-batches)")
    parser.add_argument("--eval_every", type=int, default=100,
                        help="every this many steps: log the mean training loss/accuracy since the last log and "
                             "the loss/accuracy on the validation episodes (tqdm, TensorBoard, learning curve)")
    parser.add_argument("--num_val_episodes", type=int, default=512,
                        help="validation episodes, the same ones at every evaluation (whole batches): one batch "
                             "gives a noisy curve; 512 cost less than one training step per evaluation")
    parser.add_argument("--checkpoint_every", type=int, default=1000,
                        help="save <log_dir>/state<step>.pt every this many steps (the newest two are kept)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in the run folder (without it, a run folder that "
                             "already holds files is an error)")
    parser.add_argument("--num_test_episodes", type=int, default=1000,
                        help="test-split episodes for the final accuracy (at least this many, whole batches)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=123, help="seed for weights and episode sampling")
    parser.add_argument("--log_dir", default=None,
                        help="folder for TensorBoard logs, checkpoints, results and learning_curve.png (default: "
                             f"{RUNS_ROOT}/<every hyperparameter that differs from its default>, or "
                             f"{RUNS_ROOT}/defaults)")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes for sampling")
    parser.add_argument("--no_cache", action="store_true",
                        help="decode the PNG files for every drawing instead of reading the packed in-memory store")
    parser.add_argument("--data_dir", default=None,
                        help="folder with the built Omniglot data (default: $OMNIGLOT_DATA_DIR or <repo>/data)")
    add_compile_argument(parser, "the learner's forward pass")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    positive = ("num_classes", "num_shot", "meta_batch_size", "hidden_dim", "num_layers", "train_steps",
                "eval_every", "num_val_episodes", "checkpoint_every", "num_test_episodes")
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.num_shot >= DRAWINGS_PER_CHARACTER:
        parser.error(f"--num_shot must be at most {DRAWINGS_PER_CHARACTER - 1} (each character has "
                     f"{DRAWINGS_PER_CHARACTER} drawings, one of which is the query), got {args.num_shot}")
    if args.num_workers < 0:
        parser.error(f"--num_workers must be 0 or more, got {args.num_workers}")
    if args.num_layers != 1 and args.model != "lstm":
        parser.error(f"--num_layers is the MANN's memory depth (--model lstm); --model {args.model} got "
                     f"--num_layers {args.num_layers}")
    if args.log_dir is None:
        args.log_dir = str(RUNS_ROOT / run_name(parser, args, NOT_HYPERPARAMETERS))
    return args


def curve_panels(curves: dict[str, list]) -> dict[str, dict[str, list]]:
    """The learning-curve panels: loss and query accuracy, training and validation."""
    return {metric: {f"{split} {metric}": curves[f"{split} {metric}"] for split in ("train", "val")}
            for metric in ("loss", "accuracy")}


def main(argv=None) -> int:
    from torch.utils.tensorboard import SummaryWriter

    args = parse_args(argv)
    device = resolve_device(args.device)
    args.threads = configure_threads(args.threads)
    print(describe_device(device, args.threads), flush=True)
    seed_everything(args.seed)
    log_dir = Path(args.log_dir)
    settings = {name: getattr(args, name) for name in RUN_SETTINGS}

    model = build_model(args.model, args.num_classes, args.num_shot + 1, args.hidden_dim, args.num_layers).to(device)
    if args.compile:
        # In place: the parameters and state_dict keys stay those of the eager model, so checkpoints mix freely.
        # The LSTM itself stays one ATen/cuDNN call (torch._dynamo leaves RNN modules alone); the gain is mostly
        # for the attention learner.
        model.compile(backend=args.compile)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    start_step, train_seconds = 0, 0.0
    curves = {f"{split} {metric}": [] for split in ("train", "val") for metric in ("loss", "accuracy")}

    check_new_run_folder(log_dir, args.resume)
    print(f"run folder: {log_dir}", flush=True)
    checkpoint = latest_checkpoint(log_dir)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint[1], map_location=device)
        saved_settings = {"num_layers": 1, **state["settings"]}  # checkpoints of older kits: one memory layer
        if saved_settings != settings:
            raise SystemExit(f"--resume: {checkpoint[1]} was trained with {state['settings']}, "
                             f"but this run asks for {settings}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, train_seconds = state["step"], state["train_seconds"]
        # Older kits kept only the query accuracies, as "train" and "validation".
        saved = {{"train": "train accuracy", "validation": "val accuracy"}.get(name, name): points
                 for name, points in state["curves"].items()}
        curves.update({name: [tuple(point) for point in points] for name, points in saved.items()})
        print(f"resuming from {checkpoint[1]} (step {start_step})", file=sys.stderr)
    elif args.resume:
        print(f"--resume: no checkpoint in {log_dir}, starting from step 0", file=sys.stderr)

    # A resumed run continues with a fresh, still seeded, stream of training episodes. The validation episodes are
    # drawn once and reused at every evaluation (and after a resume), so the curve moves only when the model does.
    train_batches = episode_loader(args, "train", derive_seed(args.seed, 0, start_step), device)
    val_source = episode_loader(args, "val", derive_seed(args.seed, 1), device)
    val_set = [next(val_source) for _ in range(-(-args.num_val_episodes // args.meta_batch_size))]
    writer = SummaryWriter(log_dir=str(log_dir))

    def save(step: int) -> None:
        save_checkpoint(log_dir, step, {
            "settings": settings, "step": step, "train_seconds": train_seconds, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "curves": {name: [list(p) for p in points]
                                                            for name, points in curves.items()}})
        prune_checkpoints(log_dir)

    # Running sums stay on the device; they are read (one host sync) only every --eval_every steps.
    window_loss = torch.zeros((), device=device)
    window_accuracy = torch.zeros((), device=device)
    window_steps = 0
    model.train()
    progress = progress_bar(args.train_steps, start_step, f"{args.model} N={args.num_classes} K={args.num_shot}")
    started = time.perf_counter()
    for step in range(start_step, args.train_steps):
        images, labels = next(train_batches)
        preds = model(images, labels)
        loss = model.loss_function(preds, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window_loss += loss.detach()
        window_accuracy += query_accuracy(preds.detach(), labels).mean()
        window_steps += 1
        progress.update(1)

        completed = step + 1
        if completed % args.eval_every == 0 or completed == args.train_steps:
            train_loss, train_accuracy = (window_loss / window_steps).item(), (window_accuracy / window_steps).item()
            val_loss, val_accuracies = evaluate(model, iter(val_set), args.num_val_episodes)
            val_accuracy = float(val_accuracies.mean())
            for name, value in (("train loss", train_loss), ("train accuracy", train_accuracy),
                                ("val loss", val_loss), ("val accuracy", val_accuracy)):
                writer.add_scalar(name.replace(" ", "/"), value, completed)
                curves[name].append((completed, value))
            progress.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_accuracy:.3f}", val_acc=f"{val_accuracy:.3f}")
            window_loss.zero_()
            window_accuracy.zero_()
            window_steps = 0
        if completed % args.checkpoint_every == 0 or completed == args.train_steps:
            train_seconds += time.perf_counter() - started
            started = time.perf_counter()
            save(completed)
    progress.close()
    train_seconds += time.perf_counter() - started
    train_memory = peak_memory(device)
    print(f"trained to step {args.train_steps} in {train_seconds:.0f} s; {format_peak_memory(train_memory)}")

    test_batches = episode_loader(args, "test", derive_seed(args.seed, 2), device)
    test_loss, test_accuracies = evaluate(model, test_batches, args.num_test_episodes)
    mean, half_width = mean_confidence_interval(test_accuracies)
    writer.add_scalar("test/accuracy", mean, args.train_steps)
    writer.close()
    curve_path = plot_learning_curves(
        log_dir / "learning_curve.png", curve_panels(curves),
        title=f"{args.model}, {args.num_classes}-way {args.num_shot}-shot, run {log_dir.name}: query loss and "
              f"accuracy (validation: the same {len(val_set) * args.meta_batch_size} episodes each time)")
    test_memory = peak_memory(device)
    results = {
        **settings, "train_steps": args.train_steps, "seed": args.seed, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "threads": args.threads, "torch_version": torch.__version__, "compile": args.compile,
        "train_seconds": round(train_seconds, 1),
        "test_accuracy": mean, "test_accuracy_ci95": half_width, "test_loss": test_loss,
        "num_test_episodes": int(len(test_accuracies)), "num_val_episodes": len(val_set) * args.meta_batch_size,
        "final_val_accuracy": curves["val accuracy"][-1][1] if curves["val accuracy"] else None,
        "train_peak_memory": train_memory, **test_memory,
    }
    results_path = write_json(log_dir / "results.json", results)
    # results.json is the latest; this file keeps every test (a resumed, longer run tests again).
    test_path = write_new_json(
        log_dir, f"test.episodes_{len(test_accuracies)}.seed_{args.seed}.step_{args.train_steps}", results)
    print(f"test accuracy ({len(test_accuracies)} episodes, {args.num_classes}-way {args.num_shot}-shot): "
          f"{format_accuracy(mean, half_width)} (95% CI); trained {args.train_steps} steps in {train_seconds:.0f} s; "
          f"{format_peak_memory(test_memory)}")
    print(f"wrote {results_path}, {test_path} and {curve_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
