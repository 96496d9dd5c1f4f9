"""Renderers for :class:`bpx.explain.StepTrace`: plain text, Markdown and LaTeX.

All three show the same derivation, in the order of the textbook worked examples: parameters,
forward pass, total error, backward pass (output layer, then each hidden layer), update, E after
the update, and a summary table. Numbers are printed with ``precision`` significant digits
(``f"{v:.{precision}g}"``). One derivation builder produces blocks (headings, paragraphs,
equations, tables); a notation object writes the symbols (Unicode for text and Markdown,
TeX for LaTeX) and each renderer lays out the blocks.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from ..errors import BpxValueError
from .record import LayerTrace, Neuron, ParamTrace, StepTrace

FORMATS = ("text", "markdown", "latex")

#: ∂E/∂out = c·(out − target) for the losses with a simple closed form: c = num / den(n, k).
_LOSS_GRADIENT = {"half_squared_error": lambda n, k: (1, n), "mean_squared_error": lambda n, k: (2, n * k)}

Block = tuple[str, Any]


class _Unicode:
    """Symbols for plain text and Markdown: ``net_h1``, ``∂E/∂w5``, ``w5⁺``; sample s as ``[s]``."""

    mul, times, plus, minus, eta, delta, to = "·", " × ", " + ", " − ", "η", "δ", " → "

    def __init__(self, precision: int, n_samples: int) -> None:
        self.precision, self.n = precision, n_samples

    def num(self, v: float) -> str:
        return f"{v:.{self.precision}g}"

    def fac(self, v: float) -> str:
        """A number inside a sum or product (negative numbers in parentheses)."""
        return f"({self.num(v)})" if v < 0 else self.num(v)

    def sample(self, s: int | str | None) -> str:
        return "" if s is None or self.n == 1 else f"[{s + 1 if isinstance(s, int) else s}]"

    def name(self, name: str) -> str:
        return name

    def word(self, word: str) -> str:
        return word

    def var(self, kind: str, neuron: str, s: int | str | None = None) -> str:
        symbol = self.delta if kind == "delta" else self.word(kind)
        return self.sub(symbol, self.name(neuron)) + self.sample(s)

    def sub(self, base: str, sub: str) -> str:
        return f"{base}_{sub}"

    def param(self, name: str, new: bool = False) -> str:
        return self.name(name) + ("⁺" if new else "")

    def total(self, after: int = 0) -> str:
        return "E_total" + ("" if not after else "⁺" if after == 1 else f" after {after} steps")

    def d(self, num: str, den: str) -> str:
        return f"∂{num}/∂{den}"

    def f(self, activation: str, arg: str, index: int | None = None) -> str:
        return f"{activation}{'' if index is None else f'_{index}'}({arg})"

    def half_sq(self, a: str, b: str) -> str:
        return f"½({a}{self.minus}{b})²"

    def frac(self, a: Any, b: Any) -> str:
        return f"({a}/{b})"

    def sq(self, a: str) -> str:
        return f"{a}²"

    def sum_s(self, expr: str) -> str:
        return f"Σ_s {expr}"

    def math(self, s: str) -> str:
        return s

    def text(self, s: str) -> str:
        return s

    def code(self, s: str) -> str:
        return s


class _Markdown(_Unicode):
    def code(self, s: str) -> str:
        return f"`{s}`"


class _TeX(_Unicode):
    """Symbols for LaTeX (amsmath): ``\\mathrm{net}_{h_{1}}``, ``\\frac{\\partial E}{\\partial w_{5}}``."""

    mul, times, plus, minus, eta, delta, to = " \\cdot ", " \\times ", " + ", " - ", "\\eta", "\\delta", " \\to "

    def num(self, v: float) -> str:
        text = super().num(v)
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa} \\times 10^{{{int(exponent)}}}" if exponent else text

    def sample(self, s: int | str | None) -> str:
        return "" if s is None or self.n == 1 else f"^{{({s + 1 if isinstance(s, int) else s})}}"

    def name(self, name: str) -> str:
        head = name.rstrip("0123456789_")
        return f"{head}_{{{name[len(head):].replace('_', ',')}}}" if head != name else name

    def word(self, word: str) -> str:
        return word if len(word) == 1 else f"\\mathrm{{{word}}}"

    def param(self, name: str, new: bool = False) -> str:
        return self.name(name) + ("^{+}" if new else "")

    def sub(self, base: str, sub: str) -> str:
        return f"{base}_{{{sub}}}"

    def total(self, after: int = 0) -> str:
        return "E_{\\mathrm{total}}" + ("" if not after else "^{+}" if after == 1 else f"^{{[{after}]}}")

    def d(self, num: str, den: str) -> str:
        return f"\\frac{{\\partial {num}}}{{\\partial {den}}}"

    def f(self, activation: str, arg: str, index: int | None = None) -> str:
        op = {"sigmoid": "\\sigma", "tanh": "\\tanh"}.get(activation, f"\\operatorname{{{self.text(activation)}}}")
        return f"{op}{'' if index is None else f'_{{{index}}}'}({arg})"

    def half_sq(self, a: str, b: str) -> str:
        return f"\\tfrac{{1}}{{2}}({a}{self.minus}{b})^{{2}}"

    def frac(self, a: Any, b: Any) -> str:
        return f"\\tfrac{{{a}}}{{{b}}}"

    def sq(self, a: str) -> str:
        return f"{a}^{{2}}"

    def sum_s(self, expr: str) -> str:
        return f"\\sum_{{s}} {expr}"

    def math(self, s: str) -> str:
        return f"${s}$"

    def text(self, s: str) -> str:
        return re.sub(r"([_%&#$])", r"\\\1", s)

    def code(self, s: str) -> str:
        return f"\\texttt{{{self.text(s)}}}"


# ---------------------------------------------------------------------- the derivation
def _derivation(r: StepTrace, nt: _Unicode) -> list[Block]:
    values = {name: v for name, v in r.inputs} | {nr.name: nr.out for layer in r.layers for nr in layer.neurons}
    inputs = {name for name, _ in r.inputs}
    blocks: list[Block] = [("title", "Backpropagation: one training step, every number"), ("para", _intro(r, nt))]
    blocks += _parameters(r, nt)
    for layer in r.layers:
        blocks += [("heading", f"Forward pass: {_layer_title(layer, r)}"), ("eqs", _forward(layer, nt, values, inputs))]
    blocks += _total_error(r, nt)
    for position in range(len(r.layers) - 1, -1, -1):
        blocks += _backward(r, position, nt, values, inputs)
    blocks += _update(r, nt)
    blocks += _summary(r, nt)
    return blocks


def _intro(r: StepTrace, nt: _Unicode) -> str:
    parts = [f"inputs {', '.join(name for name, _ in r.inputs)}"]
    parts += [f"{_layer_title(layer, r)} ({layer.activation})" for layer in r.layers]
    text = (nt.text(f"A {'-'.join(map(str, r.sizes))} network: {'; '.join(parts)}. Loss {r.loss}, one step of "
                    "gradient descent with learning rate ") + nt.math(f"{nt.eta} = {nt.num(r.lr)}")
            + nt.text(f", {r.dtype}, {r.n_samples} sample{'s' if r.n_samples > 1 else ''}."))
    if r.n_samples > 1:
        text += (nt.text(" E is the mean over the samples, so each per-sample ") + nt.math(nt.delta)
                 + nt.text(" carries the factor 1/" + str(r.n_samples) + " and the gradients sum over samples "
                           "(sample s is marked ") + nt.math("x" + nt.sample("s")) + nt.text(")."))
    return text


def _layer_title(layer: LayerTrace, r: StepTrace) -> str:
    names = ", ".join(nr.name for nr in layer.neurons)
    if layer.role == "output":
        return f"output layer {names}"
    return f"hidden layer {names}" if len(r.layers) == 2 else f"hidden layer {layer.number} {names}"


def _parameters(r: StepTrace, nt: _Unicode) -> list[Block]:
    note = ("Weights are numbered layer by layer, then by target neuron, then by input. Location "
            "layers[k].weight[i, j] is row i (input), column j (neuron) of net.layers[k].weight.value, "
            "shaped (in, out); layers[k].bias[:] is a bias shared by the layer's neurons.")
    rows = [[nt.math(nt.param(p.name)), nt.code(p.location), nt.math(_connects(p, nt)), nt.math(nt.num(p.value)),
             "yes" if p.trainable else "frozen"] for p in r.parameters]
    return [("heading", "Parameters"), ("para", nt.text(note)),
            ("table", (["parameter", "location", "connects", "value", "trained"], rows))]


def _connects(p: ParamTrace, nt: _Unicode) -> str:
    source = nt.name(p.source) if p.source else "1"
    return f"{source}{nt.to}{', '.join(nt.name(t) for t in p.targets)}"


def _incoming(layer: LayerTrace, neuron: Neuron) -> tuple[list[ParamTrace], ParamTrace | None]:
    weights = [w for w in layer.weights if w.targets == (neuron.name,)]
    bias = next((b for b in layer.biases if neuron.name in b.targets), None)
    return weights, bias


def _forward(layer: LayerTrace, nt: _Unicode, values: dict[str, tuple[float, ...]],
             inputs: set[str]) -> list[list[str]]:
    def source(name: str, s: int) -> str:
        return nt.name(name) + nt.sample(s) if name in inputs else nt.var("out", name, s)

    eqs = []
    for j, neuron in enumerate(layer.neurons):
        weights, bias = _incoming(layer, neuron)
        for s in range(len(neuron.net)):
            symbolic = [nt.param(w.name) + nt.mul + source(w.source, s) for w in weights]
            numeric = [nt.fac(w.value) + nt.times + nt.fac(values[w.source][s]) for w in weights]
            if bias is not None:
                symbolic.append(nt.param(bias.name))
                numeric.append(nt.fac(bias.value))
            eqs.append([nt.var("net", neuron.name, s), nt.plus.join(symbolic), nt.plus.join(numeric),
                        nt.num(neuron.net[s])])
            net = nt.var("net", neuron.name, s)
            if layer.activation == "softmax":  # every output depends on all nets of the layer
                rhs = nt.f("softmax", ", ".join(nt.var("net", nr.name, s) for nr in layer.neurons), j + 1)
            else:
                rhs = net if layer.activation == "identity" else nt.f(layer.activation, net)
            eqs.append([nt.var("out", neuron.name, s), rhs, nt.num(neuron.out[s])])
    return eqs


def _total_error(r: StepTrace, nt: _Unicode) -> list[Block]:
    outputs = r.layers[-1].neurons
    n, k = r.n_samples, len(outputs)
    samples = range(n)
    eqs = [[nt.var("target", o.name, s), nt.num(o.target[s])] for o in outputs for s in samples]
    if outputs[0].error is None:
        eqs.append([nt.total(), nt.num(r.error)])
        return [("heading", "Total error"), ("para", nt.text(f"E is the {r.loss} loss of the outputs.")),
                ("eqs", eqs)]
    for o in outputs:
        for s in samples:
            target, out = nt.var("target", o.name, s), nt.var("out", o.name, s)
            if r.loss == "half_squared_error":
                sym, num = nt.half_sq(target, out), nt.half_sq(nt.num(o.target[s]), nt.fac(o.out[s]))
            else:
                sym = nt.sq(f"({target}{nt.minus}{out})") + f"/{k}"
                num = nt.sq(f"({nt.num(o.target[s])}{nt.minus}{nt.fac(o.out[s])})") + f"/{k}"
            eqs.append([nt.var("E", o.name, s), sym, num, nt.num(o.error[s])])
    terms = [nt.var("E", o.name, s) for s in samples for o in outputs]
    numbers = [nt.fac(o.error[s]) for s in samples for o in outputs]
    if n == 1:
        eqs.append([nt.total(), nt.plus.join(terms), nt.plus.join(numbers), nt.num(r.error)])
    else:
        mean = nt.frac(1, n) + nt.mul
        eqs.append([nt.total(), f"{mean}({nt.plus.join(terms)})", f"{mean}({nt.plus.join(numbers)})",
                    nt.num(r.error)])
    return [("heading", "Total error"), ("eqs", eqs)]


def _backward(r: StepTrace, position: int, nt: _Unicode, values: dict[str, tuple[float, ...]],
              inputs: set[str]) -> list[Block]:
    layer = r.layers[position]
    following = r.layers[position + 1] if position + 1 < len(r.layers) else None
    n = r.n_samples
    eqs: list[list[str]] = []
    frozen: list[str] = []
    for neuron in layer.neurons:
        for s in range(n):
            eqs.append(_d_out(r, neuron, s, following, nt))
            eqs += _slope_and_delta(layer.activation, neuron, s, nt)
        weights, bias = _incoming(layer, neuron)
        own_bias = [bias] if bias is not None and bias.targets == (neuron.name,) else []
        for p in (*weights, *own_bias):
            if not p.trainable:
                frozen.append(p.name)
                continue
            eqs.append(_gradient(p, neuron, nt))
    frozen += [b.name for b in layer.biases if len(b.targets) > 1]
    blocks: list[Block] = [("heading", f"Backward pass: {_layer_title(layer, r)}")]
    if following is not None:
        blocks.append(("para", nt.text("The error reaching a hidden neuron sums, over the neurons it feeds, their ")
                       + nt.math(nt.delta) + nt.text(" times the connecting weight (its value before the update).")))
    if layer.activation == "softmax":
        blocks.append(("para", nt.text("Softmax couples its outputs, so ")
                       + nt.math(f"{nt.delta} = {nt.d('E', nt.word('net'))}")
                       + nt.text(" comes from the layer's backward (a Jacobian-vector product), "
                                 "not from two factors.")))
    blocks.append(("eqs", eqs))
    if frozen:
        blocks.append(("para", nt.text(f"Frozen (no gradient, not updated): {', '.join(frozen)}.")))
    return blocks


def _gradient(p: ParamTrace, neuron: Neuron, nt: _Unicode) -> list[str]:
    """∂E/∂p as the chain rule (summed over samples when there are several) and its value."""
    s = None if len(p.factors) == 1 else "s"
    out, net, wrt = nt.var("out", neuron.name, s), nt.var("net", neuron.name, s), nt.param(p.name)
    chain = [nt.d("E", net), nt.d(net, wrt)] if neuron.slope is None else \
        [nt.d("E", out), nt.d(out, net), nt.d(net, wrt)]
    products = [nt.times.join(nt.fac(v) for v in f if v is not None) for f in p.factors]
    symbolic = nt.mul.join(chain)
    return [nt.d("E", wrt), symbolic if s is None else nt.sum_s(symbolic), nt.plus.join(products), nt.num(p.grad)]


def _d_out(r: StepTrace, neuron: Neuron, s: int, following: LayerTrace | None, nt: _Unicode) -> list[str]:
    lhs = nt.d("E", nt.var("out", neuron.name, s))
    value = nt.num(neuron.d_out[s])
    if following is not None:
        links = [(w, next(nr for nr in following.neurons if nr.name == w.targets[0]))
                 for w in following.weights if w.source == neuron.name]
        symbolic = nt.plus.join(nt.var("delta", nr.name, s) + nt.mul + nt.param(w.name) for w, nr in links)
        numeric = nt.plus.join(nt.fac(nr.delta[s]) + nt.times + nt.fac(w.value) for w, nr in links)
        return [lhs, symbolic, numeric, value]
    form = _LOSS_GRADIENT.get(r.loss)
    if form is None:
        return [lhs, value]
    c, den = form(r.n_samples, len(r.layers[-1].neurons))
    scale = "" if c == den == 1 else nt.frac(c, den) + nt.mul
    symbolic = f"{nt.var('out', neuron.name, s)}{nt.minus}{nt.var('target', neuron.name, s)}"
    numeric = f"{nt.num(neuron.out[s])}{nt.minus}{nt.fac(neuron.target[s])}"
    if scale:
        symbolic, numeric = f"{scale}({symbolic})", f"{scale}({numeric})"
    return [lhs, symbolic, numeric, value]


def _slope_and_delta(activation: str, neuron: Neuron, s: int, nt: _Unicode) -> list[list[str]]:
    out, net, delta = nt.var("out", neuron.name, s), nt.var("net", neuron.name, s), nt.var("delta", neuron.name, s)
    if neuron.slope is None:
        return [[delta, nt.d("E", net), nt.num(neuron.delta[s])]]
    slope = [nt.d(out, net)]
    o = nt.num(neuron.out[s])
    if activation == "sigmoid":
        slope += [f"{out}(1{nt.minus}{out})", f"{nt.fac(neuron.out[s])}{nt.times}(1{nt.minus}{o})"]
    elif activation == "tanh":
        slope += [f"1{nt.minus}{nt.sq(out)}", f"1{nt.minus}{nt.sq(nt.fac(neuron.out[s]))}"]
    slope.append(nt.num(neuron.slope[s]))
    chain = nt.d("E", out) + nt.mul + nt.d(out, net)
    numbers = nt.fac(neuron.d_out[s]) + nt.times + nt.fac(neuron.slope[s])
    return [slope, [delta, nt.d("E", net), chain, numbers, nt.num(neuron.delta[s])]]


def _update(r: StepTrace, nt: _Unicode) -> list[Block]:
    eqs = []
    for p in r.parameters:
        if p.trainable:
            name = nt.param(p.name)
            eqs.append([nt.param(p.name, new=True), f"{name}{nt.minus}{nt.eta}{nt.mul}{nt.d('E', name)}",
                        f"{nt.num(p.value)}{nt.minus}{nt.num(r.lr)}{nt.times}{nt.fac(p.grad)}", nt.num(p.updated)])
    frozen = [p for p in r.parameters if not p.trainable]
    blocks: list[Block] = [
        ("heading", "Update"),
        ("para", nt.text("Gradient descent moves every trainable parameter against its gradient, all at once, "
                         "with the gradients above (computed from the parameters before the update): ")
         + nt.math(f"{nt.param('p', new=True)} = p{nt.minus}{nt.eta}{nt.mul}{nt.d('E', 'p')}")
         + nt.text(".")),
        ("eqs", eqs),
    ]
    if frozen:
        blocks.append(("para", nt.text("Unchanged (frozen): ")
                       + ", ".join(nt.math(f"{nt.param(p.name)} = {nt.num(p.value)}") for p in frozen) + "."))
    after = [[nt.total(1), nt.num(r.error_after)]]
    if r.steps > 1:
        after.append([nt.total(r.steps), nt.num(r.error_after_steps)])
    text = (f"The updated network's error on the same data (forward pass again); before the step it was "
            f"{r.error:.{nt.precision}g}.")
    if r.steps > 1:
        text += f" Then {r.steps - 1} more training step(s) with the same data and learning rate."
    blocks += [("heading", "Error after the update"), ("para", nt.text(text)), ("eqs", after)]
    return blocks


def _summary(r: StepTrace, nt: _Unicode) -> list[Block]:
    many = r.n_samples > 1
    head = ["neuron", *(["sample"] if many else []), "net", "out", nt.math(nt.d("E", nt.word("out"))),
            nt.math(nt.delta)]
    rows = [[nt.math(nt.name(nr.name)), *([str(s + 1)] if many else []),
             *(nt.math(nt.num(v[s])) for v in (nr.net, nr.out, nr.d_out, nr.delta))]
            for layer in r.layers for nr in layer.neurons for s in range(r.n_samples)]
    grad = nt.math(nt.d("E", "p"))
    params = [[nt.math(nt.param(p.name)), nt.code(p.location), nt.math(nt.num(p.value)),
               nt.math(nt.num(p.grad)) if p.grad is not None else "frozen", nt.math(nt.num(p.updated))]
              for p in r.parameters]
    return [("heading", "Summary"), ("table", (head, rows)),
            ("table", (["parameter", "location", "value", grad, "updated"], params))]


# ---------------------------------------------------------------------- layouts
def render_text(record: StepTrace, precision: int = 9) -> str:
    """The derivation as plain text (Unicode symbols)."""
    lines: list[str] = []
    for kind, body in _derivation(record, _Unicode(_check_precision(precision), record.n_samples)):
        if kind in ("title", "heading"):
            lines += ["", body, ("=" if kind == "title" else "-") * len(body)]
        elif kind == "para":
            lines += ["", *textwrap.wrap(body, 100)]
        elif kind == "eqs":
            lines += [""] + ["  " + " = ".join(eq) for eq in body]
        else:
            lines += ["", *_text_table(*body)]
    return "\n".join(lines).strip("\n") + "\n"


def render_markdown(record: StepTrace, precision: int = 9) -> str:
    """The derivation as Markdown: headings, equations in fenced blocks, pipe tables."""
    out: list[str] = []
    for kind, body in _derivation(record, _Markdown(_check_precision(precision), record.n_samples)):
        if kind in ("title", "heading"):
            out.append(("# " if kind == "title" else "## ") + body)
        elif kind == "para":
            out.append(body)
        elif kind == "eqs":
            out.append("\n".join(["```text", *(" = ".join(eq) for eq in body), "```"]))
        else:
            head, rows = body
            out.append("\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                                  *("| " + " | ".join(row) + " |" for row in rows)]))
    return "\n\n".join(out) + "\n"


def render_latex(record: StepTrace, precision: int = 9) -> str:
    """The derivation as a LaTeX fragment (needs ``\\usepackage{amsmath}``): ``\\section*``,
    ``align*`` environments with one side of each equation per line, and ``tabular``s."""
    nt = _TeX(_check_precision(precision), record.n_samples)
    out = ["% bpx explain: one backpropagation step. Needs \\usepackage{amsmath}."]
    for kind, body in _derivation(record, nt):
        if kind in ("title", "heading"):
            out.append(("\\section*{" if kind == "title" else "\\subsection*{") + nt.text(body) + "}")
        elif kind == "para":
            out.append(body)
        elif kind == "eqs":
            lines = [" \\\\\n  &= ".join([f"{eq[0]} &= {eq[1]}", *eq[2:]]) for eq in body]
            out.append("\\begin{align*}\n" + " \\\\[4pt]\n".join(lines) + "\n\\end{align*}")
        else:
            head, rows = body
            table = [" & ".join(head) + " \\\\", "\\hline", *(" & ".join(row) + " \\\\" for row in rows)]
            out.append("\n".join(["\\begin{tabular}{" + "l" * len(head) + "}", *table, "\\end{tabular}"]))
    return "\n\n".join(out) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "latex": render_latex}


def render(record: StepTrace, format: str = "text", precision: int = 9) -> str:
    """Render ``record`` as ``format`` (one of :data:`FORMATS`) with ``precision`` significant digits."""
    try:
        renderer = RENDERERS[format]
    except KeyError:
        raise BpxValueError(f"unknown format {format!r}; valid: {', '.join(FORMATS)}") from None
    return renderer(record, precision)


def _check_precision(precision: int) -> int:
    if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= 17:
        raise BpxValueError(f"precision must be an int from 1 to 17 significant digits, got {precision!r}")
    return precision


def _text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *rows]]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines
