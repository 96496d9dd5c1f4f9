#!/usr/bin/env python
"""Mutation testing of bpx's core: a small AST driver (no third-party mutation tool needed).

Usage (from the repository root; needs ``pip install coverage``)::

    python tools/mutation.py                 # everything: coverage map, then every mutant
    python tools/mutation.py --list          # print the mutants without running them
    python tools/mutation.py --only bpx/optim/schedules.py --only curated
    python tools/mutation.py --rerun-survivors   # only the mutants that survived the last run

How it works:

1. **Mutants.** Every module of :data:`SCOPE` is parsed; systematic operators (see
   :func:`mutations_of`) are applied one at a time to the function bodies and module constants,
   skipping what is purely cosmetic: docstrings, string constants and f-strings, ``raise`` and
   ``assert`` statements (error messages), type annotations, ``__repr__``/``__str__`` and the other
   functions of :data:`COSMETIC`. :data:`CURATED` adds hand-written mutations: the bugs issue #11
   names, which earlier suites missed.
2. **Which tests.** The tests of :data:`TESTS` run once under ``coverage`` with one context per
   test, which maps every line of the core to the tests that execute it (and records each test's
   duration). A mutant runs only the tests that execute its lines (for a default argument: the
   function's lines; for module-level code: the module's), fastest first, with ``-x``.
3. **Running.** A parent process imports NumPy, PyTorch, JAX, pytest and Hypothesis once, then
   forks one child per mutant; the child installs an import hook that compiles the mutated
   source of the one module (nothing is written to disk) and runs ``pytest.main`` on the chosen
   tests. Exit status 0: the mutant *survived*; a failure, an error, a crash or a timeout
   (3 × the tests' recorded time + 20 s): *killed*.
4. **Score.** killed / all and killed / (all − equivalent), where :data:`EQUIVALENT` lists the
   mutants that cannot change any observable behaviour, each with its reason.

Results go to ``build/mutation/`` (``results.json`` and a readable ``report.txt``). Backends:
``BPX_TEST_BACKENDS`` defaults to ``numpy,torch`` here (the fast ones; PyTorch also covers the
paths that differ on a second array library); set it to override.
"""

from __future__ import annotations

import argparse
import ast
import copy
import gc
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = "<import>"  # the coverage context of lines run while test modules are collected
OUT = ROOT / "build" / "mutation"

#: The core that is mutated: module path → functions to mutate (``None``: all but the cosmetic).
SCOPE: dict[str, set[str] | None] = {
    **{f"bpx/nn/{name}.py": None for name in ("activations", "conv", "dense", "dropout", "layer", "losses", "network",
                                              "norm", "parameter", "pooling", "reshape", "windows")},
    "bpx/optim/optimizers.py": None,
    "bpx/optim/schedules.py": None,
    **{f"bpx/training/{name}.py": None for name in ("step", "loop", "data", "metrics", "callbacks", "guard")},
    "bpx/host/init.py": None,
    # the load path only (saving is exercised by every load test, but mutated here it is not the core)
    "bpx/io/checkpoint.py": {"load_checkpoint", "read_header", "_descrs", "_header", "_check_budget",
                             "_check_listing", "_is_listing"},
    "bpx/io/contents.py": {"declared_values", "build_network", "load_arrays", "restore_optimizer", "restore_loss",
                           "checked_values", "check_names", "is_int", "is_count", "is_names", "is_metrics",
                           "is_loss", "is_optimizer"},
    "bpx/io/untrusted.py": None,
    "bpx/io/npz.py": {"NpzReader"},
    "bpx/io/safetensors.py": {"SafetensorsReader", "is_safetensors", "load_safetensors", "_metadata"},
    "bpx/testing/gradcheck.py": None,
    # the backend's fast paths, each held to its standard spelling by tests/backend
    "bpx/backend/core.py": {f"Backend.{name}" for name in ("take_rows", "matmul", "matmul_into", "relu_backward",
                                                           "split_batches", "from_host")}
    | {"_relu_backward", "narrow_product", "_narrow_transposed"},
}

#: The tests that map lines to tests (the compiled, distributed, logger and CLI tests run in
#: subprocesses or test code outside this scope; they are left out).
TESTS = ["tests/backend", "tests/nn", "tests/optim", "tests/testing", "tests/host/test_init.py",
         "tests/host/test_init_seeds.py", "tests/io/test_checkpoint.py",
         "tests/io/test_checkpoint_fuzz.py", "tests/io/test_untrusted.py", "tests/io/test_safetensors.py",
         "tests/io/test_reader_bounds.py",
         "tests/property", "tests/test_bad_input.py",
         "tests/training/test_fit.py", "tests/training/test_fit_fake_comm.py",
         "tests/training/test_fit_meta_and_history.py", "tests/training/test_metrics.py",
         "tests/training/test_failure_states.py",
         "tests/training/test_worked_example.py", "tests/training/test_backend_equivalence.py",
         "tests/training/test_mixed_precision.py"]

#: Test files that are a module's own although not named after it (module stem → test-file stems).
OWN_TESTS = {"loop": ("fit", "failure_states"), "step": ("fit", "mixed_precision"), "data": ("fit",),
             "callbacks": ("failure_states",), "guard": ("failure_states",),
             "contents": ("reader_bounds", "checkpoint"), "npz": ("reader_bounds", "checkpoint"),
             "safetensors": ("reader_bounds",), "untrusted": ("reader_bounds",),
             "checkpoint": ("reader_bounds",), "losses": ("device_targets",), "parameter": ("mixed_precision",),
             "core": ("backend",)}

#: Functions whose bodies only format text for people (reports, progress, error hints).
COSMETIC = {"__repr__", "__str__", "_describe", "_short", "_shape_text", "_shape_hint", "_print_epoch", "_progress",
            "_owner_of", "line", "report", "summary", "pair_text", "error"}

#: Local names that only hold text for an error message (``hint = "..." if ... else ""``).
COSMETIC_NAMES = {"hint", "where", "given", "length"}

