"""Episode sampling: the provided data paths of HW1 and HW2 against decoding a PNG file per drawing.

    ./kit python bench/episodes.py                 # CPU, default sizes
    ./kit python bench/episodes.py --device cuda   # HW2's sampler keeps the images on the GPU

HW1: batches [B, K+1, N, 784] from `DataLoader(DataGenerator(...), batch_size=B)` (what `hw1.py` trains on), the
reference `DataGenerator` reading the packed in-memory cache (`cache=True`, the default) against the same generator
with `cache=False`, which decodes every drawing's PNG with `image_file_to_array` (CS330's loader). Unit: episodes/s.

HW2: `omniglot.EpisodeSampler.sample(B)` (one gather from the uint8 images already on the device) against a
CS330-style per-task PNG loader (`png_baseline.PngTaskSampler`) that moves each task to the device. Unit: tasks/s.
"""

from __future__ import annotations

import argparse

import common

HW1_SETTINGS = ((5, 1, 128), (20, 5, 16))  # (N, K, B)
HW2_SETTINGS = ((5, 1, 15, 16), (20, 5, 15, 16))  # (N, S, Q, B)


def hw1_contenders(num_classes: int, num_shot: int, batch_size: int, seed: int) -> dict:
    from torch.utils.data import DataLoader

    from load_data import DataGenerator
    from png_baseline import png_data_dir

    def batches(generator):
        iterator = iter(DataLoader(generator, batch_size=batch_size, num_workers=0))

        def one_batch() -> int:
            images, labels = next(iterator)
            assert images.shape == (batch_size, num_shot + 1, num_classes, 784), images.shape
            return batch_size
        return one_batch

    cached = DataGenerator(num_classes, num_shot + 1, "train", config={"seed": seed}, cache=True)
    png = DataGenerator(num_classes, num_shot + 1, "train", config={"seed": seed, "data_dir": png_data_dir("train")},
                        cache=False)
    return {"packed cache (provided)": batches(cached), "PNG per drawing": batches(png)}


def hw2_contenders(num_way: int, num_support: int, num_query: int, batch_size: int, seed: int, device: str) -> dict:
    import omniglot
    from png_baseline import PngTaskSampler

    provided = omniglot.EpisodeSampler(omniglot.split_images("train"), num_way, num_support, num_query, seed,
                                       device=device)
    baseline = PngTaskSampler("train", num_way, num_support, num_query, seed, device)

    def batches(sampler):
        def one_batch() -> int:
            tasks = sampler.sample(batch_size)
            assert tasks[0][0].shape == (num_way * num_support, 1, 28, 28), tasks[0][0].shape
            return batch_size
        return one_batch

    return {"device gather (provided)": batches(provided), "PNG per drawing": batches(baseline)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu", help="device of HW2's sampler (cpu, cuda, cuda:N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("hw1", "hw2"), default=None, help="run one homework's comparison")
    common.common_arguments(parser, seconds=2.0, rounds=3)
    args = parser.parse_args(argv)
    common.apply_common(args)
    device = common.resolve_device(args.device)
    common.use_reference("hw1")
    common.use_reference("hw2")
    print(common.machine_header(device))
    print(f"timing: {args.rounds} alternating rounds of {args.seconds:g} s per contender, median reported")
    # --smoke: the smallest setting of each homework with tiny batches, so that the check takes seconds.
    hw1_settings = [(5, 1, 4)] if args.smoke else HW1_SETTINGS
    hw2_settings = [(5, 1, 2, 2)] if args.smoke else HW2_SETTINGS
    if args.only in (None, "hw1"):
        for num_classes, num_shot, batch_size in hw1_settings:
            label = f"hw1 episodes N={num_classes} K={num_shot} B={batch_size}"
            measured = common.side_by_side(hw1_contenders(num_classes, num_shot, batch_size, args.seed),
                                           args.seconds, args.rounds, "cpu", min_calls=1 if args.smoke else 2)
            common.report(label, "episodes", measured, "packed cache (provided)", "PNG per drawing")
    if args.only in (None, "hw2"):
        for num_way, num_support, num_query, batch_size in hw2_settings:
            label = f"hw2 tasks {num_way}w{num_support}s Q={num_query} B={batch_size} on {device}"
            contenders = hw2_contenders(num_way, num_support, num_query, batch_size, args.seed, device)
            measured = common.side_by_side(contenders, args.seconds, args.rounds, device,
                                           min_calls=1 if args.smoke else 2)
            common.report(label, "tasks", measured, "device gather (provided)", "PNG per drawing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
