"""The Gradio page of ``pixelrnn app``: four tabs over the functions of :mod:`pixelrnn.app.logic`.

Sample, Complete (paint the region to hide in an image editor), Compress (sizes against PNG, WebP and JPEG XL; the
compressed file to download; decompression of an uploaded one) and Explain (the bit map, and on a click the
distribution at that pixel). Each tab has one status line: an error the user caused is shown there as one line,
never a traceback; an unexpected one is shown as one line too, with its traceback on the server's console.
Gradio is the optional extra ``app``: ``pip install 'pixelrnn[app]'``.
"""

from __future__ import annotations

import functools
import tempfile
import traceback

import gradio as gr

from . import logic

PAINT = "#ff00ff"  # the brush: a colour that no grey image has


def error_line(error: Exception) -> str:
    """The status line for an error: its one line if the user caused it; else a bug, whose traceback goes to the
    server's console."""
    line = logic.user_error(error)
    if line is None:
        traceback.print_exception(error)
        line = f"internal error ({type(error).__name__}: {error}); this is a bug in pixelrnn, please report it"
    return f"**error:** {line}"


def guarded(outputs: int):
    """Wrap a handler of ``outputs`` outputs: it gains a last output, the tab's status line, which holds the error
    (as one line) or nothing; on an error the other outputs keep what they showed."""
    def wrap(fn):
        @functools.wraps(fn)  # Gradio reads the signature (gr.Progress, gr.SelectData) through __wrapped__
        def run(*args, **kwargs):
            try:
                result = fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - every error is shown in the page, as one line
                return (*[gr.skip()] * outputs, error_line(e))
            result = result if isinstance(result, tuple) else (result,)
            return (*result, "")
        return run
    return wrap


def image_picker(tab: str):
    """The row that brings an image into a tab: an upload, or a test image by its index and a button.

    Returns:
        (upload, index, pick), with element ids ``TAB-upload``, ``TAB-index`` and ``TAB-pick``.
    """
    with gr.Row():
        upload = gr.File(label="upload an image", file_types=["image"], elem_id=f"{tab}-upload")
        with gr.Column():
            index = gr.Number(value=0, precision=0, label="test image", elem_id=f"{tab}-index")
            pick = gr.Button("Use this test image", elem_id=f"{tab}-pick")
    return upload, index, pick