#: Hand-written mutations: (module, name, exact old text occurring once, new text).
CURATED: list[tuple[str, str, str, str]] = [
    ("bpx/nn/activations.py", "softmax-not-max-shifted",
     "e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))", "e = xp.exp(x)"),
    ("bpx/nn/losses.py", "cross-entropy-not-max-shifted",
     "s = z - xp.max(z, axis=1, keepdims=True)", "s = z + 0.0"),
    ("bpx/nn/losses.py", "cross-entropy-gradient-assumes-rows-sum-to-1",
     "grad *= xp.sum(t, axis=1, keepdims=True)", "pass"),
    ("bpx/training/loop.py", "same-batch-order-every-epoch",
     "batch_order(rng, n, shuffle)", "batch_order(__import__('copy').deepcopy(rng), n, shuffle)"),
    ("bpx/training/loop.py", "nan-snapshot-not-refreshed",
     "                    snapshot = Snapshot.take(net, optimizer)\n", "                    pass\n"),
    ("bpx/training/callbacks.py", "early-stopping-patience-off-by-one",
     "elif epoch - self._tracker.best_epoch >= self.patience:",
     "elif epoch - self._tracker.best_epoch > self.patience:"),
    ("bpx/training/data.py", "training-accuracy-against-unpermuted-labels",
     "return targets if self.reference is self.targets else take(self.reference, idx)",
     "return self.reference[:idx.shape[0]]"),
    ("bpx/training/metrics.py", "binary-cross-entropy-accuracy-by-argmax",
     'if loss.accuracy == "multi_label":\n        return "multi_label"',
     'if loss.accuracy == "multi_label":\n        return "single_label"'),
    ("bpx/training/metrics.py", "binary-cross-entropy-accuracy-any-label",
     "xp.all(predicted == reference, axis=1)", "xp.any(predicted == reference, axis=1)"),
    ("bpx/training/metrics.py", "binary-cross-entropy-accuracy-threshold",
     "return targets >= 0.5", "return targets > 0.5"),
    ("bpx/optim/schedules.py", "cosine-lr-not-clamped",
     "progress = min(epoch, self.epochs) / self.epochs", "progress = epoch / self.epochs"),
    ("bpx/io/npz.py", "load-ignores-byte-order",
     "if not array.dtype.isnative:", "if False:"),
    ("bpx/host/init.py", "glorot-uniform-scale",
     "limit = math.sqrt(6.0 / (fan_in + fan_out))", "limit = math.sqrt(2.0 / (fan_in + fan_out))"),
    ("bpx/host/init.py", "lecun-normal-scale",
     "return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)",
     "return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)"),
    ("bpx/testing/gradcheck.py", "gradcheck-tolerance-loosened-1000x",
     "return self.max_rel_error <= self.rtol", "return self.max_rel_error <= 1000 * self.rtol"),
    ("bpx/testing/gradcheck.py", "gradcheck-default-rtol-1000x",
     "rtol: float = 1e-6,", "rtol: float = 1e-3,"),
    ("bpx/testing/gradcheck.py", "gradcheck-directions-all-identical",
     "d = {name: rng.standard_normal(v.shape) for name, v in base.items()}",
     "d = {name: np.random.default_rng(seed).standard_normal(v.shape) for name, v in base.items()}"),
]

