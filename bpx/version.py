"""bpx's version and the name of its distribution on PyPI (the import name is ``bpx``; the PyPI
project called ``bpx`` is an unrelated one, Battery Parameter eXchange)."""

__version__ = "0.2.0"
DISTRIBUTION = "bpx-backprop"
