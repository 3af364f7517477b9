"""The sample networks in torch. Each takes float32 ``[N, F]`` (a flattened image already
multiplied by its data file's ``scale``) and returns logits ``[N, 10]``, so one evaluator can
feed every sample the same way; the convolutional ones reshape internally."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LeNet300(nn.Module):
    """784-300-100-10 fully connected net with ReLU; layer names follow Caffe's ip1..ip3."""

    def __init__(self) -> None:
        super().__init__()
        self.ip1 = nn.Linear(784, 300)
        self.ip2 = nn.Linear(300, 100)
        self.ip3 = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ip3(torch.relu(self.ip2(torch.relu(self.ip1(x)))))


class LeNet5(nn.Module):
    """Caffe's LeNet, the Deep Compression paper's LeNet-5: 431,080 parameters.

    conv1 20@5x5, max-pool 2, conv2 50@5x5, max-pool 2, ip1 800->500, ReLU, ip2 500->10.
    As in Caffe's ``lenet_train_test.prototxt`` there is no non-linearity after the convs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(self.conv1(x.view(-1, 1, 28, 28)), 2)
        h = F.max_pool2d(self.conv2(h), 2)
        return self.ip2(torch.relu(self.ip1(h.flatten(1))))


class DigitsCNN(nn.Module):
    """A small batch-norm CNN for scikit-learn's 8x8 digits.

    Three blocks of 3x3 conv (no bias: batch norm's beta is the bias), BatchNorm and ReLU,
    the last two followed by a 2x2 max-pool (8x8 -> 4x4 -> 2x2), then fc1 256->64, ReLU,
    fc2 64->10.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(256, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x.view(-1, 1, 8, 8))))
        h = F.max_pool2d(torch.relu(self.bn2(self.conv2(h))), 2)
        h = F.max_pool2d(torch.relu(self.bn3(self.conv3(h))), 2)
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


def parameter_count(net: nn.Module) -> int:
    """Number of trainable parameters (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in net.parameters())