#: Mutants that cannot change observable behaviour: id → reason (see docs/mutation.md).
EQUIVALENT: dict[str, str] = {
    **{f"bpx/nn/conv.py::Conv2D.{where}::const@{at}": "a wider zero-padded buffer (3·p instead of 2·p): no window "
       "reaches the extra zeros, and backward cuts them off" for where, at in (
           ("forward", "8:43-8:44"), ("forward", "8:55-8:56"), ("backward", "16:53-16:54"),
           ("backward", "16:65-16:66"))},
    "bpx/nn/network.py::Network.to::const@13:77-13:81": "zip strictness: the twin's parameters come from clones "
    "that load_state_dict has just matched name by name",
    "bpx/nn/network.py::Network.forward::const@10:90-10:95": "keep=True only retains what a backward pass would "
    "need; forward returns the outputs alone",
    **{f"bpx/nn/norm.py::BatchNorm.backward::boolop@{at}": "`or` only computes a feature sum that nothing then "
       "uses (eval mode, no weight/bias gradient wanted)" for at in ("11:59-11:87", "12:69-12:97")},
    "bpx/nn/parameter.py::ParameterStore.refresh_layout::augop@11:8-11:32": "the layout counter only has to "
    "change: −1 steps are as distinct as +1 steps (the optimizer's −1 is read only while it is unbound)",
    "bpx/nn/parameter.py::ParameterStore.enter_compiled::return@9:8-9:20": "only the compiled step's private "
    "template network gets its buffer back, and nothing reads the template's buffer outside a trace",
    "bpx/nn/parameter.py::ParameterStore.assign::delete@3:8-3:29": "without the refresh, assign writes at the "
    "offsets of the layout `values` is still in; the pending re-layout then moves the value along",
    "bpx/nn/parameter.py::Buffer.__init__::const@0:72-0:75": "a default that every caller overrides (Buffer is "
    "internal: norm layers and the loss scale pass their fill)",
    "bpx/nn/parameter.py::ParameterStore.__init__::boolop@5:21-5:62": "every caller passes names (Network, the "
    "ONNX export)",
    "bpx/nn/parameter.py::ParameterStore.__init__::const@6:23-6:24": "the version counter only has to differ "
    "from a parameter's initial −1 (its views are compared with ==)",
    "bpx/nn/parameter.py::ParameterStore.__init__::const@7:30-7:31": "the layout counter only has to differ from "
    "the optimizer's −1 (unbound) and from recorded values",
    **{f"bpx/nn/parameter.py::ParameterStore.{where}::const@{at}": "grads is set to None beside it, and grad_view "
       "answers None for that already (the constructor's value is overwritten by load_host)" for where, at in (
           ("__init__", "11:27-11:32"), ("refresh_layout", "10:27-10:32"), ("load_host", "7:27-7:32"))},
    "bpx/nn/parameter.py::ParameterStore.values_updated::boolop@3:11-3:53": "`or` also drops the cached views of "
    "an unchanged buffer after eager updates (made again on the next read; _rebound never bumps inside a trace)",
    "bpx/nn/parameter.py::ParameterStore.gradient_buffer::delete@7:12-7:36": "the buffer is reallocated only "
    "after a re-layout, whose _rebound has already cleared the views",
    **{f"bpx/nn/parameter.py::{where}::const@{at}": "the version a view was made at starts below every store "
       "version, which is ≥ 1 once the constructor has loaded the values (−1 or 0 alike)" for where, at in (
           ("Parameter.__init__", "16:30-16:31"), ("Parameter.__init__", "18:36-18:37"),
           ("ParameterStore.__init__", "16:33-16:34"))},
    "bpx/nn/parameter.py::_is_array_like::cmp0@2:47-2:76": "host_values fills the shape from a 0-d array as from "
    "a number, so either branch gives the same values",
    "bpx/nn/parameter.py::Gradients.wants::boolop@1:15-1:44": "add and add_matmul skip frozen parameters "
    "themselves; `or` only computes a sum that is dropped (no caller passes None)",
    "bpx/nn/parameter.py::Gradients.__init__::unary@4:50-4:70": "collecting the parts and joining them gives the "
    "same gradient as writing into the persistent buffer (an optimisation)",
    "bpx/nn/parameter.py::ParameterStore.grad_slot::cmp0@2:19-2:32": "swaps which of the two cache keys a view "
    "is stored under; every lookup then misses and asks grad_slot, which follows the same swapped rule",
    "bpx/nn/parameter.py::ParameterStore.set_trainable_values::unary@4:72-4:91": "skips or adds a no-op "
    "rebinding to the same array",
    "bpx/nn/pooling.py::GlobalAvgPool2D.backward::binop@5:15-5:58": "dividing by an array of ones is "
    "multiplying by it",
    **{f"bpx/nn/pooling.py::_Pool2D._place::binop@{at}": "the test only picks the general path (a zero array and "
       "one slice assignment), which gives the same gradient" for at in ("20:12-20:19", "20:21-20:28")},
    **{f"bpx/nn/pooling.py::MaxPool2D.forward::{op}": "the dtype of an internal window index: int8 holds the "
       "largest index kk − 1 = 127 at kk = 128, and int32 at kk = 127 holds the same values" for op in (
           "cmp0@8:62-8:71", "const@8:68-8:71")},
    "bpx/nn/windows.py::pair_config::const@2:17-2:18": "returns value[1] only when it equals value[0]",
    "bpx/optim/optimizers.py::Optimizer.__init__::unary@9:31-9:33": "the layout version of an unbound optimizer "
    "is never compared (bind takes the unbound path first)",
    "bpx/optim/optimizers.py::Optimizer.reset::unary@6:31-6:33": "as in __init__: the layout version of an "
    "unbound optimizer is never compared",
    **{f"bpx/optim/optimizers.py::Optimizer.{where}::const@{at}": "as above: −0 instead of −1, never compared "
       "while unbound" for where, at in (("__init__", "9:32-9:33"), ("reset", "6:32-6:33"))},
    "bpx/optim/optimizers.py::Optimizer.update::unary@18:41-18:61": "writes the same values into a new buffer "
    "instead of in place (set_trainable_values adopts it)",
    **{f"bpx/optim/optimizers.py::SGD.rule::const@{at}": "the scratch flag only allows overwriting g, which is a "
       "fresh array here either way: the same values" for at in ("3:52-3:56", "10:52-10:56")},
    "bpx/training/loop.py::<module>::const@321:16-321:20": "the default batch size of predict only splits "
    "row-wise inference into pieces",
    "bpx/training/loop.py::_check_verbose::negate@1:7-1:32": "True and False are the ints 1 and 0: they pass the "
    "range check and act as 1 and 0 wherever verbose is read",
    **{f"bpx/training/loop.py::Trainer.__init__::const@{at}": f"fit sets {name} before anything reads it"
       for at, name in (("9:20-9:25", "stop"), ("10:30-10:35", "has_validation"), ("11:24-11:29", "_chunked"))},
    **{f"bpx/training/loop.py::Trainer.fit::const@{at}": "a default of Trainer.fit, whose one caller "
       "(Sequential.fit) passes every argument" for at in ("0:57-0:58", "0:78-0:80", "1:76-1:80", "3:27-3:28",
                                                            "3:46-3:51", "3:74-3:75")},
    "bpx/training/loop.py::Trainer.evaluate::const@0:63-0:67": "a default of Trainer.evaluate, whose callers pass "
    "batch_size (which only splits row-wise inference anyway)",
    "bpx/training/loop.py::Trainer._fit::const@2:63-2:64": "a default that both callers (Trainer.fit) override",
    "bpx/training/loop.py::predict::cmp0@8:29-8:44": "a batch of exactly n rows: one slice of every row, "
    "joined, is the same array",
    "bpx/training/loop.py::Trainer._epoch::delete@54:16-54:27": "cosmetic: closes the progress bar "
    "(what the terminal shows)",
    "bpx/training/loop.py::Trainer._epoch::delete@34:20-34:33": "cosmetic: advances the progress bar",
    "bpx/training/loop.py::Trainer._fit::cmp0@29:46-29:58": "cosmetic: whether the Ctrl-C notice is printed",
    "bpx/training/loop.py::Trainer._fit::delete@49:24-49:67": "cosmetic: the per-epoch line of progress",
    "bpx/training/loop.py::Trainer._epoch::const@20:83-20:84": "k = 0 takes the branch that sets k = 1 and the "
    "same rows (max(k, 1))",
    **{f"bpx/training/loop.py::predict::const@{at}": "keep=True only retains what a backward pass would need; "
       "predict returns the outputs alone" for at in ("9:46-9:51", "10:56-10:61")},
    "bpx/training/loop.py::Trainer._epoch::const@57:77-57:81": "zip strictness: one size is appended per read "
    "loss",
    "bpx/training/loop.py::Trainer._fit::const@44:83-44:84": "the validation batch size only splits row-wise "
    "inference",
    "bpx/training/data.py::prepare_data::boolop@13:21-13:82": "`or` also re-checks host data, already checked "
    "finite on the host, on the device: nothing new is found",
    "bpx/training/data.py::prepare_data::const@20:62-20:66": "zip strictness: one flag is computed per array",
    "bpx/training/data.py::chunk_batches::const@2:24-2:25": "an input row has at least one value (layers reject "
    "empty shapes), so the guard against a zero row size never acts",
    **{key: "a shortcut for one batch: reshaping to a single batch and unstacking it, or joining one array, gives "
       "the same item" for key in (
           "bpx/backend/core.py::Backend.split_batches::const@3:22-3:23",
           "bpx/training/data.py::Chunk.count_correct::const@3:51-3:52")},
    "bpx/nn/activations.py::sigmoid::const@5:22-5:25": "m cancels out of e^m / (e^m + e^(m − x)); m = min(x, 1) "
    "keeps both exponents ≤ 1 (no overflow either): the same σ to rounding",
    "bpx/nn/losses.py::SoftmaxCrossEntropy.batch_targets::binop@3:12-3:39": "the rows split evenly into the "
    "batches, so n is the same whole number as a float",
    "bpx/backend/core.py::_relu_backward::return@7:8-7:72": "on NumPy the standard spelling gives the same "
    "values, in place as well: the boolean factor only saves the cast (speed)",
    "bpx/training/metrics.py::accuracy_kind::return@6:8-6:29": "the one caller only compares the result with "
    "\"multi_label\"",
    "bpx/training/metrics.py::accuracy_kind::const@5:23-5:24": "1-D targets reach this line only for the "
    "cross-entropy (the other losses refuse them first), whose accuracy attribute makes it single-label anyway",
    "bpx/training/callbacks.py::_Monitor.__init__::delete@8:8-8:20": "both callbacks reset their (private) "
    "tracker in on_train_begin before it is read",
    "bpx/training/callbacks.py::_Monitor.reset::const@2:27-2:28": "never read: the first epoch always improves "
    "on ±inf (fit stops on a non-finite loss first)",
    "bpx/training/callbacks.py::_Monitor.reset::unary@2:26-2:28": "never read: the first epoch always improves "
    "on ±inf (fit stops on a non-finite loss first)",
    "bpx/training/callbacks.py::ModelCheckpoint.on_train_begin::const@8:39-8:40": "checks that the folder of the "
    "first file is writable: epoch 0 or 1 names the same folder",
    "bpx/training/callbacks.py::ModelCheckpoint.on_train_begin::negate@9:32-9:62": "checkpoint_path only adds the "
    "suffix: the folder whose writability is checked is the same",
    "bpx/training/callbacks.py::_check_template::const@10:26-10:27": "any integer shows whether the template "
    "formats",
    "bpx/training/guard.py::Snapshot.restore::const@11:74-11:78": "zip strictness: the snapshot took one value "
    "per step buffer of the same network",
    "bpx/training/guard.py::Snapshot.restore::const@10:62-10:66": "this branch runs on immutable backends (JAX), "
    "whose arrays cannot change: a copy or not, the same values",
    "bpx/host/init.py::batch_order::const@0:66-0:70": "a default that both callers (the fit loop) override",
    "bpx/host/init.py::get_initializer::const@14:17-14:18": "2 or 3 arguments: both are fewer than the 4 of a "
    "fan-aware initialiser, so the callable is adapted either way",
    "bpx/training/loop.py::Trainer._evaluate::const@9:69-9:74": "keep=True only retains what a backward pass "
    "would need; evaluate reads the outputs alone",
    "bpx/training/loop.py::Trainer._fit::const@29:57-29:58": "cosmetic: whether the Ctrl-C notice is printed",
    "bpx/nn/network.py::Network.forward::const@12:54-12:58": "zip strictness: `kept` is built from `buffers` two "
    "lines above",
    "bpx/testing/gradcheck.py::gradcheck.energy::const@2:76-2:81": "keep=True only retains what a backward pass "
    "would need; energy reads the outputs alone",
    "bpx/io/npz.py::NpzReader._parse::delete@2:8-2:26": "zipfile.ZipFile seeks the file itself (to its end, then "
    "to each member), wherever it starts",
    "bpx/io/npz.py::NpzReader._parse::const@2:24-2:25": "zipfile.ZipFile seeks the file itself, wherever it starts",
    "bpx/io/npz.py::NpzReader._parse::const@7:55-7:56": "max(size, 0) = max(size, 1): the file has at least the "
    "4-byte zip magic here",
    "bpx/io/npz.py::NpzReader.close::delete@2:12-2:29": "a ZipFile given an open file object does not close it; "
    "UntrustedFile.close() closes the file",
    **{f"bpx/io/npz.py::NpzReader.array::{at}": "prefix holds exactly 10 bytes (checked above): prefix[8:11] "
       "is prefix[8:10]" for at in ("slice_upper@18:67-18:71", "const@18:69-18:71", "slice_upper@20:67-20:71",
                                     "const@20:69-20:71")},
    "bpx/io/npz.py::NpzReader.array::cmp0@42:22-42:35": "with done == nbytes the extra pass reads 0 bytes and "
    "breaks",
    "bpx/io/npz.py::NpzReader.array::const@50:31-50:32": "zipfile stops at the declared size (pragma: no cover): "
    "read(1) and read(0) both return b''",
    "bpx/io/npz.py::NpzReader.array::const@61:43-61:47": "byteswap returns the swapped array either way; inplace "
    "only saves a copy",
    "bpx/io/npz.py::NpzReader.array::binop@43:51-43:64": "a read past the rest of the data stops at the member's "
    "declared size, checked to end exactly nbytes after the header",
    "bpx/testing/gradcheck.py::gradcheck::delete@50:4-50:20": "restores net64, a float64 copy made by net.to() that "
    "is discarded afterwards (the caller's network is never touched)",
    **{f"bpx/io/safetensors.py::is_safetensors::{at}": "start holds at most 9 bytes (read(9)): start[8:10] is "
       "start[8:9]" for at in ("slice_upper@7:37-7:40", "const@7:39-7:40")},
    "bpx/io/safetensors.py::SafetensorsReader._parse::cmp0@31:55-31:71": "inside `if begin != position`, "
    "begin < position and begin <= position agree",
}


