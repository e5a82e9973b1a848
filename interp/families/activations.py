"""The activation functions a neuron-map model may use, by the names `specs.ACTIVATIONS` allows."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

ACT_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "quadratic": torch.square,
    "gelu": F.gelu,
    "abs": torch.abs,
    "reverse_relu": lambda x: F.relu(-x),
}
