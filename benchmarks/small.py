"""Entry point: ``python -m benchmarks.small [options]`` (see ``--help``; the case can be changed with ``--case``)."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main(default_case="small"))