# ---------------------------------------------------------------------- mutants
@dataclass
class Mutant:
    id: str
    module: str
    line: int
    description: str
    lines: list[int] = field(default_factory=list)  # the lines whose tests run it
    node: int = -1  # index of the mutated node in walk order (systematic mutants)
    op: str = ""
    curated: tuple[str, str] | None = None  # (old, new) text (curated mutants)


BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
              ast.BitXor: ast.BitOr, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
NAME_SWAP = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum", "argmax": "argmin",
             "all": "any", "any": "all", "ceil": "floor", "floor": "ceil"}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
          ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.Lt: "<",
          ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
          ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}


def walk(tree: ast.AST) -> list[tuple[ast.AST, ast.AST | None, str, int | None]]:
    """Every node with (parent, field, index), in a fixed (breadth-first) order."""
    out: list[tuple[ast.AST, ast.AST | None, str, int | None]] = [(tree, None, "", None)]
    i = 0
    while i < len(out):
        node = out[i][0]
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                out += [(v, node, name, k) for k, v in enumerate(value) if isinstance(v, ast.AST)]
            elif isinstance(value, ast.AST):
                out.append((value, node, name, None))
        i += 1
    return out


def _skipped_nodes(tree: ast.AST, wanted: set[str] | None) -> tuple[set[int], dict[int, tuple[str, range | None]]]:
    """ids of nodes never mutated, and for every node its function (qualname) and body lines."""
    skip: set[int] = set()
    owner: dict[int, tuple[str, range | None]] = {}

    def mark(node: ast.AST) -> None:
        skip.update(id(n) for n in ast.walk(node))

    def visit(node: ast.AST, qual: str, body: range | None, in_scope: bool) -> None:
        owner[id(node)] = (qual, body)
        if not in_scope:
            skip.add(id(node))
        if isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr, ast.Import, ast.ImportFrom, ast.Global)):
            mark(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            mark(node)  # docstrings
        elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            mark(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                ast.unparse(node.value.func) in ("print", "warnings.warn"):
            mark(node)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
            if ast.unparse(node.annotation).startswith("ClassVar") and node.value is not None and \
                    not isinstance(node.value, ast.Constant):
                mark(node.value)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("__slots__", "__all__")
                                                  for t in node.targets):
            mark(node)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in COSMETIC_NAMES
                                                  for t in node.targets):
            mark(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{qual}.{node.name}" if qual else node.name
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs, node.args.vararg,
                      node.args.kwarg]:
                if a is not None and a.annotation is not None:
                    mark(a.annotation)
            if node.returns is not None:
                mark(node.returns)
            for d in node.decorator_list:
                mark(d)
            chosen = wanted is not None and name in wanted  # a function, or a method as "Class.method"
            scoped = node.name not in COSMETIC and (in_scope or chosen)
            lines = range(node.body[0].lineno, (node.end_lineno or node.body[0].lineno) + 1)
            for child in ast.iter_child_nodes(node):
                visit(child, name, lines, scoped)
            return
        if isinstance(node, ast.ClassDef):
            for d in node.decorator_list:
                mark(d)
            name = f"{qual}.{node.name}" if qual else node.name
            for child in ast.iter_child_nodes(node):
                visit(child, name, body, (in_scope or (not qual and wanted is not None and node.name in wanted))
                      and node.name not in ("Summary",))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, qual, body, in_scope)

    visit(tree, "", None, wanted is None)
    return skip, owner


