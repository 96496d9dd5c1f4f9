"""Every error bpx raises on purpose: one hierarchy under :class:`BpxError`.

Each class also derives from the built-in exception that the same mistake raises elsewhere in
Python (``ValueError`` for a bad value, ``TypeError`` for a wrong type, ...), so existing
``except ValueError`` code keeps working. Messages name the offending argument, value, shape
or file. This module imports nothing from bpx.
"""

from __future__ import annotations


class BpxError(Exception):
    """Base class of every error bpx raises on purpose."""


class BpxValueError(BpxError, ValueError):
    """An argument has the right type but a value bpx cannot use (named in the message)."""


class BpxTypeError(BpxError, TypeError):
    """An argument has a type bpx cannot use (named in the message)."""


class ShapeError(BpxValueError):
    """An array's shape does not fit: the message names the array, the expected and the actual shape."""


class BackendError(BpxError, RuntimeError):
    """A backend cannot be used as asked (unknown name, missing package, missing device)."""


class DeviceMismatchError(BpxValueError):
    """An array lives in another array library or on another device than the network."""


class StateError(BpxError, RuntimeError):
    """An object is used in a state that does not allow it: an optimizer bound to another
    network, a network on a device that holds no data (``meta``), ..."""


class NonFiniteError(BpxError, FloatingPointError):
    """A value became NaN or infinite: a loss during training, a parameter, an initial value."""


#: The name under which training's NaN guard raised before bpx 0.2 (kept for ``except`` clauses).
NonFiniteLossError = NonFiniteError


class CheckpointError(BpxValueError):
    """A file is not a valid bpx checkpoint, or does not fit the network it describes.
    The message names the file and the problem."""


class FileMissingError(BpxError, FileNotFoundError):
    """A file bpx was asked to read does not exist; the message names it (and a likely intended name)."""


class CheckpointWriteError(BpxError, OSError):
    """A checkpoint (or another output file) could not be written; the message names the target path."""


class DatasetError(BpxValueError):
    """A dataset file is missing, unreadable or malformed, or cannot be downloaded."""


class SpecError(BpxValueError):
    """A malformed ``bpx explain`` spec; the message names the source and the field."""


class GradcheckError(BpxError, AssertionError):
    """Raised by :func:`bpx.gradcheck` with ``raise_on_failure=True``; the message is the report."""


class MissingDependencyError(BpxError, ImportError):
    """An optional package is needed for this feature; the message says how to install it."""
