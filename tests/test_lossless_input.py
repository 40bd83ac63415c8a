"""Lossless means lossless: every image mode Pillow writes comes back with the same pixels, or is refused.

``compress`` reads files with ``images.read_image``: a palette, bilevel or a fully opaque alpha channel convert
without loss (the opaque alpha is recorded in the file, and decompress writes it back); 16-bit values, transparency, and colour for a grey model would lose information and are refused in
one line. Each case here goes through the real command line, compress then decompress.
"""

import numpy as np
import pytest
from PIL import Image

import pixelrnn
from pixelrnn.cli import main

SIDE = 8
RNG = np.random.RandomState(0)
GREY = RNG.randint(0, 256, (SIDE, SIDE), dtype=np.uint8)
COLOUR = RNG.randint(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
OPAQUE = np.full((SIDE, SIDE), 255, np.uint8)


def picture(case: str) -> Image.Image:
    """An image of each mode; the name says whether it holds colour, transparency or 16-bit values."""
    if case == "1":
        return Image.fromarray(GREY > 127).convert("1")
    if case == "L":
        return Image.fromarray(GREY)
    if case == "P-grey":
        return Image.fromarray(GREY).convert("P")  # a grey image through a palette: grey entries only
    if case == "P-colour":
        return Image.fromarray(COLOUR).quantize(16)
    if case == "RGB":
        return Image.fromarray(COLOUR)
    if case == "RGBA-opaque":
        return Image.fromarray(np.dstack([COLOUR, np.full((SIDE, SIDE), 255, np.uint8)]))
    if case == "RGBA-transparent":
        return Image.fromarray(np.dstack([COLOUR, np.full((SIDE, SIDE), 128, np.uint8)]))
    if case == "LA-opaque":
        return Image.fromarray(np.dstack([GREY, np.full((SIDE, SIDE), 255, np.uint8)]), "LA")
    if case == "LA-transparent":
        return Image.fromarray(np.dstack([GREY, np.zeros((SIDE, SIDE), np.uint8)]), "LA")
    if case == "I;16":
        return Image.fromarray(GREY.astype(np.uint16) * 257)
    raise ValueError(case)


# (case, channels of the model) -> what a lossless reading gives, or None: refused
EXPECTED = {
    ("1", 1): lambda: np.where(GREY > 127, 255, 0), ("L", 1): lambda: GREY, ("P-grey", 1): lambda: GREY,
    ("LA-opaque", 1): lambda: np.dstack([GREY, OPAQUE]), ("P-colour", 3): lambda: np.asarray(picture("P-colour").convert("RGB")),
    ("P-grey", 3): lambda: np.dstack([GREY] * 3),  # a palette's entries are RGB triples
    ("RGB", 3): lambda: COLOUR, ("RGBA-opaque", 3): lambda: np.dstack([COLOUR, OPAQUE]),
}
CASES = ["1", "L", "P-grey", "P-colour", "RGB", "RGBA-opaque", "RGBA-transparent", "LA-opaque", "LA-transparent",
         "I;16"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    out = {}
    for channels in (1, 3):
        model = pixelrnn.build_model("pixelcnn", (channels, SIDE, SIDE), 256, layers=1, hidden=6, head=8)
        pixelrnn.save_checkpoint(root / f"c{channels}", model)
        out[channels] = root / f"c{channels}"
    return out


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("case", CASES)
def test_every_mode_comes_back_the_same_or_is_refused(tmp_path, capsys, models, case, channels):
    source = tmp_path / f"{case}.png"
    picture(case).save(source)
    status = main(["compress", str(models[channels]), str(source), "-o", str(tmp_path / "x.prnn"), "--quiet"])
    out, err = capsys.readouterr()
    expected = EXPECTED.get((case, channels))
    if expected is None:
        assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert str(source) in err and "8-bit" in err, err
        assert not (tmp_path / "x.prnn").exists()
        return
    assert status == 0, err
    assert main(["decompress", str(models[channels]), str(tmp_path / "x.prnn"), "-o", str(tmp_path / "out"),
                 "--quiet"]) == 0
    back = np.asarray(Image.open(tmp_path / "out" / f"{case}.png"))
    assert back.shape == np.asarray(expected()).shape and (back == expected()).all()


def test_a_decompress_that_cannot_write_leaves_no_folder(tmp_path, capsys, models, monkeypatch):
    """A full disk while the images are written: one line, and the folder made for them is gone again."""
    import errno
    import os
    source = tmp_path / "L.png"
    picture("L").save(source)
    assert main(["compress", str(models[1]), str(source), "-o", str(tmp_path / "x.prnn"), "--quiet"]) == 0

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "new" / "sub"
    assert main(["decompress", str(models[1]), str(tmp_path / "x.prnn"), "-o", str(out), "--quiet"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
