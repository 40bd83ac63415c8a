"""``pixelrnn app``: a local demo page in the browser (the optional extra ``app``, which brings Gradio).

The page (:mod:`pixelrnn.app.page`) samples, completes a painted region, compresses against PNG, WebP and JPEG XL,
and shows bit maps and the distribution at a clicked pixel, for any shipped model or run folder. It listens on
127.0.0.1 only, unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from .. import devices
from ..app.logic import INSTALL, load_model
from ..errors import ConfigError
from .common import Shared

HOST = "127.0.0.1"


def port(text: str) -> int:
    """An argparse type: a TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 1 to 65535, e.g. 7860, not {text!r}")
    return value


def add_app(sub, shared: Shared) -> None:
    p = sub.add_parser(
        "app", help="a demo page in the browser: sample, complete, compress, explain (needs gradio)",
        parents=[shared.running],
        description="Serve a page to sample, complete a painted region, compress images against PNG, WebP and "
                    "JPEG XL, and see bit maps and the distribution at a pixel. Needs Gradio: "
                    f"{INSTALL}. Anyone who can reach the address can use the page: run the models, upload "
                    "images, and load any run folder this user can read by its path.")
    p.add_argument("model", nargs="?", help="the model chosen at first: a run folder or shipped name (default: the "
                                            "first shipped model)")
    p.add_argument("--host", default=HOST, help="the address to listen on; 0.0.0.0 exposes the page to the network")
    p.add_argument("--port", type=port, default=7860, help="the port to listen on")
    p.set_defaults(func=cmd_app)


def cmd_app(args) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError(f"pixelrnn app needs gradio; install it with: {INSTALL}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page calls no one
    from ..app import page  # Gradio is an optional extra: imported only here

    device = str(devices.resolve_device(args.device))
    if args.model:
        load_model(args.model, device)  # a bad name or folder is one line before anything listens
    demo = page.build(args.model, device)
    demo.queue(default_concurrency_limit=1)  # one model run at a time: they share the CPU or GPU
    try:
        demo.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True, quiet=True,
                    share=False, inbrowser=False, allowed_paths=[demo.out_dir], max_file_size="64mb")
    except OSError as e:
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({e}); pass another --port") from None
    print(f"serving the pixelrnn page on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0
