"""``pixelrnn app``: a local demo page for a trained model of "Pixel Recurrent Neural Networks" (van den Oord et al.).

Two modules: :mod:`pixelrnn.app.logic` holds every function behind the page (sampling, completion of a painted
region, compression against PNG, WebP and JPEG XL, bit maps and the distribution at a pixel) and imports no Gradio,
so that pytest tests it directly; :mod:`pixelrnn.app.page` lays the page out with Gradio (the optional extra ``app``)
and turns each user error into one line in the page.
"""
