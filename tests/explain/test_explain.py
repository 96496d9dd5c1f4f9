"""Explain mode: the record comes from the real training code, the worked example's figures,
the δ recursion, the renderers, the JSON spec loader, the size guard, backends and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import bpx
from bpx.cli.explain import run_explain_cli
from bpx.errors import SpecError
from bpx.explain.record import MAX_SAMPLES, explain
from bpx.explain.render import render
from bpx.explain.spec import WORKED_EXAMPLE, load_spec, parse_spec
from bpx.testing import assert_close, backend_params

X, T = [0.05, 0.10], [0.01, 0.99]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "explain_spec.json"

# The worked example's figures (correct simultaneous gradient descent).
FORWARD = {"h1": 0.593269992107, "h2": 0.59688437826, "o1": 0.751365069552, "o2": 0.772928465321}
E_BEFORE, E_AFTER = 0.29837110876, 0.291027773694
GRADS = (0.000438567734474, 0.000877135468949, 0.000497712735261, 0.000995425470522,
         0.0821670405642, 0.0826676278475, -0.0226025404775, -0.022740242216)
UPDATED = (0.149780716133, 0.199561432266, 0.249751143632, 0.299502287265,
           0.358916479718, 0.408666186076, 0.511301270239, 0.561370121108)
ALL_FIGURES = (*FORWARD.values(), E_BEFORE, E_AFTER, *GRADS, *UPDATED)


def worked(backend: str = "numpy", device: str | None = None) -> bpx.Sequential:
    return parse_spec(WORKED_EXAMPLE).network(backend, device)


def deep_net(backend: str = "numpy", dtype: str = "float64") -> bpx.Sequential:
    """Two hidden layers (tanh, sigmoid), linear outputs, trainable biases."""
    return bpx.Sequential(bpx.Dense(2, 3, bias=[0.1, -0.2, 0.3]), bpx.Tanh(),
                          bpx.Dense(3, 2, bias=[0.05, -0.05]), bpx.Sigmoid(), bpx.Dense(2, 2),
                          backend=backend, dtype=dtype, seed=3)


@pytest.fixture(scope="module")
def worked_record():
    return explain(worked(), X, T, "half_squared_error", 0.5)


# ---------------------------------------------------------------------- the record is the real step
def by_location(net: bpx.Sequential, attr: str) -> dict[str, float]:
    """Every weight's and bias's ``value`` or ``grad``, keyed by the record's location strings."""
    out = {}
    for d, layer in enumerate(net.layers):
        if isinstance(layer, bpx.Dense):
            for (i, j), v in np.ndenumerate(bpx.to_host(getattr(layer.weight, attr))):
                out[f"layers[{d}].weight[{i}, {j}]"] = float(v)
            for (j,), v in np.ndenumerate(bpx.to_host(getattr(layer.bias, attr))):
                out[f"layers[{d}].bias[{j}]"] = float(v)
    return out


@pytest.mark.parametrize("x, t", [([X], [T]), ([[0.05, 0.10], [0.3, -0.2]], [[0.01, 0.99], [1.0, 0.0]])])
def test_gradients_and_updates_are_the_training_codes_bitwise(x, t):
    net = deep_net()
    record = explain(net, x, t, "mse", 0.3)
    reference = net.to(net.backend)
    reference.train_step(x, t, "mse", bpx.SGD(0.3))  # the public step: param.grad holds its gradient
    assert {p.location: p.grad for p in record.parameters} == by_location(reference, "grad")
    assert {p.location: p.updated for p in record.parameters} == by_location(reference, "value")


def test_user_network_is_unchanged():
    net = worked()
    before = net.state_dict()
    explain(net, X, T, "half_squared_error", 0.5, steps=3)
    for name, value in net.state_dict().items():
        assert (value == before[name]).all()


def test_error_after_n_steps_is_n_real_train_steps():
    net = worked()
    record = explain(net, X, T, bpx.HalfSquaredError(), 0.5, steps=5)
    copy, sgd = net.to(net.backend), bpx.SGD(0.5)
    for _ in range(5):
        copy.train_step([X], [T], "half_squared_error", sgd)
    assert record.error_after_steps == float(bpx.to_host(copy.compute_loss([X], [T], "half_squared_error")))
    assert record.steps == 5 and record.error_after == pytest.approx(E_AFTER, abs=1e-12)