def build(initial: str | None = None, device: str = "cpu") -> gr.Blocks:
    """The page. ``initial``: the model chosen at first (a shipped name or a run folder); ``device``: where the
    models run (compression always runs on the CPU, as the codec requires)."""
    names = logic.model_names(initial)
    out_dir = tempfile.mkdtemp(prefix="pixelrnn-app-")

    def model(name):
        return logic.load_model(name, device)

    with gr.Blocks(title="pixelrnn", analytics_enabled=False) as page:
        page.out_dir = out_dir  # where compressed and decoded files are written, for launch's allowed paths
        gr.Markdown("# pixelrnn\nExact likelihood image models of *Pixel Recurrent Neural Networks* (van den Oord "
                    "et al., 2016): draw samples, complete a painted region, compress losslessly, and look at the "
                    "bits of an image and the model's distribution at a pixel.")
        with gr.Row():
            chosen = gr.Dropdown(names, value=names[0] if names else None, allow_custom_value=True, scale=3,
                                 label="model: a shipped name, or the path of a run folder", elem_id="model")
            label = gr.Number(value=0, precision=0, label="class (class-conditional models only)", scale=1,
                              elem_id="class")
        about = gr.Markdown(elem_id="model-about")

        def show_model(name):  # the model's line doubles as its status line
            try:
                return logic.describe(model(name))
            except Exception as e:  # noqa: BLE001 - shown in the page, as one line
                return error_line(e)

        chosen.change(show_model, chosen, about)
        page.load(show_model, chosen, about)

        with gr.Tab("Sample"):
            with gr.Row():
                count = gr.Slider(1, logic.MAX_SAMPLES, value=16, step=1, label="images", elem_id="sample-count")
                temperature = gr.Number(value=1.0, label="temperature", elem_id="sample-temperature")
                seed = gr.Number(value=0, precision=0, label="seed", elem_id="sample-seed")
            draw = gr.Button("Draw samples", variant="primary", elem_id="sample-button")
            samples = gr.Image(label="samples", type="pil", interactive=False, elem_id="sample-output")
            sample_status = gr.Markdown(elem_id="sample-status")

            @guarded(1)
            def run_sample(name, n, t, s, c, progress=gr.Progress(track_tqdm=True)):
                return logic.sample(model(name), n, t, s, c)

            draw.click(run_sample, [chosen, count, temperature, seed, label], [samples, sample_status])

        with gr.Tab("Complete"):
            gr.Markdown("Upload an image of the model's size or pick a test image, paint over the region to hide, "
                        "and draw completions. The model draws in raster order and conditions on the values before "
                        "each one: the known pixels below the first hidden one are kept but cannot shape the draws.")
            original = gr.State(None)
            upload, index, pick = image_picker("complete")
            editor = gr.ImageEditor(label="paint the region to hide", type="numpy", image_mode="RGBA", sources=[],
                                    layers=False, transforms=[], elem_id="complete-editor",
                                    brush=gr.Brush(colors=[PAINT], default_color=PAINT, color_mode="fixed",
                                                   default_size=24))
            with gr.Row():
                draws = gr.Slider(1, logic.MAX_COMPLETIONS, value=4, step=1, label="completions",
                                  elem_id="complete-count")
                complete_temperature = gr.Number(value=1.0, label="temperature")
                complete_seed = gr.Number(value=0, precision=0, label="seed")
            fill = gr.Button("Complete", variant="primary", elem_id="complete-button")
            panel = gr.Image(label="occluded, completions, original", type="pil", interactive=False,
                             elem_id="complete-output")
            complete_status = gr.Markdown(elem_id="complete-status")

            def into_editor(name, image):
                shown = logic.view(image, model(name))
                return image, {"background": shown, "layers": [], "composite": shown}

            @guarded(2)
            def load_upload(name, path):
                return into_editor(name, logic.read_upload(path, model(name)))

            @guarded(2)
            def load_test(name, k):
                return into_editor(name, logic.test_image(name, k)[0])

            @guarded(1)
            def run_complete(name, image, painted, k, t, s, c, progress=gr.Progress(track_tqdm=True)):
                m = model(name)
                hidden = logic.hidden_pixels((painted or {}).get("layers"), m)
                return logic.complete(m, image, hidden, k, t, s, c)

            upload.upload(load_upload, [chosen, upload], [original, editor, complete_status])
            pick.click(load_test, [chosen, index], [original, editor, complete_status])
            fill.click(run_complete, [chosen, original, editor, draws, complete_temperature, complete_seed, label],
                       [panel, complete_status])

        with gr.Tab("Compress"):
            gr.Markdown("Images of the model's size, coded with the model and an arithmetic coder, against one file "
                        "per image as PNG (Pillow, optimize), WebP lossless (method 6) and JPEG XL lossless (cjxl "
                        "-d 0, where libjxl-tools is installed).")
            pngs = gr.File(label="images to compress", file_count="multiple", file_types=["image"],
                           elem_id="compress-upload")
            squeeze = gr.Button("Compress", variant="primary", elem_id="compress-button")
            sizes = gr.Markdown(elem_id="compress-table")
            summary = gr.Markdown(elem_id="compress-summary")
            packed = gr.File(label="the compressed file", interactive=False, elem_id="compress-file")
            gr.Markdown("Decompress a file written by this page or by `pixelrnn compress`, with the same model.")
            prnn = gr.File(label="a .prnn file", file_types=[".prnn"], elem_id="decompress-upload")
            unpack = gr.Button("Decompress", elem_id="decompress-button")
            decoded = gr.Image(label="decoded images", type="pil", interactive=False, elem_id="decompress-output")
            unpacked = gr.File(label="the decoded PNGs", interactive=False, elem_id="decompress-file")
            compress_status = gr.Markdown(elem_id="compress-status")

            @guarded(3)
            def run_compress(name, files, progress=gr.Progress(track_tqdm=True)):
                result = logic.compress(logic.load_model(name, "cpu"), files, out_dir)
                return result.table(), result.summary, str(result.path)

            @guarded(3)
            def run_decompress(name, path, progress=gr.Progress(track_tqdm=True)):
                grid, archive, line = logic.decompress(logic.load_model(name, "cpu"), path, out_dir)
                return grid, str(archive), line

            squeeze.click(run_compress, [chosen, pngs], [sizes, summary, packed, compress_status])
            unpack.click(run_decompress, [chosen, prnn], [decoded, unpacked, summary, compress_status])

        with gr.Tab("Explain"):
            gr.Markdown("The bit map of an image: -log2 p of each pixel given everything before it in the model's "
                        "order. Click a pixel of the image for the model's distribution there, given the values "
                        "before it, with the image's own value marked.")
            explained = gr.State(None)
            explain_upload, explain_index, explain_pick = image_picker("explain")
            with gr.Row():
                clickable = gr.Image(label="the image: click a pixel", interactive=False, elem_id="explain-view")
                bits = gr.Image(label="bit map", type="pil", interactive=False, elem_id="explain-map")
            belief = gr.Image(label="distribution at the pixel", type="pil", interactive=False,
                              elem_id="explain-distribution")
            explain_status = gr.Markdown(elem_id="explain-status")
            explain_line = gr.Markdown(elem_id="explain-line")

            def explain_image(name, image, c):
                m = model(name)
                figure, line = logic.bit_map(m, image, c)
                return image, logic.view(image, m), figure, line

            @guarded(4)
            def explain_upload_(name, path, c):
                return explain_image(name, logic.read_upload(path, model(name)), c)

            @guarded(4)
            def explain_test(name, k, c):
                return explain_image(name, logic.test_image(name, k)[0], c)

            @guarded(2)
            def explain_click(name, image, c, evt: gr.SelectData):
                x, y = evt.index
                return logic.distribution_at(model(name), image, x, y, c)

            explain_upload.upload(explain_upload_, [chosen, explain_upload, label],
                                  [explained, clickable, bits, explain_line, explain_status])
            explain_pick.click(explain_test, [chosen, explain_index, label],
                               [explained, clickable, bits, explain_line, explain_status])
            clickable.select(explain_click, [chosen, explained, label], [belief, explain_line, explain_status])
    return page
