"""Sliding windows over the two spatial axes, from strided slices: what convolution and pooling share.

The Array API standard has neither convolution nor scatter-add. A ``kh × kw`` window sliding
with stride ``(sh, sw)`` over an ``H × W`` image visits, for each kernel offset ``(i, j)``, the
strided slice ``x[:, i : i + sh·(H_out−1) + 1 : sh, j : j + sw·(W_out−1) + 1 : sw, :]`` (in the
working layout, below) of spatial shape ``H_out × W_out``. Gathering windows (im2col) is
therefore ``kh·kw`` slice reads joined by one ``stack``; scattering their gradients back (col2im)
is ``kh·kw`` in-place adds into strided slices (:func:`add_into`; ``.at[].add`` on JAX, whose
arrays are immutable). Overlapping windows (stride < kernel) simply add up.

Working layout. Layers receive and return NCHW batches ``(n, C, H, W)``, but inside they work on
the view ``(C, H, W, n)`` (:func:`to_work`, :func:`from_work`: ``permute_dims``, no copy): every
window slice then keeps the batch as its innermost, contiguous axis (runs of ``n`` or ``W·n``
floats instead of ``W``), which makes the slice reads and the col2im adds about 3x faster on
NumPy, and lets one matrix product cover the whole batch. Outputs are returned as NCHW views
whose memory is batch-last, so the next spatial layer views them without copying; any layer
that needs another order (``Flatten``) copies once.

Core code: no NumPy, no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..checks import check_int
from ..errors import BpxTypeError

if TYPE_CHECKING:
    from ..backend import Backend


def pair(value: Any, name: str, low: int = 1) -> tuple[int, int]:
    """``value`` (an int, or a pair of ints for height and width) as ``(h, w)``, each ≥ ``low``.
    Raises :class:`BpxTypeError`/:class:`BpxValueError` naming ``name``."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != 2:
            raise BpxTypeError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return (check_int(value[0], f"{name}[0]", low), check_int(value[1], f"{name}[1]", low))
    if isinstance(value, bool) or not isinstance(value, int):
        if type(value).__name__.startswith(("int", "uint")):
            value = int(value)
        else:
            raise BpxTypeError(f"{name} must be an int or a pair (height, width), got {value!r}")
    v = check_int(value, name, low)
    return (v, v)


def pair_config(value: tuple[int, int]) -> int | list[int]:
    """A pair as it appears in a layer's configuration: one int when both are equal, else a list."""
    return value[0] if value[0] == value[1] else [value[0], value[1]]


def pair_text(value: tuple[int, int], sep: str = "×") -> str:
    return f"{value[0]}{sep}{value[1]}"


def out_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output length of a window sliding over ``size`` (+ 2·``padding``): ⌊(size + 2p − k)/s⌋ + 1
    (≤ 0 when the kernel does not fit)."""
    return (size + 2 * padding - kernel) // stride + 1


def window(start: int, count: int, step: int) -> slice:
    """The slice of ``count`` positions ``start, start + step, ...``; its stop never passes the
    last position (array-api-strict rejects stops beyond the axis)."""
    return slice(start, start + step * (count - 1) + 1, step)


def offsets(kernel: tuple[int, int]) -> list[tuple[int, int]]:
    """Kernel offsets ``(i, j)`` in row-major order: the order of the stacked window axis."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def to_work(xp: Any, x: Any) -> Any:
    """An NCHW batch ``(n, C, H, W)`` as the working layout ``(C, H, W, n)`` (a view, no copy)."""
    return xp.permute_dims(x, (1, 2, 3, 0))


def from_work(xp: Any, x: Any) -> Any:
    """A working-layout array ``(C, H, W, n)`` as an NCHW batch ``(n, C, H, W)`` (a view, no copy)."""
    return xp.permute_dims(x, (3, 0, 1, 2))


def window_index(i: int, j: int, stride: tuple[int, int], out: tuple[int, int]) -> tuple[slice, ...]:
    """The index of kernel offset ``(i, j)`` into a working-layout array ``(C, H, W, n)``: the
    strided slice of the spatial axes that this offset covers in every window."""
    return (slice(None), window(i, out[0], stride[0]), window(j, out[1], stride[1]), slice(None))


def window_views(x: Any, kernel: tuple[int, int], stride: tuple[int, int], out: tuple[int, int]) -> list[Any]:
    """For each kernel offset (row-major), the strided view of the working-layout array
    ``x`` ``(C, H, W, n)`` that the offset sees in every window: ``kh·kw`` views shaped
    ``(C, H_out, W_out, n)`` (no copies)."""
    return [x[window_index(i, j, stride, out)] for i, j in offsets(kernel)]


def add_into(backend: Backend, target: Any, index: tuple[Any, ...], value: Any) -> Any:
    """``target[index] += value`` and return ``target``: in place on mutable backends (through the
    slice view, without writing it back), a new array from ``.at[index].add`` on JAX."""
    if backend.mutable:
        view = target[index]
        view += value
        return target
    return target.at[index].add(value)


def set_into(backend: Backend, target: Any, index: tuple[Any, ...], value: Any) -> Any:
    """``target[index] = value`` and return ``target`` (a new array on JAX)."""
    if backend.mutable:
        target[index] = value
        return target
    return target.at[index].set(value)


def scatter_windows(backend: Backend, parts: Sequence[Any], shape: tuple[int, ...], kernel: tuple[int, int],
                    stride: tuple[int, int]) -> Any:
    """col2im: the sum of every window's contribution, placed where its window lies.

    ``parts``: ``kh·kw`` working-layout arrays ``(C, H_out, W_out, n)``, one per kernel offset in
    row-major order; the result is a new working-layout array shaped ``shape`` = ``(C, H, W, n)``
    (zeros where no window reaches). One zero array and ``kh·kw`` in-place strided adds
    (1 + kh·kw operations)."""
    out = (parts[0].shape[1], parts[0].shape[2])
    target = backend.zeros(shape)
    for k, (i, j) in enumerate(offsets(kernel)):
        target = add_into(backend, target, window_index(i, j, stride, out), parts[k])
    return target
