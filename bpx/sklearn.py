"""scikit-learn estimators over bpx: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take scikit-learn's parameter names where they mean the same thing (``hidden_layer_sizes``,
``activation``, ``solver``, ``alpha``, ``batch_size``, ``learning_rate_init``, ``max_iter``,
``tol``, ``n_iter_no_change``, ``early_stopping``, ``validation_fraction``, ``random_state``,
``verbose``, ``warm_start``, ``momentum``, ...) and add where the arrays live: ``backend``,
``device`` and ``dtype``. They work inside ``Pipeline``, ``GridSearchCV`` and
``cross_val_score`` and pass ``check_estimator`` (the checks that cannot apply are listed in
:data:`EXPECTED_FAILED_CHECKS`).

Where the data lives. With NumPy (or list) inputs the network trains on ``backend``/``device``
(default: ``$BPX_BACKEND``, else NumPy) and results come back as NumPy arrays. With
``sklearn.set_config(array_api_dispatch=True)`` (scikit-learn needs ``SCIPY_ARRAY_API=1`` in the
environment for it), scikit-learn's rule applies: everything follows the namespace and device of
``X``. A PyTorch tensor on ``cuda:0`` trains a torch network on ``cuda:0``;
``predict``/``predict_proba`` return tensors there, and ``coefs_``/``intercepts_`` are tensors
there too (likewise CuPy, JAX and array-api-strict arrays). The labels ``y`` are read to the host
once per ``fit`` to build ``classes_`` (a NumPy array, so string labels work).

Differences from scikit-learn's own estimators: ``alpha`` is the same L2 penalty (its gradient
``alpha·W / batch_size``) but applied as bpx's coupled weight decay, which also decays the
biases; the weights start from Glorot-uniform initialisation drawn from ``random_state`` (scikit-learn's
bound for every activation but ``"logistic"``, for which scikit-learn's is √3 smaller) and the
biases from zero (scikit-learn draws them from the same range);
``loss_curve_`` holds the data loss without the penalty; the solvers are ``"adam"`` and
``"sgd"`` with a constant learning rate (no ``"lbfgs"``); ``dtype=None`` trains in float64
unless ``X`` is float32; ``sample_weight`` is not supported.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import MissingDependencyError
from .version import DISTRIBUTION

try:
    import sklearn
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - exercised without scikit-learn installed
    raise MissingDependencyError(f"bpx.sklearn needs scikit-learn ({err}); install it with: "
                                 f'pip install "{DISTRIBUTION}[sklearn]"') from None

import array_api_compat as aac

from .architectures import mlp
from .backend import Backend, get_backend
from .errors import BpxValueError
from .host.arrays import to_host
from .nn.dense import Dense
from .nn.losses import BinaryCrossEntropy, HalfSquaredError, Loss, SoftmaxCrossEntropy
from .optim.optimizers import SGD, Adam, Optimizer
from .sequential import Sequential
from .training.callbacks import Callback, Trainer

__all__ = ["EXPECTED_FAILED_CHECKS", "MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names → bpx's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("adam", "sgd")

#: ``check_estimator`` checks that cannot pass, with the reason (for ``expected_failed_checks``): none
#: today. The checks that do not apply are skipped by scikit-learn itself: ``sample_weight`` ones
#: (``fit`` takes none), ``decision_function`` ones (there is none), the array API checks of
#: devices or libraries that are absent (CUDA, MPS, XPU, CuPy, dpnp) and the pandas ones without pandas.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


def _namespace_name(xp: Any) -> str | None:
    """bpx's backend name for an Array API namespace (``None`` for NumPy, or one bpx lacks)."""
    for check, name in ((aac.is_torch_namespace, "torch"), (aac.is_cupy_namespace, "cupy"),
                        (aac.is_jax_namespace, "jax"), (aac.is_array_api_strict_namespace, "array_api_strict")):
        if check(xp):
            return name
    return None


def _dispatching() -> bool:
    return bool(sklearn.get_config().get("array_api_dispatch", False))


def _input_namespace(x: Any) -> tuple[str | None, Any]:
    """``(bpx backend name, device)`` of ``x`` when array API dispatch is on and ``x`` is not a
    NumPy array; ``(None, None)`` otherwise (host data)."""
    if not _dispatching() or isinstance(x, np.ndarray) or not aac.is_array_api_obj(x):
        return None, None
    name = _namespace_name(aac.array_namespace(x))
    if name is None:
        return None, None
    return name, aac.device(x)


