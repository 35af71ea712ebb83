# hw2/tests/hw2_tasks.py: public tests, provided. Run them with `pytest hw2`; you need not change them.
"""Task builders shared by the HW2 public tests."""

from __future__ import annotations

import torch


def random_task(num_way=5, num_support=2, num_query=3, seed=0, image_size=28):
    """A task with random images whose support and query sets are shuffled (not class-major)."""
    generator = torch.Generator().manual_seed(seed)
    labels_support = torch.arange(num_way).repeat(num_support)[torch.randperm(num_way * num_support,
                                                                                generator=generator)]
    labels_query = torch.arange(num_way).repeat(num_query)[torch.randperm(num_way * num_query, generator=generator)]
    images_support = torch.rand(num_way * num_support, 1, image_size, image_size, generator=generator)
    images_query = torch.rand(num_way * num_query, 1, image_size, image_size, generator=generator)
    return images_support, labels_support, images_query, labels_query