def _function_starts(tree: ast.AST) -> dict[str, int]:
    """{qualname: line of its ``def``} for every function and class."""
    starts: dict[str, int] = {}

    def visit(node: ast.AST, qual: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{qual}.{child.name}" if qual else child.name
                starts[name] = child.lineno
                visit(child, name)
            else:
                visit(child, qual)

    visit(tree, "")
    return starts


def _const_mutation(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 1 if value == 0 else 0 if value == 1 else value + 1
    if isinstance(value, float):
        return value + 1.0
    return None


def mutations_of(node: ast.AST, parent: ast.AST | None, fieldname: str) -> Iterator[tuple[str, str]]:
    """(op, description) of every systematic mutation of ``node``."""
    if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
        yield "binop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[BINOP_SWAP[type(node.op)]]}"
    elif isinstance(node, ast.AugAssign):
        if type(node.op) in BINOP_SWAP:
            yield "augop", f"{SYMBOL[type(node.op)]}= -> {SYMBOL[BINOP_SWAP[type(node.op)]]}="
        yield "delete", "in-place update removed"
    elif isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in CMP_SWAP:
                yield f"cmp{k}", f"{SYMBOL[type(op)]} -> {SYMBOL[CMP_SWAP[type(op)]]}"
    elif isinstance(node, ast.BoolOp):
        yield "boolop", f"{SYMBOL[type(node.op)]} -> {'or' if isinstance(node.op, ast.And) else 'and'}"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield "unary", f"{'not' if isinstance(node.op, ast.Not) else '-'} removed"
    elif isinstance(node, ast.Constant) and _const_mutation(node.value) is not None:
        yield "const", f"{node.value!r} -> {_const_mutation(node.value)!r}"
    elif isinstance(node, ast.Slice):
        for part in ("lower", "upper"):
            if getattr(node, part) is not None:
                yield f"slice_{part}", f"slice {part} + 1"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" and node.args:
        yield "range_stop", "range stop - 1"
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        yield "return", "return None"
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "delete", "call removed"
    elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) for t in node.targets):
        yield "delete", "item assignment removed"
    if isinstance(node, ast.Name) and node.id in NAME_SWAP and isinstance(node.ctx, ast.Load) and \
            fieldname == "func":
        yield "name", f"{node.id} -> {NAME_SWAP[node.id]}"
    elif isinstance(node, ast.Attribute) and node.attr in NAME_SWAP and fieldname == "func":
        yield "name", f".{node.attr} -> .{NAME_SWAP[node.attr]}"
    if fieldname == "test" and isinstance(parent, (ast.If, ast.IfExp, ast.While)) and \
            not isinstance(node, (ast.Compare, ast.BoolOp, ast.UnaryOp)):
        yield "negate", "condition negated"