def _float_dtypes(x: Any) -> list[Any]:
    """The float dtypes ``validate_data`` may keep: of ``x``'s namespace under dispatch, else NumPy's."""
    if _dispatching() and not isinstance(x, np.ndarray) and aac.is_array_api_obj(x):
        xp = aac.array_namespace(x)
        return [xp.float64, xp.float32]
    return [np.float64, np.float32]


class _StopRule(Callback):
    """scikit-learn's stopping rule, run at the end of each bpx epoch: stop once the training loss
    (or, with ``early_stopping``, the validation score) has not improved by ``tol`` for more than
    ``n_iter_no_change`` epochs in a row."""

    def __init__(self, estimator: _BaseMLP, validation: tuple[Any, Any] | None) -> None:
        self.estimator = estimator
        self.validation = validation
        self.message = ""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        est = self.estimator
        loss = float(logs["loss"])
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += est._n_train
        if self.validation is not None:
            score = est._validation_score(*self.validation)
            est.validation_scores_.append(score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_state = trainer.net.state_dict()
        else:
            best = math.inf if est.best_loss_ is None else est.best_loss_
            if loss > best - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(best, loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}", file=sys.stdout, flush=True)
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            self.message = (f"{what} did not improve more than tol={est.tol} for {est.n_iter_no_change} "
                            "consecutive epochs.")
            if est.verbose:
                print(self.message + " Stopping.", file=sys.stdout, flush=True)
            trainer.stop = True


class _BaseMLP(BaseEstimator):
    """What :class:`MLPClassifier` and :class:`MLPRegressor` share (see the module docstring)."""

    _is_classifier = False

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate_init: float = 0.001, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, backend: str | Backend | None = None,
                 device: Any = None, dtype: str | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ scikit-learn protocol
    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_net", None) is not None

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ fitted attributes
    @property
    def coefs_(self) -> list[Any]:
        """The weight matrices ``(n_in, n_out)`` of the Dense layers, input first (copies: NumPy
        arrays, or arrays of the input's namespace and device under array API dispatch)."""
        return self._dense_values("weight")

    @property
    def intercepts_(self) -> list[Any]:
        """The bias vectors of the Dense layers, input first (copies, as :attr:`coefs_`)."""
        return self._dense_values("bias")

    def _dense_values(self, name: str) -> list[Any]:
        check_is_fitted(self)
        net = self._net
        values = []
        for layer in net.layers:
            if isinstance(layer, Dense):
                p = getattr(layer, name)
                if self._namespace is None:
                    values.append(to_host(p.value).copy())
                else:
                    values.append(net.xp.asarray(p.value, copy=True))
        return values

    @property
    def n_layers_(self) -> int:
        check_is_fitted(self)
        return len(self._hidden()) + 2

    @property
    def network_(self) -> Sequential:
        """The fitted :class:`bpx.Sequential` (save it, export it, keep training it)."""
        check_is_fitted(self)
        return self._net

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> _BaseMLP:
        """Train on ``(X, y)`` for up to ``max_iter`` epochs (see the class docstring)."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any, **kwargs: Any) -> _BaseMLP:
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state."""
        return self._fit(X, y, incremental=True, **kwargs)

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> _BaseMLP:
        self._check_params()
        first = not (incremental or self.warm_start) or not self.__sklearn_is_fitted__()
        X, y = validate_data(self, X, y, reset=first, dtype=_float_dtypes(X), multi_output=True,
                             y_numeric=not self._is_classifier)
        namespace, device = _input_namespace(X)
        if not first and (namespace, str(device) if device is not None else None) != self._fit_place():
            first = True
        targets = self._targets(y, first, incremental, classes)
        n = int(X.shape[0])
        if first:
            self._build(X, namespace, device)
        net = self._net
        batch_size = self._batch_size(n)
        optimizer = self._optimizer
        optimizer.lr = float(self.learning_rate_init)
        optimizer.weight_decay = float(self.alpha) / batch_size
        early = self.early_stopping and not incremental
        validation = None
        train_x, train_t = X, targets
        if early:
            train_x, train_t, validation = self._split(X, targets, y)
        self._n_train = int(train_x.shape[0])
        if not incremental or first:
            self._no_improvement_count = 0
            if early:
                keep = not first and self.warm_start
                self.validation_scores_ = getattr(self, "validation_scores_", []) if keep else []
                self.best_validation_score_ = getattr(self, "best_validation_score_", -math.inf) if keep else -math.inf
                self.best_loss_ = None
                self._best_state = None
        rule = _StopRule(self, validation)
        epochs = 1 if incremental else int(self.max_iter)
        done_before = self.n_iter_
        seed = int(self._rng.randint(2**31 - 1))
        net.fit(train_x, train_t, loss=self._loss, optimizer=optimizer, epochs=epochs, batch_size=batch_size,
                shuffle=bool(self.shuffle), seed=seed, callbacks=[rule], verbose=0, metrics=[])
        if early and self._best_state is not None:
            net.load_state_dict(self._best_state)
        self._best_state = None
        if not incremental and not rule.message and self.n_iter_ - done_before >= self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _check_params(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise BpxValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.solver not in SOLVERS:
            raise BpxValueError(f"solver must be one of {SOLVERS} (bpx has no 'lbfgs'), got {self.solver!r}")
        checks = (("max_iter", self.max_iter, 1), ("n_iter_no_change", self.n_iter_no_change, 1))
        for name, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise BpxValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name, value, low in (("alpha", self.alpha, 0.0), ("tol", self.tol, 0.0), ("momentum", self.momentum, 0.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value >= low:
                raise BpxValueError(f"{name} must be a number >= {low}, got {value!r}")
        if not (isinstance(self.learning_rate_init, (int, float, np.number)) and self.learning_rate_init > 0):
            raise BpxValueError(f"learning_rate_init must be > 0, got {self.learning_rate_init!r}")
        if not (isinstance(self.validation_fraction, (int, float)) and 0 < self.validation_fraction < 1):
            raise BpxValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}")
        if self.batch_size != "auto" and (isinstance(self.batch_size, bool)
                                          or not isinstance(self.batch_size, (int, np.integer))):
            raise BpxValueError(f"batch_size must be 'auto' or an int, got {self.batch_size!r}")
        if self.momentum > 1:
            raise BpxValueError(f"momentum must be <= 1, got {self.momentum!r}")
        self._hidden()

    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = [int(s) for s in sizes]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise BpxValueError(f"hidden_layer_sizes must be an int or a list of ints, got {sizes!r}") from None
        if any(s < 1 for s in sizes):
            raise BpxValueError(f"hidden_layer_sizes must be > 0, got {list(sizes)}")
        return sizes

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size < 1 or self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=4)
        return int(np.clip(self.batch_size, 1, n))

    def _fit_place(self) -> tuple[str | None, str | None]:
        return self._namespace, self._device

    def _build(self, X: Any, namespace: str | None, device: Any) -> None:
        """A new network, optimizer and history for ``X`` (its features, namespace and dtype)."""
        dtype = self.dtype
        if dtype is None:
            dtype = "float32" if "float32" in str(X.dtype) else "float64"
        if namespace is not None:
            backend = get_backend(namespace, device, dtype)
        else:
            backend = get_backend(self.backend, self.device, dtype)
        self._rng = check_random_state(self.random_state)
        seed = int(self._rng.randint(2**31 - 1))
        sizes = [int(X.shape[1]), *self._hidden(), self._n_outputs()]
        self._net = mlp(sizes, activation=ACTIVATIONS[self.activation], init="glorot_uniform", backend=backend,
                        seed=seed)
        self._namespace = namespace
        self._device = None if namespace is None else str(device)
        self._loss = self._make_loss()
        if self.solver == "adam":
            self._optimizer: Optimizer = Adam(lr=float(self.learning_rate_init), beta1=float(self.beta_1),
                                              beta2=float(self.beta_2), eps=float(self.epsilon))
        else:
            self._optimizer = SGD(lr=float(self.learning_rate_init), momentum=float(self.momentum),
                                  nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self.best_loss_: float | None = math.inf
        self.n_outputs_ = self._n_outputs()

    def _split(self, X: Any, targets: Any, y: Any) -> tuple[Any, Any, tuple[Any, Any]]:
        """The training part and the held-out ``validation_fraction`` (stratified for classifiers)."""
        n = int(X.shape[0])
        stratify = to_host(targets) if self._is_classifier and to_host(targets).ndim == 1 else None
        train, val = train_test_split(np.arange(n), test_size=self.validation_fraction, random_state=self._rng,
                                      stratify=stratify)
        if len(train) < 1 or len(val) < 1:
            raise BpxValueError(f"early_stopping with validation_fraction={self.validation_fraction} leaves no "
                                f"training or validation sample out of {n}")
        xt, xv = self._rows(X, train), self._rows(X, val)
        return xt, targets[train], (xv, targets[val])

    def _rows(self, X: Any, idx: np.ndarray) -> Any:
        if isinstance(X, np.ndarray):
            return X[idx]
        xp = aac.array_namespace(X)
        return xp.take(X, xp.asarray(idx, device=aac.device(X)), axis=0)

    # ------------------------------------------------------------------ predict
    def _outputs(self, X: Any, method: str) -> tuple[Any, Any]:
        """``(outputs, xp)``: the network's outputs for ``X`` in ``X``'s namespace (NumPy for host data)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_float_dtypes(X))
        namespace, device = _input_namespace(X)
        if _dispatching() and (namespace, None if device is None else str(device)) != self._fit_place():
            where = f"{namespace or 'numpy'}" + (f" on {device}" if device is not None else "")
            fitted = f"{self._namespace or 'numpy'}" + (f" on {self._device}" if self._device else "")
            raise BpxValueError(f"{type(self).__name__}.{method}(): inputs must use the same namespace and device as "
                                f"those used during fit ({fitted}); got {where}")
        outputs = self._net.predict(X)
        if namespace is None:
            return to_host(outputs), np
        return outputs, self._net.xp

    def _validation_score(self, X: Any, targets: Any) -> float:
        raise NotImplementedError

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        net = state.pop("_net", None)
        optimizer = state.pop("_optimizer", None)
        if net is not None:
            names = {p: name for name, p in net.named_parameters().items()}
            opt_state = {names[p]: {k: to_host(v) for k, v in values.items()}
                         for p, values in optimizer.parameter_state(net.store).items()}
            state["_net_state"] = {
                "config": net.config(), "weights": net.state_dict(), "seed": net.seed, "step_count": net.step_count,
                "backend": (net.backend.name, str(net.backend.device), net.backend.dtype_name),
                "optimizer": (type(optimizer).__name__, optimizer.hyperparameters(), optimizer.iterations, opt_state),
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state.pop("_net_state", None)
        self.__dict__.update(state)
        if saved is None:
            return
        name, device, dtype = saved["backend"]
        net = Sequential.from_config(saved["config"], backend=name, device=device, dtype=dtype, seed=saved["seed"])
        net.load_state_dict(saved["weights"])
        net.step_count = saved["step_count"]
        net.loss = self._loss
        cls_name, hyper, iterations, opt_state = saved["optimizer"]
        optimizer = (Adam if cls_name == "Adam" else SGD)(**hyper)
        params = net.named_parameters()
        optimizer.load_parameter_state(net.store, {params[k]: v for k, v in opt_state.items()}, iterations)
        self._net, self._optimizer = net, optimizer

    # ------------------------------------------------------------------ per-kind parts
    def _targets(self, y: Any, first: bool, incremental: bool, classes: Any) -> Any:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _make_loss(self) -> Loss:
        raise NotImplementedError


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multilayer perceptron classifier trained by bpx (softmax cross-entropy; logistic outputs
    for two classes and for multilabel indicator targets).

    Parameters are scikit-learn's (see :class:`sklearn.neural_network.MLPClassifier`) plus
    ``backend``, ``device`` and ``dtype`` (see :func:`bpx.get_backend`; ignored under array API
    dispatch with non-NumPy inputs, which follow the input). Fitted attributes: ``classes_``,
    ``n_features_in_``, ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_`` and
    ``best_validation_score_`` (with ``early_stopping``), ``n_iter_``, ``t_``, ``coefs_``,
    ``intercepts_``, ``n_layers_``, ``n_outputs_``, ``out_activation_`` and ``network_`` (the
    :class:`bpx.Sequential`).
    """

    _is_classifier = True

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:  # type: ignore[override]
        """One epoch over ``(X, y)``; ``classes`` (every class of all calls) is needed on the first call."""
        return self._fit(X, y, incremental=True, classes=classes)  # type: ignore[return-value]

    def _targets(self, y: Any, first: bool, incremental: bool, classes: Any) -> Any:
        y = to_host(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        multilabel = type_of_target(y).startswith("multilabel")
        if first:
            if incremental and not self.__sklearn_is_fitted__() and classes is None and not multilabel:
                raise BpxValueError("classes must be passed on the first call to partial_fit")
            if multilabel:
                found = np.arange(y.shape[1])
            elif incremental and classes is not None:
                found = unique_labels(np.asarray(classes))
            else:
                found = unique_labels(y)
            if not multilabel and len(found) < 2:
                raise BpxValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                                    f"but the data contains only one class: {found[0]!r}")
            self.classes_ = found
            self._multilabel = multilabel
            self.out_activation_ = "logistic" if multilabel or len(found) == 2 else "softmax"
        elif multilabel != self._multilabel or (multilabel and y.shape[1] != len(self.classes_)):
            raise BpxValueError("y has another type of target than the one the classifier was fitted with")
        if multilabel:
            return y.astype(np.float64)
        unseen = np.setdiff1d(unique_labels(y), self.classes_)
        if len(unseen):
            raise BpxValueError(f"y contains labels not in classes_ {self.classes_.tolist()}: {unseen.tolist()}")
        codes = np.searchsorted(self.classes_, y)
        if len(self.classes_) == 2:
            return codes.astype(np.float64)[:, None]
        return codes.astype(np.int64)

    def _n_outputs(self) -> int:
        k = len(self.classes_)
        return 1 if k == 2 and not self._multilabel else k

    def _make_loss(self) -> Loss:
        return BinaryCrossEntropy() if self.out_activation_ == "logistic" else SoftmaxCrossEntropy()

    def _validation_score(self, X: Any, targets: Any) -> float:
        return float(accuracy_score(self._decisions(to_host(self._net.predict(X)), np), to_host(targets)))

    def _decisions(self, outputs: Any, xp: Any) -> Any:
        """Encoded decisions from logits: class indices, or 0/1 rows (two classes: a column)."""
        if self.out_activation_ == "logistic":
            return xp.astype(outputs > 0, outputs.dtype)
        return xp.argmax(outputs, axis=1)

    def predict(self, X: Any) -> Any:
        """Class labels ``(n,)`` (multilabel: 0/1 rows ``(n, n_classes)``)."""
        outputs, xp = self._outputs(X, "predict")
        if self._multilabel:
            return xp.astype(outputs > 0, xp.int64)
        codes = xp.argmax(outputs, axis=1) if outputs.shape[1] > 1 else xp.astype(outputs[:, 0] > 0, xp.int64)
        if xp is np:
            return self.classes_[codes]
        if self.classes_.dtype.kind not in "iufb":  # string labels cannot leave the host
            return self.classes_[to_host(codes)]
        classes = xp.asarray(self.classes_, device=aac.device(outputs))
        return xp.take(classes, codes, axis=0)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities ``(n, n_classes)`` in ``classes_`` order (multilabel: each label's)."""
        return self._proba(X, "predict_proba")

    def _proba(self, X: Any, method: str) -> Any:
        outputs, xp = self._outputs(X, method)
        if self.out_activation_ == "softmax":
            e = xp.exp(outputs - xp.max(outputs, axis=1, keepdims=True))
            return e / xp.sum(e, axis=1, keepdims=True)
        p = 1.0 / (1.0 + xp.exp(-outputs))
        if self._multilabel:
            return p
        return xp.concat([1.0 - p, p], axis=1)

    def predict_log_proba(self, X: Any) -> Any:
        """The natural logarithm of :meth:`predict_proba`."""
        proba = self._proba(X, "predict_log_proba")
        xp = np if isinstance(proba, np.ndarray) else aac.array_namespace(proba)
        return xp.log(proba)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multilayer perceptron regressor trained by bpx (half squared error, identity outputs).

    Parameters and fitted attributes as :class:`MLPClassifier` (without ``classes_``;
    ``out_activation_`` is ``"identity"``). ``y`` may be ``(n,)`` or ``(n, n_outputs)``;
    ``predict`` returns the same shape.
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y: Any, first: bool, incremental: bool, classes: Any) -> Any:
        y = to_host(y).astype(np.float64)
        if first:
            self._y_1d = y.ndim == 1
            self._k = 1 if y.ndim == 1 else int(y.shape[1])
            self.out_activation_ = "identity"
        elif (1 if y.ndim == 1 else y.shape[1]) != self._k:
            raise BpxValueError(f"y has {1 if y.ndim == 1 else y.shape[1]} outputs but the regressor was fitted "
                                f"with {self._k}")
        return y.reshape(len(y), -1)

    def _n_outputs(self) -> int:
        return self._k

    def _make_loss(self) -> Loss:
        return HalfSquaredError()

    def _validation_score(self, X: Any, targets: Any) -> float:
        return float(r2_score(to_host(targets), to_host(self._net.predict(X))))

    def predict(self, X: Any) -> Any:
        """Predictions ``(n,)``, or ``(n, n_outputs)`` for 2-D training targets."""
        outputs, xp = self._outputs(X, "predict")
        return xp.reshape(outputs, (-1,)) if self._y_1d else outputs