# ---------------------------------------------------------------------- the worked example
def test_worked_example_record(worked_record):
    r = worked_record
    assert [p.name for p in r.parameters] == ["w1", "w2", "w3", "w4", "b1", "w5", "w6", "w7", "w8", "b2"]
    assert r.param("w3").location == "layers[0].weight[0, 1]"
    assert r.param("w2").location == "layers[0].weight[1, 0]"
    assert (r.param("w6").source, r.param("w6").targets) == ("h2", ("o1",))
    assert r.param("b1").grad is None and not r.param("b1").trainable and r.param("b1").targets == ("h1", "h2")
    assert_close([r.neuron(n).out[0] for n in FORWARD], list(FORWARD.values()), rtol=1e-11, atol=0)
    assert_close([r.param(f"w{k}").grad for k in range(1, 9)], GRADS, rtol=1e-11, atol=0)
    assert_close([r.param(f"w{k}").updated for k in range(1, 9)], UPDATED, rtol=1e-11, atol=0)
    assert_close([r.error, r.error_after], [E_BEFORE, E_AFTER], rtol=1e-11, atol=0)
    assert_close(sum(o.error[0] for o in r.layers[-1].neurons), r.error)
    for p in r.parameters:  # the displayed chain-rule factors multiply to backward's gradient
        if p.trainable:
            a, b, c = p.factors[0]
            assert_close(a * b * c, p.grad)


def test_text_shows_every_figure_to_9_digits(worked_record):
    text = render(worked_record)
    for value in ALL_FIGURES:
        assert f"{value:.9g}" in text, value
    for line in ("net_h1 = w1·i1 + w2·i2 + b1 = 0.15 × 0.05 + 0.2 × 0.1 + 0.35 = 0.3775",
                 "w3         layers[0].weight[0, 1]",
                 "∂E/∂out_h1 = δ_o1·w5 + δ_o2·w7",
                 "∂E/∂w5 = ∂E/∂out_o1·∂out_o1/∂net_o1·∂net_o1/∂w5",
                 "E_total⁺ = 0.291027774"):
        assert line in text, line


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_markdown_and_latex_contain_the_values(worked_record, fmt):
    text = render(worked_record, fmt)
    for value in ALL_FIGURES:
        assert f"{value:.9g}" in text, value
    marker = {"markdown": "## Backward pass: hidden layer h1, h2", "latex": "\\begin{align*}"}[fmt]
    assert marker in text
    if fmt == "latex":
        assert text.isascii() and "\\frac{\\partial E}{\\partial w_{5}}" in text


def test_precision_and_format_are_checked(worked_record):
    assert "0.5933" in render(worked_record, precision=4)
    with pytest.raises(ValueError, match="precision"):
        render(worked_record, precision=0)
    with pytest.raises(ValueError, match="unknown format 'html'"):
        render(worked_record, "html")


# ---------------------------------------------------------------------- δ recursion, any depth
def test_deep_deltas_match_finite_differences_and_the_recursion():
    net = deep_net()
    x, t = [0.3, -0.7], [0.2, 0.9]
    r = explain(net, x, t, "half_squared_error", 0.1)
    assert [[n.name for n in layer.neurons] for layer in r.layers] == [["h1_1", "h1_2", "h1_3"],
                                                                       ["h2_1", "h2_2"], ["o1", "o2"]]
    state, h = net.state_dict(), 1e-6
    for layer in r.layers:
        for j, neuron in enumerate(layer.neurons):
            energies = []
            for sign in (1.0, -1.0):  # ∂E/∂b_j = ∂E/∂net_j = δ_j for one sample
                moved = {k: v.copy() for k, v in state.items()}
                moved[f"layers.{layer.index}.bias"][j] += sign * h
                probe = net.to(net.backend)
                probe.load_state_dict(moved)
                energies.append(float(bpx.to_host(probe.compute_loss([x], [t], "half_squared_error"))))
            assert_close(neuron.delta[0], (energies[0] - energies[1]) / (2 * h), rtol=1e-6, atol=1e-10)
    for layer, following in zip(r.layers[:-1], r.layers[1:], strict=True):
        for neuron in layer.neurons:  # δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f′(net_l)
            back = sum(following.neurons[int(w.location.split(", ")[1][:-1])].delta[0] * w.value
                       for w in following.weights if w.source == neuron.name)
            assert_close(neuron.d_out[0], back)
            assert_close(neuron.delta[0], back * neuron.slope[0])


