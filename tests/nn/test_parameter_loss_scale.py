"""LossScale's schedule by hand: the scale doubles after exactly 2000 finite steps in a row
(PyTorch GradScaler's growth_interval) and halves after a non-finite one."""

import numpy as np

from bpx.nn.parameter import LossScale


def test_scale_doubles_after_exactly_2000_finite_steps_and_halves_on_a_bad_one():
    ls = LossScale(8.0)
    ls.scale.value, ls.good_steps.value = np.asarray(8.0), np.asarray(0.0)
    ok, bad = np.asarray(True), np.asarray(False)
    for _ in range(1999):
        ls.update(ok, np)
    assert float(ls.scale.value) == 8.0 and float(ls.good_steps.value) == 1999.0
    ls.update(ok, np)
    assert float(ls.scale.value) == 16.0 and float(ls.good_steps.value) == 0.0
    ls.update(ok, np)
    ls.update(bad, np)
    assert float(ls.scale.value) == 8.0 and float(ls.good_steps.value) == 0.0
