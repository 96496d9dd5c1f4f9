"""Where arrays live: :class:`Backend` (array namespace, device, float dtype) and :func:`get_backend`.

Resolution of the backend name: explicit argument > ``$BPX_BACKEND`` > ``"numpy"``. Host data
(lists, NumPy arrays) is accepted everywhere and moved to the device once; arrays of another
library or device are rejected with a message saying how to move them.
"""

from .core import BACKENDS, FLOAT_DTYPES, NAMES, Backend, cuda_device_count, get_backend

__all__ = ["BACKENDS", "FLOAT_DTYPES", "NAMES", "Backend", "cuda_device_count", "get_backend"]
