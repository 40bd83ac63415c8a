"""Shared fixtures. Shared helpers (tiny models and the like) live in helpers.py."""

import pytest
import torch

import pixelrnn

# Tiny models run tens of thousands of small products; with a second thread each one waits for the other, and
# with anything else busy on the machine the suite slows down many times over. One thread is as fast when quiet.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a CUDA GPU: skip them on machines without one."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=pixelrnn.MODELS)
def model_name(request):
    return request.param
