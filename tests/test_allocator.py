import ctypes.util

import pytest

from pixelrnn import allocator


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library to tune")
def test_tune_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("PIXELRNN_DEFAULT_MALLOC", "1")
    assert allocator.tune() is False
    monkeypatch.delenv("PIXELRNN_DEFAULT_MALLOC")
    assert allocator.tune() is True
