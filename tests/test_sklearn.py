"""bpx.sklearn: scikit-learn's estimator checks, meta-estimators, array API dispatch (PyTorch
inputs stay on their device), partial_fit, early stopping, pickling."""

from __future__ import annotations

import importlib
import os
import pickle
import sys

# scikit-learn's array API support (set_config(array_api_dispatch=True)) needs this before use.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install 'bpx-backprop[sklearn]')")

from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import bpx  # noqa: E402
from bpx import MissingDependencyError  # noqa: E402
from bpx.sklearn import EXPECTED_FAILED_CHECKS, MLPClassifier, MLPRegressor  # noqa: E402

X, Y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=3, random_state=0)
XR, YR = make_regression(n_samples=100, n_features=5, noise=0.1, random_state=0)
YR = YR / YR.std()
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([MLPClassifier(max_iter=40), MLPRegressor(max_iter=40)],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


def test_meta_estimators() -> None:
    pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=60, learning_rate_init=0.01, random_state=0))
    assert cross_val_score(pipe, X, Y, cv=3).mean() > 0.6
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__activation": ["relu", "tanh"]},
                          cv=2).fit(X, Y)
    assert search.best_score_ > 0.6 and set(search.best_params_) == {"mlpclassifier__alpha",
                                                                      "mlpclassifier__activation"}
    reg = make_pipeline(StandardScaler(), MLPRegressor((16,), max_iter=100, learning_rate_init=0.01, random_state=0))
    assert cross_val_score(reg, XR, YR, cv=3).mean() > 0.8


def test_fitted_attributes_and_labels() -> None:
    labels = np.array(["cat", "dog", "emu"])[Y]
    clf = MLPClassifier((8, 4), max_iter=20, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"] and clf.n_features_in_ == 6
    assert [c.shape for c in clf.coefs_] == [(6, 8), (8, 4), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (4,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert len(clf.loss_curve_) == clf.n_iter_ == 20 and clf.t_ == 20 * len(X)
    assert set(clf.predict(X[:5])) <= set(clf.classes_)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert (clf.classes_[proba.argmax(axis=1)] == clf.predict(X)).all()
    assert isinstance(clf.network_, bpx.Sequential) and clf.network_.backend.dtype_name == "float64"
    binary = MLPClassifier((4,), max_iter=5, random_state=0).fit(X.astype(np.float32), Y == 1)
    assert binary.out_activation_ == "logistic" and binary.coefs_[-1].shape == (4, 1)
    assert binary.predict_proba(X).shape == (120, 2) and binary.network_.backend.dtype_name == "float32"
    multilabel = np.stack([Y == 0, Y == 1, Y != 2], axis=1).astype(int)
    ml = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, multilabel)
    assert ml.predict(X).shape == (120, 3) and ml.predict_proba(X).shape == (120, 3)


def test_solvers_alpha_and_reproducibility() -> None:
    a = MLPClassifier((8,), solver="sgd", momentum=0.9, learning_rate_init=0.05, max_iter=10, random_state=3).fit(X, Y)
    b = MLPClassifier((8,), solver="sgd", momentum=0.9, learning_rate_init=0.05, max_iter=10, random_state=3).fit(X, Y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    decayed = MLPClassifier((8,), alpha=50.0, max_iter=30, learning_rate_init=0.05, random_state=3).fit(X, Y)
    plain = MLPClassifier((8,), alpha=0.0, max_iter=30, learning_rate_init=0.05, random_state=3).fit(X, Y)
    assert np.abs(decayed.coefs_[0]).sum() < np.abs(plain.coefs_[0]).sum()
    with pytest.raises(ValueError, match="solver"):
        MLPClassifier(solver="lbfgs").fit(X, Y)
    with pytest.raises(ValueError, match="activation"):
        MLPRegressor(activation="gelu").fit(XR, YR)


def test_initialisation_and_first_epoch_match_scikit_learn() -> None:
    """Same initialisation scale (Glorot uniform) as scikit-learn's MLPClassifier: the first
    epoch's loss agrees within about 10 % (a He-initialised network started 15-70 % higher and
    learned a simple problem more slowly than the estimator it replaces)."""
    from sklearn.neural_network import MLPClassifier as Reference

    X, y = make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=0)
    settings = dict(hidden_layer_sizes=(64,), max_iter=1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        ours = MLPClassifier(**settings).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        reference = Reference(**settings).fit(X, y)
    assert ours.loss_curve_[0] == pytest.approx(reference.loss_curve_[0], rel=0.12)  # He: 15 % higher
    bound = np.sqrt(6 / (8 + 64))
    assert 0.9 * bound < np.abs(ours.coefs_[0]).max() < 1.05 * bound  # one epoch moved them a little


def test_stopping_rules() -> None:
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPRegressor((4,), max_iter=3, random_state=0).fit(XR, YR)
    stopped = MLPClassifier((8,), tol=10.0, n_iter_no_change=2, max_iter=100, random_state=0).fit(X, Y)
    assert stopped.n_iter_ == 4  # as scikit-learn: the first epoch sets the best, then 3 > n_iter_no_change misses
    early = MLPClassifier((16,), early_stopping=True, validation_fraction=0.25, n_iter_no_change=3,
                          learning_rate_init=0.05, max_iter=200, random_state=0).fit(X, Y)
    assert early.n_iter_ < 200 and len(early.validation_scores_) == early.n_iter_
    assert early.best_validation_score_ == max(early.validation_scores_) and early.best_loss_ is None
    assert early.t_ == early.n_iter_ * 90  # the held-out quarter is not trained on


def test_partial_fit_and_warm_start() -> None:
    clf = MLPClassifier((8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, Y)
    for _ in range(3):
        clf.partial_fit(X[Y < 2], Y[Y < 2], classes=[0, 1, 2])
    assert clf.n_iter_ == 3 and list(clf.classes_) == [0, 1, 2] and clf.predict_proba(X).shape == (120, 3)
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :5], Y)
    reg = MLPRegressor((8,), max_iter=5, warm_start=True, random_state=0).fit(XR, YR)
    first = reg.coefs_[0].copy()
    reg.fit(XR, YR)
    assert reg.n_iter_ == 10 and not np.array_equal(first, reg.coefs_[0])


def test_pickle_keeps_weights_and_optimizer_state() -> None:
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, Y)
    twin = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, Y)
    twin.partial_fit(X, Y)  # the same Adam moments and step count: the same update
    np.testing.assert_allclose(twin.predict_proba(X), clf.predict_proba(X), rtol=1e-12)


