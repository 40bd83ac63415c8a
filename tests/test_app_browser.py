"""`pixelrnn app` in a real headless browser: Debian's Chromium, driven by Selenium through its chromedriver.

The page serves the shipped Fashion-MNIST PixelCNN. The browser draws samples, uploads an image, paints over its
bottom half with the editor's brush and completes it, compresses an upload and checks the size the page shows
against the codec's, and clicks a pixel for its distribution. Screenshots of each tab go to $PIXELRNN_SCREENSHOTS
(e.g. docs/images, to refresh the README's) or to the test's temporary folder. Skipped, with the reason, where
Gradio, Selenium, Chromium or chromedriver is missing (`.ci/run` installs them: apt-get chromium chromium-driver).
"""

import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn import codec, pretrained

gradio = pytest.importorskip("gradio", reason="gradio is not installed (pip install '.[app]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[dev]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from pixelrnn.app import logic, page  # noqa: E402

MODEL = "fashion-pixelcnn"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                 reason="no headless browser: install Debian's chromium and chromium-driver"),
              pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]  # Gradio's own use of pandas
WAIT = 40  # seconds for one step of the page: a busy 2-core machine completes 2 images in a few


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = page.build(MODEL)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[demo.out_dir])
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1300"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as e:  # noqa: BLE001 - a browser that does not start is a reason to skip, not a failure
        pytest.skip(f"Chromium did not start ({type(e).__name__}: {str(e).splitlines()[0]})")
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path):
    folder = Path(os.environ.get("PIXELRNN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoe(tmp_path) -> tuple[Path, torch.Tensor]:
    """A 28x28 PNG: the first of the images stored beside the shipped model (a sample of its, fixed seed)."""
    image = torch.from_numpy(np.load(pretrained.shipped(MODEL).samples)[:1]).long()
    (path,) = pixelrnn.save_images(image, 256, [tmp_path / "shoe.png"])
    return path, image


def status(driver, name: str) -> str:
    return driver.find_element(By.ID, f"{name}-status").text.strip()


def open_tab(driver, title: str) -> None:
    (tab,) = [t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text.strip() == title]
    tab.click()


def test_the_page_samples_completes_compresses_and_explains(server, browser, screenshots, tmp_path):
    wait = WebDriverWait(browser, WAIT)
    browser.get(server)
    wait.until(lambda d: "pixelcnn of 1x28x28" in d.find_element(By.ID, "model-about").text)

    # Sample: four images
    count = browser.find_element(By.CSS_SELECTOR, "#sample-count input[type=number]")
    count.clear()
    count.send_keys("4\t")
    browser.find_element(By.ID, "sample-button").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sample-output img"))
    assert status(browser, "sample") == ""
    browser.save_screenshot(str(screenshots / "app-sample.png"))

    # Complete: upload, paint the bottom half with the brush, complete twice
    path, image = shoe(tmp_path)
    open_tab(browser, "Complete")
    browser.find_element(By.CSS_SELECTOR, "#complete-upload input[type=file]").send_keys(str(path))
    editor = browser.find_element(By.ID, "complete-editor")
    wait.until(lambda d: not editor.find_element(By.CSS_SELECTOR, "button[aria-label='Clear canvas']")
               .get_attribute("disabled"))
    time.sleep(1)  # the background is drawn on the canvas after the buttons come alive
    editor.find_element(By.CSS_SELECTOR, "button[aria-label=Brush]").click()
    canvas = editor.find_elements(By.CSS_SELECTOR, "canvas")[-1]
    side = logic.VIEW_SIDE  # the view is at least this tall; paint its lower half, from the canvas's centre down
    strokes = ActionChains(browser)
    for dy in range(side // 16, side // 2, side // 16):
        strokes.move_to_element_with_offset(canvas, -side // 2, dy).click_and_hold().move_by_offset(side, 0).release()
    strokes.perform()
    draws = browser.find_element(By.CSS_SELECTOR, "#complete-count input[type=number]")
    draws.clear()
    draws.send_keys("2\t")
    browser.find_element(By.ID, "complete-button").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#complete-output img") or status(d, "complete"))
    assert status(browser, "complete") == ""
    browser.save_screenshot(str(screenshots / "app-complete.png"))

    # Compress: the size shown is the codec's
    open_tab(browser, "Compress")
    browser.find_element(By.CSS_SELECTOR, "#compress-upload input[type=file]").send_keys(str(path))
    time.sleep(1)
    browser.find_element(By.ID, "compress-button").click()
    wait.until(lambda d: "pixelrnn:" in d.find_element(By.ID, "compress-summary").text or status(d, "compress"))
    assert status(browser, "compress") == ""
    shown = int(re.search(r"pixelrnn: (\d+) bytes", browser.find_element(By.ID, "compress-summary").text).group(1))
    assert shown == len(codec.encode(pixelrnn.load_pretrained(MODEL), image, names=["shoe"]))
    browser.save_screenshot(str(screenshots / "app-compress.png"))

    # Explain: the bit map, then the distribution at a clicked pixel
    open_tab(browser, "Explain")
    browser.find_element(By.CSS_SELECTOR, "#explain-upload input[type=file]").send_keys(str(path))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#explain-map img") or status(d, "explain"))
    assert status(browser, "explain") == ""
    view = browser.find_element(By.CSS_SELECTOR, "#explain-view img")
    ActionChains(browser).move_to_element_with_offset(view, 0, view.size["height"] // 4).click().perform()
    wait.until(lambda d: "pixel " in d.find_element(By.ID, "explain-line").text or status(d, "explain"))
    assert status(browser, "explain") == ""
    assert re.match(r"pixel \d+,\d+: the image's value \d+ \(p ", browser.find_element(By.ID, "explain-line").text)
    browser.save_screenshot(str(screenshots / "app-explain.png"))
