"""The ``bpx`` command (``python -m bpx`` too): ``train``, ``eval``, ``demo``, ``explain``, ``backends``.

One module per command (``train``, ``evaluate``, ``explain``); what they share: ``options`` (the
parser, value types, option groups), ``data`` (splits, targets), ``devices``, ``files`` (output
paths checked up front), ``threads``, ``text`` (readable descriptions) and ``guard`` (exit
statuses, one-line errors, Ctrl-C).
"""

from .main import main

__all__ = ["main"]