def test_batch_records_per_sample_values():
    x, t = [[0.05, 0.10], [0.3, -0.2], [0.0, 1.0]], [[0.01, 0.99], [1.0, 0.0], [0.5, 0.5]]
    r = explain(deep_net(), x, t, "half_squared_error", 0.5)
    assert r.n_samples == 3 and all(len(n.delta) == 3 for layer in r.layers for n in layer.neurons)
    for p in r.parameters:  # ∂E/∂w = Σ_s factor products
        assert_close(sum(a * b * c for a, b, c in p.factors), p.grad)
    text = render(r)
    assert "net_h1_1[3]" in text and "Σ_s" in text


def test_softmax_and_label_targets():
    net = bpx.Sequential(bpx.Dense(2, 3, bias=0.1), bpx.ReLU(), bpx.Dense(3, 3), backend="numpy",
                         dtype="float64", seed=0)
    r = explain(net, X, 2, "softmax_cross_entropy", 0.5)
    assert [o.target[0] for o in r.layers[-1].neurons] == [0.0, 0.0, 1.0]
    assert r.layers[-1].neurons[0].error is None and "E_total = " in render(r)
    net = bpx.Sequential(bpx.Dense(2, 2), bpx.Softmax(), backend="numpy", dtype="float64", seed=0)
    r = explain(net, X, [0.3, 0.7], "half_squared_error", 0.5)
    assert r.layers[0].neurons[0].slope is None
    for p in r.parameters:
        assert_close(sum(a * c for a, _, c in p.factors), p.grad)
    assert "softmax_1(net_o1, net_o2)" in render(r)


def test_unsupported_layer_stacks_are_rejected():
    net = bpx.Sequential(bpx.Dense(2, 2), bpx.Sigmoid(), bpx.Tanh(), backend="numpy", seed=0)
    with pytest.raises(ValueError, match=r"layers\[2\] \(Tanh\)"):
        explain(net, X, T, "mse", 0.5)
    with pytest.raises(ValueError, match="steps"):
        explain(worked(), X, T, "mse", 0.5, steps=0)


# ---------------------------------------------------------------------- size guard
@pytest.mark.parametrize("sizes, match", [((2, 17, 2), "2-17-2 network .* 17 neurons"),
                                          ((8, 8, 2), "80 weights.* 64 weights")])
def test_size_guard(sizes, match):
    layers = [bpx.Dense(sizes[0], sizes[1]), bpx.Sigmoid(), bpx.Dense(sizes[1], sizes[2])]
    net = bpx.Sequential(*layers, backend="numpy", seed=0)
    with pytest.raises(ValueError, match=match):
        explain(net, [0.0] * sizes[0], [0.0] * sizes[2], "mse", 0.1)


def test_sample_guard():
    with pytest.raises(ValueError, match=f"{MAX_SAMPLES + 1} samples .* limit is {MAX_SAMPLES}"):
        explain(worked(), [X] * (MAX_SAMPLES + 1), [T] * (MAX_SAMPLES + 1), "mse", 0.1)


# ---------------------------------------------------------------------- backends
@pytest.mark.parametrize("config", backend_params(dtypes=("float64",)))
def test_same_text_on_every_backend(config):
    net = worked(config.name, config.device)
    record = explain(net, X, T, "half_squared_error", 0.5, steps=2)
    reference = explain(worked(), X, T, "half_squared_error", 0.5, steps=2)
    assert record.backend == config.name
    assert render(record) == render(reference)
    batch = [[0.05, 0.10], [0.3, -0.2]], [[0.01, 0.99], [1.0, 0.0]]
    assert render(explain(deep_net(config.name), *batch, "mse", 0.5)) == \
        render(explain(deep_net(), *batch, "mse", 0.5))


