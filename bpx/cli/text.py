"""Readable descriptions for the command's output: the network, loss, optimizer, schedule, figures."""

from __future__ import annotations

from typing import Any

from ..nn.activations import ACTIVATIONS

LOSS_TITLES = {
    "softmax_cross_entropy": "softmax cross-entropy",
    "binary_cross_entropy": "binary cross-entropy (one output per class)",
    "half_squared_error": "half squared error",
    "mean_squared_error": "mean squared error",
}
_ACTIVATION_NAMES = {cls.__name__: name for name, cls in ACTIVATIONS.items()}


def describe_network(net: Any) -> str:
    """``MLP 784-256-256-10 (relu)``, ``MLP 784-256-10 (relu, batch norm, dropout 0.2)``; other
    stacks as their layer types with the parameter count."""
    layers = net.config()["layers"]
    kinds = [spec.get("type") for spec in layers]
    if "Dense" in kinds and set(kinds) <= {"Dense", "Dropout", "BatchNorm", *_ACTIVATION_NAMES}:
        dense = [spec for spec in layers if spec["type"] == "Dense"]
        sizes = "-".join(str(n) for n in [dense[0]["in_features"], *(spec["out_features"] for spec in dense)])
        hidden = kinds[:len(kinds) - 1 - kinds[::-1].index("Dense")]  # before the output layer
        notes = list(dict.fromkeys(_ACTIVATION_NAMES[k] for k in hidden if k in _ACTIVATION_NAMES))
        if "BatchNorm" in kinds:
            notes.append("batch norm")
        rates = sorted({spec["rate"] for spec in layers if spec["type"] == "Dropout"})
        notes += [f"dropout {rate:g}" for rate in rates]
        output = kinds[len(hidden) + 1:]
        notes += [f"{_ACTIVATION_NAMES[k]} outputs" for k in output if k in _ACTIVATION_NAMES]
        return f"MLP {sizes}" + (f" ({', '.join(notes)})" if notes else "")
    if "Conv2D" in kinds:
        convs = [spec for spec in layers if spec["type"] == "Conv2D"]
        kernels = sorted({_kernel(spec.get("kernel_size")) for spec in convs})
        dense = [str(spec["out_features"]) for spec in layers if spec["type"] == "Dense"]
        shape = "x".join(map(str, net.input_shape))
        return (f"CNN {shape} → conv {'-'.join(str(spec['out_channels']) for spec in convs)} "
                f"({'/'.join(kernels)}) → dense {'-'.join(dense)} · {net.n_parameters:,} parameters")
    names = " → ".join(_ACTIVATION_NAMES.get(str(kind), str(kind)) for kind in kinds)
    return f"{names} · {net.n_parameters:,} parameters"


def _kernel(size: Any) -> str:
    return "x".join(map(str, size)) if isinstance(size, (list, tuple)) else f"{size}x{size}"


def describe_optimizer(optimizer: Any) -> str:
    """``SGD lr 0.05 momentum 0.9``, ``Adam lr 0.001 weight decay 0.0001`` (defaults left out)."""
    hp = optimizer.hyperparameters()
    parts = [type(optimizer).__name__, f"lr {hp['lr']:g}"]
    if hp.get("momentum"):
        parts.append(f"momentum {hp['momentum']:g}" + (" (Nesterov)" if hp.get("nesterov") else ""))
    if hp.get("weight_decay"):
        parts.append(f"weight decay {hp['weight_decay']:g}")
    return " ".join(parts)


def describe_schedule(name: str, schedule: Any, epochs: int) -> str:
    """``cosine schedule over 10 epochs``, ``step schedule (×0.1 every 3 epochs)``, ``constant lr``."""
    if name == "cosine":
        return f"cosine schedule over {epochs} epoch{'s' if epochs != 1 else ''}"
    if name == "step":
        every = f"{schedule.step_size} epochs" if schedule.step_size > 1 else "epoch"
        return f"step schedule (×{schedule.gamma:g} every {every})"
    return "constant lr"


def accuracy_label(loss: str) -> str:
    """What the accuracy figure of a network trained with ``loss`` means, as printed before it."""
    if loss == "binary_cross_entropy":
        return "test subset accuracy"  # all 10 yes/no outputs right (see the README)
    return "test accuracy"


def figures(result: dict[str, float], loss: str) -> str:
    """``test accuracy 98.27%  test loss 0.0581`` from :meth:`bpx.Sequential.evaluate`'s result."""
    parts = []
    if "accuracy" in result:
        parts.append(f"{accuracy_label(loss)} {100 * result['accuracy']:.2f}%")
    parts.append(f"test loss {result['loss']:.4f}")
    return "  ".join(parts)


def progress_text(steps: int, per_epoch: int) -> str:
    """``10 epochs``, ``2 epochs + 37/469 batches``."""
    epochs, batches = divmod(steps, per_epoch)
    text = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    return text + (f" + {batches}/{per_epoch} batches" if batches else "")