def test_backend_parameter_with_numpy_data() -> None:
    pytest.importorskip("torch", reason="PyTorch is not installed")
    clf = MLPClassifier((8,), max_iter=5, random_state=0, backend="torch", dtype="float32").fit(X, Y)
    assert clf.network_.backend.name == "torch" and clf.network_.backend.dtype_name == "float32"
    assert isinstance(clf.predict(X), np.ndarray) and isinstance(clf.coefs_[0], np.ndarray)


def test_array_api_dispatch_keeps_torch_inputs_on_their_device() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    xt, yt = torch.asarray(X, dtype=torch.float32), torch.asarray(Y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = MLPClassifier((8,), max_iter=10, random_state=0).fit(xt, yt)
        assert clf.network_.backend.name == "torch" and str(clf.network_.backend.device) == "cpu"
        pred, proba = clf.predict(xt), clf.predict_proba(xt)
        assert isinstance(pred, torch.Tensor) and pred.device == xt.device and pred.dtype == torch.int64
        assert isinstance(proba, torch.Tensor) and proba.dtype == torch.float32 and proba.shape == (120, 3)
        assert all(isinstance(c, torch.Tensor) for c in clf.coefs_ + clf.intercepts_)
        assert isinstance(clf.score(xt, yt), float)
        with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\): inputs must use the same namespace"):
            clf.predict(X)
        reg = MLPRegressor((8,), max_iter=10, random_state=0).fit(torch.asarray(XR), torch.asarray(YR))
        out = reg.predict(torch.asarray(XR))
        assert isinstance(out, torch.Tensor) and out.shape == (100,) and out.dtype == torch.float64
    numpy_twin = MLPClassifier((8,), max_iter=10, random_state=0).fit(X.astype(np.float32), Y)
    np.testing.assert_allclose(proba.numpy(), numpy_twin.predict_proba(X.astype(np.float32)), atol=1e-5)
    assert isinstance(clf.predict(X), np.ndarray)  # dispatch off: NumPy in, NumPy out


def test_verbose_prints_sklearn_style(capsys: pytest.CaptureFixture[str]) -> None:
    MLPRegressor((4,), max_iter=2, verbose=True, random_state=0).fit(XR, YR)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")


def test_missing_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "bpx.sklearn")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "bpx-backprop\[sklearn\]"'):
        importlib.import_module("bpx.sklearn")


def test_benchmark_quick_mode(tmp_path) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))  # `benchmarks` is a folder of the checkout, not an installed package
    try:
        from benchmarks.sklearn_mlp import main as bench
    finally:
        sys.path.remove(str(root))
    assert bench(["--quick", "--epochs", "1", "--hidden", "16", "--out", str(tmp_path), "--quiet"]) == 0
    report = (tmp_path / "sklearn_mlp.md").read_text()
    assert "| scikit-learn |" in report and "| bpx (numpy) |" in report
