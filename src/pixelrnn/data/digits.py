"""scikit-learn's bundled 8x8 digits: offline, the default set for quick runs and tests.

1,797 images of 8x8 whose values 0..16 count the set pixels in 4x4 blocks of the original 32x32 bitmaps (UCI
"Optical Recognition of Handwritten Digits", Alpaydin and Kaynak 1998), so the set has 17 levels. It is one pool,
carved into 1,297 train / 200 valid / 300 test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .spec import DataSpec, Rows, take


def read_digits(spec: DataSpec, source: str, folder: Path, download: bool, rows: Rows):
    try:
        from sklearn.datasets import load_digits  # optional: scikit-learn is only needed for this one set
    except ImportError:
        raise DataError("the digits data set needs scikit-learn: pip install 'pixelrnn[digits]'") from None
    bunch = load_digits()
    return take(rows, bunch.images.astype(np.uint8)[:, None], bunch.target)  # (1797, 1, 8, 8), values 0..16


DIGITS = DataSpec("digits", (1, 8, 8), 17, read_digits, num_classes=10,
                  pool={"train": 1297, "valid": 200, "test": 300},
                  source="scikit-learn's digits (UCI, Alpaydin and Kaynak 1998); 1,797 images, offline")
