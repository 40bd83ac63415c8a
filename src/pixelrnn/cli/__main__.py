"""``python -m pixelrnn.cli``: the ``pixelrnn`` command."""

import sys

from . import main

sys.exit(main())