# ---------------------------------------------------------------------- JSON spec
def write(tmp_path, content) -> str:
    path = tmp_path / "spec.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_example_spec_loads():
    spec = load_spec(EXAMPLE)
    assert spec.sizes == (2, 3, 2) and spec.train_biases == (False, True)
    r = explain(spec.network(), [list(s) for s in spec.inputs], [list(s) for s in spec.targets], spec.loss, spec.lr)
    assert [p.name for p in r.parameters][-3:] == ["w12", "b2_1", "b2_2"]
    assert r.param("w4").location == "layers[0].weight[1, 1]" and r.param("w4").value == 0.30


def test_textbook_weight_order_in_spec():
    net = worked()
    assert bpx.to_host(net.layers[0].weight.value).tolist() == [[0.15, 0.25], [0.20, 0.30]]


@pytest.mark.parametrize("change, match", [
    ({"layers": [2, 0, 2]}, "'layers'"),
    ({"weights": [[0.1, 0.2, 0.3], [0.4, 0.45, 0.5, 0.55]]}, r"'weights\[0\]': expected 4 numbers"),
    ({"weights": [[0.1, 0.2, 0.3, 0.4]]}, "'weights': expected a list of 2 lists"),
    ({"weights": [[0.1, "x", 0.3, 0.4], [0.4, 0.45, 0.5, 0.55]]}, r"'weights\[0\]\[1\]': expected a finite number"),
    ({"weights": [[0.1, True, 0.3, 0.4], [0.4, 0.45, 0.5, 0.55]]}, r"'weights\[0\]\[1\]'"),
    ({"activation": "sigmod"}, "'activation': unknown activation 'sigmod'"),
    ({"activation": ["sigmoid", "swish"]}, r"'activation\[1\]': unknown activation 'swish'"),
    ({"loss": "hinge"}, "'loss': unknown loss 'hinge'"),
    ({"inputs": [0.05]}, "'inputs': expected 2 numbers"),
    ({"inputs": [[0.05, 0.1], [0.2, "a"]]}, r"'inputs\[1\]\[1\]'"),
    ({"targets": [[0.01, 0.99], [0.5, 0.5]]}, "2 target rows for 1 input samples"),
    ({"biases": [0.35, [0.6]]}, r"'biases\[1\]': expected 2 numbers"),
    ({"train_biases": "no"}, "'train_biases': expected a bool"),
    ({"lr": -1}, "'lr': must be positive"),
    ({"lr": "0.5"}, "'lr': expected a finite number"),
    ({"dtype": "float16"}, "'dtype'"),
    ({"backend": "tensorflow"}, "'backend': unknown backend"),
    ({"weigths": []}, "unknown field.*'weigths'"),
])
def test_spec_rejects_malformed_fields(tmp_path, change, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write(tmp_path, WORKED_EXAMPLE | change))


@pytest.mark.parametrize("content, match", [
    ('{"layers": [2, 2, 2],', "invalid JSON at line 1"),
    ('{"layers": [2, 2], "weights": [[NaN, 1, 1, 1]]}', "NaN is not a finite number"),
    ("[1, 2]", "must be a JSON object"),
    ({"layers": [2, 2]}, "missing required field.*'weights', 'inputs', 'targets'"),
])
def test_spec_rejects_malformed_files(tmp_path, content, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write(tmp_path, content))
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.json")


# ---------------------------------------------------------------------- command line
def test_cli_default_is_the_worked_example(capsys):
    assert run_explain_cli([]) == 0
    out = capsys.readouterr().out
    assert all(f"{v:.9g}" in out for v in ALL_FIGURES)


def test_cli_markdown_steps_spec_and_plot(tmp_path, capsys):
    png = tmp_path / "net.png"
    spec = write(tmp_path, WORKED_EXAMPLE)
    assert run_explain_cli([spec, "--format", "markdown", "--steps", "3", "--plot", str(png), "--precision", "12"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Backpropagation") and f"{E_AFTER:.12g}" in out
    three = explain(worked(), X, T, "half_squared_error", 0.5, steps=3).error_after_steps
    assert f"E_total after 3 steps = {three:.12g}" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_errors(tmp_path, capsys):
    assert run_explain_cli([write(tmp_path, "{")]) == 1
    assert "bpx explain: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_explain_cli(["--backend", "nope"])
    assert "argument --backend: expected one of numpy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_explain_cli(["--steps", "0"])


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert run_explain_cli(["--plot", str(tmp_path / "net.png")]) == 1
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "net.png").exists()
