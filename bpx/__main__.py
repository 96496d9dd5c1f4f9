"""``python -m bpx``: the ``bpx`` command."""

import sys

from .cli import main

sys.exit(main())
