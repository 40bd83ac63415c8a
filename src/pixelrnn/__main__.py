"""``python -m pixelrnn``: the command line, also as torchrun runs it (``torchrun ... -m pixelrnn train ...``)."""

import sys

from .cli import main

sys.exit(main())
