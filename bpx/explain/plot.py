"""Draw an explained step (:class:`bpx.explain.StepTrace`): neurons as circles in columns (inputs,
hidden layers, outputs), every connection labelled with its weight and ∂E/∂w, biases under
their layer. Needs matplotlib (imported only when drawing)."""

from __future__ import annotations

from pathlib import Path

from .record import ParamTrace, StepTrace

_DX, _DY = 3.0, 1.5  # distance between layers, between neurons of a layer


def plot_network(record: StepTrace, path: str | Path, precision: int = 4) -> Path:
    """Write a drawing of ``record``'s network to ``path`` (PNG, SVG, PDF... from the suffix),
    numbers with ``precision`` significant digits. Raises ImportError without matplotlib."""
    from ..plotting import require_matplotlib, save_figure

    plt = require_matplotlib()
    columns = [[name for name, _ in record.inputs], *([nr.name for nr in layer.neurons] for layer in record.layers)]
    height = max(len(c) for c in columns)
    fig, ax = plt.subplots(figsize=(1.3 * _DX * len(columns), 1.3 * _DY * height + 2.0))
    try:
        where = {name: (_DX * x, _DY * ((len(col) - 1) / 2 - y)) for x, col in enumerate(columns)
                 for y, name in enumerate(col)}
        out = {name: values[0] for name, values in record.inputs}
        out |= {nr.name: nr.out[0] for layer in record.layers for nr in layer.neurons}
        for layer in record.layers:
            for k, w in enumerate(layer.weights):
                _edge(ax, w, where[w.source], where[w.targets[0]], k // len(layer.sources), precision)
            biases = "\n".join(_bias_label(b, precision) for b in layer.biases)
            if biases:
                x = where[layer.neurons[0].name][0]
                ax.text(x, -_DY * (height - 1) / 2 - 0.6, biases, ha="center", va="top", fontsize=7, color="0.3")
        for name, (x, y) in where.items():
            ax.add_patch(plt.Circle((x, y), 0.32, facecolor="#dce8f5", edgecolor="#1f4e79", lw=1.5, zorder=3))
            ax.text(x, y, f"{name}\n{out[name]:.{precision}g}", ha="center", va="center", fontsize=8, zorder=4)
        sample = "" if record.n_samples == 1 else f" (outputs of sample 1 of {record.n_samples})"
        ax.set_title(f"{'-'.join(map(str, record.sizes))} network, {record.loss}, lr {record.lr:g}: "
                     f"E = {record.error:.{precision}g} → {record.error_after:.{precision}g} after one step{sample}",
                     fontsize=9)
        ax.set_xlim(-0.8, _DX * (len(columns) - 1) + 0.8)
        ax.set_ylim(-_DY * (height - 1) / 2 - 1.4, _DY * (height - 1) / 2 + 0.6)
        ax.set_aspect("equal")
        ax.axis("off")
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _edge(ax: object, w: ParamTrace, start: tuple[float, float], end: tuple[float, float], target: int,
          precision: int) -> None:
    """A connection with its label; labels of edges into odd- and even-numbered targets sit at
    different distances along the edge, which keeps crossing edges' labels apart."""
    (x0, y0), (x1, y1) = start, end
    ax.plot([x0, x1], [y0, y1], color="0.55", lw=1.0, zorder=1)
    t = 0.28 if target % 2 == 0 else 0.6
    grad = "frozen" if w.grad is None else f"∂E/∂{w.name}={w.grad:.{precision}g}"
    ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), f"{w.name}={w.value:.{precision}g}\n{grad}",
            ha="center", va="center", fontsize=6.5, zorder=2,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})


def _bias_label(b: ParamTrace, precision: int) -> str:
    grad = "frozen" if b.grad is None else f"∂E/∂{b.name}={b.grad:.{precision}g}"
    return f"{b.name}={b.value:.{precision}g} ({grad})"