def apply(node: ast.AST, op: str) -> ast.AST:
    """The replacement for ``node`` under ``op``."""
    new = copy.deepcopy(node)
    if op in ("binop", "augop"):
        new.op = BINOP_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    elif op.startswith("cmp"):
        k = int(op[3:])
        new.ops[k] = CMP_SWAP[type(node.ops[k])]()  # type: ignore[attr-defined]
    elif op == "boolop":
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()  # type: ignore[attr-defined]
    elif op == "unary":
        new = copy.deepcopy(node.operand)  # type: ignore[attr-defined]
    elif op == "const":
        new.value = _const_mutation(node.value)  # type: ignore[attr-defined]
    elif op.startswith("slice_"):
        part = op[6:]
        setattr(new, part, ast.BinOp(getattr(node, part), ast.Add(), ast.Constant(1)))
    elif op == "range_stop":
        k = 0 if len(node.args) == 1 else 1  # type: ignore[attr-defined]
        new.args[k] = ast.BinOp(node.args[k], ast.Sub(), ast.Constant(1))  # type: ignore[attr-defined]
    elif op == "return":
        new.value = ast.Constant(None)  # type: ignore[attr-defined]
    elif op == "delete":
        new = ast.Pass()
    elif op == "name":
        if isinstance(node, ast.Name):
            new.id = NAME_SWAP[node.id]  # type: ignore[attr-defined]
        else:
            new.attr = NAME_SWAP[node.attr]  # type: ignore[attr-defined]
    elif op == "negate":
        new = ast.UnaryOp(ast.Not(), copy.deepcopy(node))
    return new


def generate(modules: list[str], curated: bool = True) -> list[Mutant]:
    mutants: list[Mutant] = []
    for module in modules:
        source = (ROOT / module).read_text()
        tree = ast.parse(source)
        skip, owner = _skipped_nodes(tree, SCOPE[module])
        module_lines = sorted({n.lineno for n in ast.walk(tree) if hasattr(n, "lineno")})
        starts = _function_starts(tree)
        for index, (node, parent, fieldname, _) in enumerate(walk(tree)):
            if id(node) in skip:
                continue
            for op, description in mutations_of(node, parent, fieldname):
                qual, body = owner.get(id(node), ("", None))
                if body is not None and node.lineno in body:  # type: ignore[attr-defined]
                    lines = list(range(node.lineno, (node.end_lineno or node.lineno) + 1))  # type: ignore[attr-defined]
                elif body is not None:  # a default argument: the function's lines
                    lines = list(body)
                else:
                    lines = module_lines
                # stable while the rest of the file changes: the line relative to the function's
                start = starts.get(qual, 0)
                where = (f"{node.lineno - start}:{node.col_offset}-"  # type: ignore[attr-defined]
                         f"{node.end_lineno - start}:{node.end_col_offset}")  # type: ignore[attr-defined]
                mutants.append(Mutant(f"{module}::{qual or '<module>'}::{op}@{where}", module,
                                      node.lineno, description, lines, index, op))  # type: ignore[attr-defined]
    for module, name, old, new in CURATED:
        if not curated and module not in modules:
            continue
        source = (ROOT / module).read_text()
        if source.count(old) != 1:
            raise SystemExit(f"curated mutant {name}: the text must occur once in {module}, found {source.count(old)}")
        line = source[:source.index(old)].count("\n") + 1
        lines = list(range(line, line + old.count("\n") + 1))
        for node in ast.walk(ast.parse(source)):  # a default argument: the function's lines
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line < node.body[0].lineno:
                lines = list(range(node.body[0].lineno, (node.end_lineno or line) + 1))
        mutants.append(Mutant(f"curated::{name}", module, line, f"curated: {name}", lines, curated=(old, new)))
    return mutants


def mutated_code(mutant: Mutant) -> object:
    path = ROOT / mutant.module
    source = path.read_text()
    if mutant.curated is not None:
        old, new = mutant.curated
        return compile(source.replace(old, new), str(path), "exec")
    tree = ast.parse(source)
    node, parent, fieldname, index = walk(tree)[mutant.node]
    new = ast.copy_location(apply(node, mutant.op), node)
    if index is None:
        setattr(parent, fieldname, new)
    else:
        getattr(parent, fieldname)[index] = new
    return compile(ast.fix_missing_locations(tree), str(path), "exec")


