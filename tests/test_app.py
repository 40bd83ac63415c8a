"""The functions behind `pixelrnn app` (no Gradio needed), and the command without Gradio."""

import importlib.util
import os
import select
import socket
import subprocess
import sys
import urllib.request
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn import codec
from pixelrnn.app import logic
from pixelrnn.cli import main
from pixelrnn.data import load_dataset
from pixelrnn.errors import CodecError, ConfigError, DataError, ImageError, PixelRNNError
from helpers import tiny_model

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture
def model():
    return tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32)


def images(n=2, seed=0):
    return torch.randint(0, 17, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


def test_numbers_from_the_page_are_checked_in_one_line(model):
    assert logic.whole(3.0, 1, 4, "k") == 3
    for bad in (0, 5, 2.5, "x", None, float("nan")):
        with pytest.raises(ConfigError, match="k must be a whole number from 1 to 4"):
            logic.whole(bad, 1, 4, "k")
    assert logic.temperature_of("0.5") == 0.5
    for bad in (0, -1, "hot", float("inf")):
        with pytest.raises(ConfigError, match="temperature"):
            logic.temperature_of(bad)
    assert logic.class_of(model, 7) is None  # an unconditional model ignores the class field
    conditional = tiny_model("pixelcnn", (1, 8, 8), 17, num_classes=3)
    assert logic.class_of(conditional, 2) == 2
    with pytest.raises(ConfigError, match="from 0 to 2"):
        logic.class_of(conditional, 3)
    with pytest.raises(ConfigError, match="class-conditional"):
        logic.class_of(conditional, None)


def test_sample_draws_a_grid_of_the_count_asked(model):
    grid = logic.sample(model, 4, 1.0, 0)
    assert grid.size == pixelrnn.pictures.grid(torch.zeros(4, 1, 8, 8, dtype=torch.long), 17).size
    assert logic.sample(model, 4, 1.0, 0).tobytes() == grid.tobytes()  # the seed fixes the draws
    with pytest.raises(ConfigError, match="number of samples"):
        logic.sample(model, logic.MAX_SAMPLES + 1, 1.0, 0)
    with pytest.raises(ConfigError, match="seed"):
        logic.sample(model, 1, 1.0, -1)


def test_the_view_enlarges_and_a_painted_block_hides_its_pixel(model):
    image = images(1)[0]
    factor = logic.view_factor(model)
    shown = logic.view(image, model)
    assert factor == 32 and shown.shape == (8 * factor, 8 * factor, 3)
    assert (shown[::factor, ::factor, 0] == logic.to_uint8(image[None], 17)[0, ..., 0]).all()
    layer = np.zeros((*shown.shape[:2], 4), dtype=np.uint8)
    layer[3 * factor + 5, 6 * factor + 1, 3] = 255  # one painted point inside pixel (3, 6)
    layer[7 * factor:, :factor, 3] = 128  # and all of pixel (7, 0)
    hidden = logic.hidden_pixels([layer], model)
    assert hidden.nonzero().tolist() == [[3, 6], [7, 0]]
    with pytest.raises(ConfigError, match="paint"):
        logic.hidden_pixels([np.zeros_like(layer)], model)
    with pytest.raises(ImageError, match="load the image again"):
        logic.hidden_pixels([layer[:-1]], model)


def test_complete_keeps_the_known_pixels(model):
    image = images(1)[0]
    hidden = torch.zeros(8, 8, dtype=torch.bool)
    hidden[4:] = True
    panel = logic.complete(model, image, hidden, 3, 1.0, 0)
    expected = pixelrnn.pictures.completion_picture(image[None], (~hidden).expand(1, 8, 8),
                                                    torch.zeros(1, 3, 1, 8, 8, dtype=torch.long), 17)
    assert panel.size == expected.size
    with pytest.raises(ConfigError, match="load an image first"):
        logic.complete(model, None, hidden, 3, 1.0, 0)


def test_uploads_are_read_losslessly_or_refused_in_one_line(model, tmp_path):
    (path,) = pixelrnn.save_images(images(1), 17, [tmp_path / "a.png"])
    assert torch.equal(logic.read_upload(str(path), model), images(1)[0])
    Image.new("L", (9, 8)).save(tmp_path / "wide.png")
    with pytest.raises(ImageError, match="9x8"):
        logic.read_upload(str(tmp_path / "wide.png"), model)
    with pytest.raises(ImageError, match="upload an image first"):
        logic.read_upload(None, model)


def test_compress_sizes_the_file_against_the_usual_formats_and_decompress_gives_the_images_back(model, tmp_path):
    paths = pixelrnn.save_images(images(2), 17, [tmp_path / "a.png", tmp_path / "b.png"])
    result = logic.compress(model, paths, tmp_path)
    data = result.path.read_bytes()
    assert result.size == len(data) == len(codec.encode(model, images(2), names=["a", "b"]))
    assert f"pixelrnn: {len(data)} bytes" in result.summary
    assert [row[0] for row in result.rows] == ["a.png", "b.png", "all 2"]
    assert result.table().splitlines()[0] == "| image | as uploaded | PNG | WebP lossless | JPEG XL lossless |"
    assert result.rows[-1][1] == sum(p.stat().st_size for p in paths)
    pixels = logic.to_uint8(images(2), 17)
    assert result.rows[-1][2] == sum(logic.png_bytes(p) for p in pixels)
    assert result.rows[-1][3] == sum(logic.webp_bytes(p) for p in pixels)
    grid, archive, line = logic.decompress(model, str(result.path), tmp_path)
    assert line == "decoded 2 images"
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["a.png", "b.png"]
        bundle.extractall(tmp_path / "out")
    decoded = pixelrnn.read_images([tmp_path / "out" / "a.png", tmp_path / "out" / "b.png"], (1, 8, 8), 17)
    assert torch.equal(decoded, images(2))


def test_jpeg_xl_is_lossless_where_cjxl_is_installed(monkeypatch):
    pixels = logic.to_uint8(images(1), 17)[0]
    if logic.shutil.which("cjxl") is None:
        assert logic.jxl_bytes(pixels) is None
        pytest.skip("cjxl is not installed (Debian: libjxl-tools)")
    size = logic.jxl_bytes(pixels)
    assert isinstance(size, int) and 0 < size
    monkeypatch.setattr(logic.shutil, "which", lambda name: None)
    assert logic.jxl_bytes(pixels) is None


def test_compress_and_decompress_refuse_bad_input_in_one_line(model, tmp_path):
    with pytest.raises(ImageError, match="upload one or more"):
        logic.compress(model, [], tmp_path)
    with pytest.raises(ImageError, match="upload a .prnn file"):
        logic.decompress(model, None, tmp_path)
    junk = tmp_path / "junk.prnn"
    junk.write_bytes(b"not a file")
    with pytest.raises(CodecError, match="not a pixelrnn compressed file"):
        logic.decompress(model, str(junk), tmp_path)
    conditional = tiny_model("pixelcnn", (1, 8, 8), 17, num_classes=3)
    paths = pixelrnn.save_images(images(1), 17, [tmp_path / "a.png"])
    with pytest.raises(ConfigError):
        logic.compress(conditional, paths, tmp_path)


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_explain_shows_the_bit_map_and_the_distribution_at_a_clicked_pixel(model):
    image = images(1)[0]
    figure, line = logic.bit_map(model, image)
    expected = pixelrnn.explain.explain(model, image).total_bits_per_dim
    assert figure.mode == "RGB" and line.startswith(f"{expected:.4f} bits/dim")
    factor = logic.view_factor(model)
    _, line = logic.distribution_at(model, image, x=5 * factor + 3, y=2 * factor + 7)
    assert line.startswith(f"pixel 2,5: the image's value {int(image[0, 2, 5])}")
    with pytest.raises(ConfigError, match="outside"):
        logic.distribution_at(model, image, x=0, y=8 * factor)


def test_models_are_loaded_once_and_a_bad_name_is_one_line():
    with pytest.raises(ConfigError, match="choose a model"):
        logic.load_model(" ")
    with pytest.raises(PixelRNNError, match="no checkpoint"):
        logic.load_model("no-such-model")
    assert logic.model_names("runs/x")[0] == "runs/x"
    assert logic.user_error(ConfigError("one line\nand more")) == "one line"
    assert logic.user_error(RuntimeError("a bug")) is None


def test_app_without_gradio_says_what_to_install(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["app"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pixelrnn app: error: pixelrnn app needs gradio; install it with: pip install 'pixelrnn[app]'"


def test_app_refuses_a_bad_port_and_model_in_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["app", "--port", "70000"])
    assert "port from 1 to 65535" in capsys.readouterr().err
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed")
    assert main(["app", "no-such-model"]) == 2
    assert "no checkpoint at no-such-model" in capsys.readouterr().err


def test_app_serves_the_page_on_127_0_0_1_and_prints_its_address():
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed (pip install '.[app]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "pixelrnn", "app", "fashion-pixelcnn", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 120)  # never wait forever on a server that hangs
        assert ready, "pixelrnn app printed nothing in 120 s"
        line = server.stdout.readline()  # the first line the command prints, once the page is served
        assert line.strip() == f"serving the pixelrnn page on http://127.0.0.1:{port} (Ctrl-C stops it)", line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read(2000)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_test_image_is_one_of_the_models_own_test_split():
    try:
        data = load_dataset("fashion-mnist", "test", download=False)
    except DataError as e:
        pytest.skip(f"Fashion-MNIST is not installed ({e})")
    image, label = logic.test_image("fashion-pixelcnn", 3)
    assert torch.equal(image, data.images[3].long()) and label == int(data.labels[3])
    with pytest.raises(ConfigError, match=f"from 0 to {len(data.images) - 1}"):
        logic.test_image("fashion-pixelcnn", len(data.images))
