"""Seeded training: Adam with cosine decay on randomly shifted, rotated and scaled minibatches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True, slots=True)
class Recipe:
    """How one network is trained.

    ``max_shift_px`` is in pixels of a ``side`` x ``side`` image, ``max_rotation`` in radians,
    ``max_scale`` a fraction; each training batch is jittered by up to these amounts.
    """

    side: int
    epochs: int
    batch: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    max_shift_px: float = 2.0
    max_rotation: float = 0.2  # radians, about 11 degrees
    max_scale: float = 0.1


def jitter(x: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Randomly shift, rotate and scale each flattened ``side`` x ``side`` image a little.

    A few thousand digits are few for these nets; without this they memorise the digits (the
    LeNet-300-100 tops out near 94% on the held-out MNIST digits instead of 97.5%).
    """
    n, side = len(x), recipe.side
    angle = (torch.rand(n) * 2 - 1) * recipe.max_rotation
    scale = 1 + (torch.rand(n) * 2 - 1) * recipe.max_scale
    shift = (torch.rand(n, 2) * 2 - 1) * (2 * recipe.max_shift_px / side)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    images = x.view(n, 1, side, side)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False).view(n, side * side)


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe) -> nn.Module:
    """Train ``net`` in place and return it in eval mode.

    Shuffling and jitter draw from torch's global generator: seed it before building the net.
    """
    optimizer = torch.optim.Adam(
        net.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    for _ in range(recipe.epochs):
        for batch in torch.randperm(len(x)).split(recipe.batch):
            optimizer.zero_grad()
            loss_fn(net(jitter(x[batch], recipe)), y[batch]).backward()
            optimizer.step()
        schedule.step()
    return net.eval()