# ---------------------------------------------------------------------- running
class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated code of one module (every other import is untouched)."""

    def __init__(self, name: str, code: object) -> None:
        self.name, self.code = name, code

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        origin = str(ROOT / (fullname.replace(".", "/") + ".py"))
        return importlib.util.spec_from_file_location(fullname, origin, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.code, module.__dict__)


def preload() -> None:
    """Import the heavy libraries once in the parent (children inherit them through fork)."""
    os.environ.setdefault("ARRAY_API_STRICT_API_VERSION", "2024.12")
    for name in ("numpy", "torch", "jax", "jax.numpy", "array_api_strict", "array_api_compat", "pytest", "hypothesis",
                 "tqdm", "threadpoolctl", "scipy"):
        try:
            __import__(name)
        except ImportError:
            pass
    assert "bpx" not in sys.modules, "bpx must be imported by each child, after its mutation is in place"
    gc.collect()
    gc.freeze()  # the children's garbage collections skip this heap: pytest's gc at exit drops from 1 s to 0.01 s


def run_in_child(args: list[str], mutant: Mutant | None, timeout: float, log: Path | None = None) -> tuple[str, float]:
    """Run pytest with ``args`` in a forked child (with ``mutant`` applied); (outcome, seconds)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            os.setpgid(0, 0)
            fd = os.open(log if log is not None else os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if mutant is not None:
                name = mutant.module[:-3].replace("/", ".")
                sys.meta_path.insert(0, _Finder(name, mutated_code(mutant)))
            import pytest

            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore", *args]))
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if os.WIFSIGNALED(status):
        return "crash", elapsed
    code = os.WEXITSTATUS(status)
    return {0: "survived", 1: "failed", 2: "interrupted", 4: "usage error", 5: "no tests",
            99: "exception"}.get(code, f"error {code}"), elapsed


class _ContextPlugin:
    """Gives every test its own coverage context and records its duration."""

    def __init__(self, cov: object) -> None:
        self.cov = cov
        self.durations: dict[str, float] = {}
        self.failed: list[str] = []

    def pytest_runtest_setup(self, item):
        self.cov.switch_context(item.nodeid)  # type: ignore[attr-defined]

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.append(report.nodeid)


def coverage_map() -> dict:
    """Run :data:`TESTS` once under coverage in a child; return {module: {line: [tests]}} and durations."""
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / "coverage.json"
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            fd = os.open(OUT / "coverage.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import coverage
            import pytest

            cov = coverage.Coverage(data_file=None, include=[str(ROOT / m) for m in SCOPE])
            plugin = _ContextPlugin(cov)
            cov.start()
            code = int(pytest.main(["-q", "-p", "no:cacheprovider", "-W", "ignore", *TESTS], plugins=[plugin]))
            cov.stop()
            data = cov.get_data()
            lines: dict[str, dict[int, list[str]]] = {}
            for module in SCOPE:
                by_line = data.contexts_by_lineno(str(ROOT / module))
                lines[module] = {int(k): sorted(c or IMPORT for c in v) for k, v in by_line.items()}
            target.write_text(json.dumps({"lines": lines, "durations": plugin.durations, "failed": plugin.failed}))
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.waitpid(pid, 0)
    if not target.exists():
        raise SystemExit(f"the coverage run failed; see {OUT / 'coverage.log'}")
    result = json.loads(target.read_text())
    if result["failed"]:
        raise SystemExit(f"tests fail without any mutation: {result['failed'][:5]}; see {OUT / 'coverage.log'}")
    return result


def tests_for(mutant: Mutant, cov: dict, limit: int) -> tuple[list[str], int]:
    """The tests that execute the mutant's lines, at most ``limit`` of them: those of the module's
    own test files (named after it, then those listed in :data:`OWN_TESTS`, in that order; the
    fastest first within each) first, then the fastest of each other test file (breadth), then the
    fastest of the rest; run fastest first. Also the number of tests that execute the lines."""
    by_line = cov["lines"].get(mutant.module, {})
    tests: set[str] = set()
    for line in mutant.lines:
        tests.update(by_line.get(str(line), []))
    if IMPORT in tests:  # run when the module is imported (a class attribute, a registry): any test of the module
        tests = {t for contexts in by_line.values() for t in contexts}
    tests.discard(IMPORT)
    durations = cov["durations"]
    ranked = sorted(tests, key=lambda t: (durations.get(t, 0.0), t))
    if len(ranked) > limit:
        stem = Path(mutant.module).stem  # the module's own test files first (tests/nn/test_network*.py)
        own = (stem, *OWN_TESTS.get(stem, ()))
        rank = {t: next((k for k, s in enumerate(own) if s in Path(t.split("::")[0]).stem), None) for t in ranked}
        chosen = sorted((t for t in ranked if rank[t] is not None), key=lambda t: rank[t])[:limit]  # stable
        files: dict[str, list[str]] = {}
        for t in ranked:
            if t not in chosen:
                files.setdefault(t.split("::")[0], []).append(t)
        depth = 0
        while len(chosen) < limit and any(depth < len(v) for v in files.values()):
            chosen += [v[depth] for v in files.values() if depth < len(v)][:limit - len(chosen)]
            depth += 1
        ranked = sorted(chosen, key=lambda t: (durations.get(t, 0.0), t))
    return ranked, len(tests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="a module of SCOPE, or 'curated' (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--rerun-survivors", action="store_true", help="only the survivors of the last run")
    parser.add_argument("--id", action="append", default=[], help="only mutants whose id starts with this")
    parser.add_argument("--reuse-coverage", action="store_true", help="reuse build/mutation/coverage.json")
    parser.add_argument("--max-tests", type=int, default=100,
                        help="run at most this many of the tests that execute a mutant (default 100)")
    parser.add_argument("--skip-baseline", action="store_true", help="do not rerun the mapped tests by id first")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from results.json (after "
                        "editing EQUIVALENT)")
    parser.add_argument("--resume", action="store_true", help="keep the results of build/mutation/results.json and "
                        "run only the mutants it does not have")
    options = parser.parse_args()
    os.chdir(ROOT)
    os.environ.setdefault("BPX_TEST_BACKENDS", "numpy,torch")
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    modules = [m for m in options.only if m != "curated"] or ([] if options.only else list(SCOPE))
    unknown = [m for m in modules if m not in SCOPE]
    if unknown:
        raise SystemExit(f"not in SCOPE: {unknown}")
    mutants = generate(modules, curated=not options.only or "curated" in options.only)
    if options.id:
        mutants = [m for m in mutants if any(m.id.startswith(p) for p in options.id)]
    previous_path = OUT / "results.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    if previous:  # results of mutants the code no longer has (it changed since) are dropped
        current = {m.id for m in generate(list(SCOPE))}
        stale = [k for k in previous.get("mutants", {}) if k not in current]
        for k in stale:
            del previous["mutants"][k]
        if stale:
            print(f"dropped {len(stale)} results of mutants the code no longer has", flush=True)
    if options.rerun_survivors:
        # (a survivor listed in EQUIVALENT keeps its result: summarise marks it equivalent)
        mutants = [m for m in mutants if previous.get("mutants", {}).get(m.id, {}).get("outcome") == "survived"
                   and m.id not in EQUIVALENT]
    if options.report:
        summary = previous.get("summary", {})
        summarise(previous.get("mutants", {}), summary.get("seconds", 0), summary.get("mapping_seconds", 0))
        return
    if options.list:
        for m in mutants:
            print(f"{m.id:<70} {m.module}:{m.line}  {m.description}")
        print(f"{len(mutants)} mutants")
        return

    preload()
    started = time.perf_counter()
    cov_path = OUT / "coverage.json"
    if options.reuse_coverage and cov_path.exists():
        cov = json.loads(cov_path.read_text())
    else:
        print(f"mapping lines to tests ({' '.join(TESTS)}) ...", flush=True)
        cov = coverage_map()
    if not (options.reuse_coverage or options.skip_baseline):  # every recorded test id must pass without a mutant
        ids = sorted(cov["durations"])
        outcome, elapsed = run_in_child(ids, None, 3 * sum(cov["durations"].values()) + 60, OUT / "baseline.log")
        if outcome != "survived":
            raise SystemExit(f"the tests do not pass when run by id ({outcome}); see {OUT / 'baseline.log'}")
    mapping_time = time.perf_counter() - started
    print(f"  {len(cov['durations'])} tests, {sum(cov['durations'].values()):.0f} s ({mapping_time:.0f} s with "
          f"coverage)", flush=True)

    keep = options.rerun_survivors or options.only or options.id or options.resume
    results = previous.get("mutants", {}) if keep else {}
    if options.resume:
        done = {(r["module"], r["node"], r["op"], r["description"]) for r in results.values()}
        mutants = [m for m in mutants if (m.module, m.node, m.op, m.description) not in done]
    for k, m in enumerate(mutants, 1):
        tests, covering = tests_for(m, cov, options.max_tests)
        if not tests:
            outcome, elapsed = "survived", 0.0
            note = "no test executes this line"
        else:
            budget = 3 * sum(cov["durations"].get(t, 1.0) for t in tests) + 20
            log = OUT / "last.log"
            outcome, elapsed = run_in_child(tests, m, budget, log)
            note = ""
            if outcome == "survived":
                note = f"{len(tests)} of the {covering} tests that execute it ran"
        if outcome not in ("survived",):
            verdict = "killed"
        else:
            verdict = "equivalent" if m.id in EQUIVALENT else "survived"
        results[m.id] = {**asdict(m), "outcome": verdict, "how": outcome, "seconds": round(elapsed, 2),
                         "tests": len(tests), "note": note or EQUIVALENT.get(m.id, "")}
        results[m.id].pop("lines")
        mark = {"killed": ".", "survived": "S", "equivalent": "e"}[verdict]
        if k % 50 == 0:
            summarise(results, time.perf_counter() - started, mapping_time, quiet=True)
        print(f"[{k}/{len(mutants)}] {mark} {m.id}  {m.module}:{m.line} {m.description} ({outcome}, {elapsed:.1f} s)",
              flush=True)
    total_time = time.perf_counter() - started
    summarise(results, total_time, mapping_time)


def summarise(results: dict, total_time: float, mapping_time: float, quiet: bool = False) -> None:
    for r in results.values():  # the verdict of a surviving mutant follows the current EQUIVALENT table
        if r["outcome"] in ("survived", "equivalent"):
            r["outcome"] = "equivalent" if r["id"] in EQUIVALENT else "survived"
            if r["outcome"] == "equivalent":
                r["note"] = EQUIVALENT[r["id"]]
            elif r["note"] in EQUIVALENT.values():
                r["note"] = ""
    counts = {k: sum(1 for r in results.values() if r["outcome"] == k) for k in ("killed", "survived", "equivalent")}
    total = sum(counts.values())
    raw = counts["killed"] / total if total else 0.0
    adjusted = counts["killed"] / (total - counts["equivalent"]) if total - counts["equivalent"] else 0.0
    summary = {"mutants": total, **counts, "raw_score": round(raw, 4), "adjusted_score": round(adjusted, 4),
               "seconds": round(total_time), "mapping_seconds": round(mapping_time),
               "backends": os.environ.get("BPX_TEST_BACKENDS")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"summary": summary, "mutants": results}, indent=1))
    lines = [json.dumps(summary), ""]
    for r in sorted(results.values(), key=lambda r: (r["outcome"], r["module"], r["line"])):
        if r["outcome"] != "killed":
            lines.append(f"{r['outcome'].upper():<10} {r['id']}  {r['module']}:{r['line']}  {r['description']}  "
                         f"{r['note']}")
    (OUT / "report.txt").write_text("\n".join(lines) + "\n")
    if quiet:
        return
    unknown = sorted(set(EQUIVALENT) - set(results))
    if unknown:
        print(f"EQUIVALENT names mutants that are not in the results: {unknown}")
    print("\n".join(lines[:1]))
    print(f"killed {counts['killed']}, survived {counts['survived']}, equivalent {counts['equivalent']} of {total}: "
          f"raw {100 * raw:.1f} %, adjusted {100 * adjusted:.1f} % ({total_time / 60:.1f} min); "
          f"survivors in {OUT / 'report.txt'}")


if __name__ == "__main__":
    main()
