"""bpx.random: bit-identical counter-based random numbers on every backend, checked against an
independent pure-Python reference, for int32 safety, for statistical quality and for host syncs.

Self-contained: its own backend parametrisation, host conversion and statistics (no SciPy).
"""

import os

os.environ.setdefault("ARRAY_API_STRICT_API_VERSION", "2024.12")   # before array_api_strict is imported

import json
import math
import subprocess
import sys
import textwrap
import types

import array_api_compat.numpy as anp
import numpy as np
import pytest

import bpx.random as br
from bpx.errors import BpxTypeError, BpxValueError
from bpx.random import keep_mask, random_bits, uniform

# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------
BACKENDS = ["numpy", "strict", "strict-device1", "torch", "jax"]


def get_backend(name):
    """``(xp, device)`` for a backend name; skips (with the reason) when the package is missing."""
    if name == "numpy":
        return anp, "cpu"
    if name.startswith("strict"):
        xs = pytest.importorskip("array_api_strict")
        device = xs.Device("device1") if name == "strict-device1" else xs.__array_namespace_info__().default_device()
        return xs, device
    if name == "torch":
        pytest.importorskip("torch")
        import array_api_compat.torch as tx
        return tx, "cpu"
    if name == "jax":
        jax = pytest.importorskip("jax")
        return jax.numpy, jax.devices("cpu")[0]
    raise AssertionError(name)


def to_host(x):
    """Copy an array of any tested backend to a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    module = type(x).__module__
    if module.startswith("torch"):
        return x.detach().cpu().numpy()
    if module.startswith("array_api_strict"):
        import array_api_strict as xs
        return np.from_dlpack(x.to_device(xs.Device("CPU_DEVICE")))
    return np.asarray(x)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return get_backend(request.param)


# --------------------------------------------------------------------------------------------
# an independent reference: the algorithm of docs/random.md, one element at a time in Python ints
# --------------------------------------------------------------------------------------------
def ref_round_keys(seed, step, stream):
    """SplitMix64 words of (seed, stream), xored with the spread step limbs (docs/random.md)."""
    mask64 = 2**64 - 1
    state = (seed << 31) | stream
    lo = ((step & 0xFFFF) * 0x6A09) % 2**16
    hi = ((step >> 16) * 0xE667) % 2**15
    keys = []
    for r in range(7):
        state = (state + 0x9E3779B97F4A7C15) & mask64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask64
        z ^= z >> 31
        keys.append((z % 2**15) ^ hi if r % 2 == 0 else (z % 2**16) ^ lo)
    return keys


def ref_bits(seed, step, stream, n):
    """Random bits for counters 0..n-1, with every intermediate value checked to fit in int32."""
    keys = ref_round_keys(seed, step, stream)
    out = []
    for c in range(n):
        a, b = c % 2**16, c // 2**16                # (16-bit, 15-bit) limbs
        for r, k in enumerate(keys):
            if r % 2 == 0:                          # 16-bit limb times 15-bit multiplier
                prod = a * 0x7A35
                a, b = (prod // 2**16) ^ b ^ k, prod % 2**16
            else:                                   # 15-bit limb times 16-bit multiplier
                prod = a * 0xB5A7
                a, b = (prod // 2**15) ^ b ^ k, prod % 2**15
            assert 0 <= prod < 2**31
        assert a < 2**15 and b < 2**16
        out.append(((a << 16) | b) >> 7)
    return out


CASES = [  # (seed, step, stream, shape)
    (0, 0, 0, (9,)),
    (1, 2, 3, (4, 5)),
    (2**31 - 1, 2**31 - 1, 2**31 - 1, (3, 2, 5)),
    (123, 65536, 7, ()),
    (5, 99, 0, (0, 3)),
    (42, 7, 1, (70000,)),        # counters above 2**16 use the high limb
]


def numpy_bits(seed, step, stream, shape):
    return np.asarray(random_bits(anp, "cpu", shape, seed=seed, step=step, stream=stream))


# --------------------------------------------------------------------------------------------
# correctness
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed, step, stream, shape", CASES[:5])
def test_numpy_matches_independent_reference(seed, step, stream, shape):
    got = numpy_bits(seed, step, stream, shape)
    assert got.dtype == np.int32 and got.shape == shape
    assert got.reshape(-1).tolist() == ref_bits(seed, step, stream, math.prod(shape))


def test_reference_above_first_limb():
    got = numpy_bits(42, 7, 1, (70000,))
    idx = [0, 1, 65535, 65536, 65537, 69999]
    ref = ref_bits(42, 7, 1, 70000)
    assert [int(got[i]) for i in idx] == [ref[i] for i in idx]


def test_known_answers():
    """Pinned values (seed=0, step=0, stream=0) and (seed=1, step=2, stream=3): the stream is stable."""
    assert numpy_bits(0, 0, 0, (6,)).tolist() == KNOWN_000
    assert numpy_bits(1, 2, 3, (6,)).tolist() == KNOWN_123
    assert ref_bits(0, 0, 0, 6) == KNOWN_000


#: Known answers, pinned so that any change of the algorithm (and of every stored mask) is noticed.
KNOWN_000 = [11231055, 4192361, 5974553, 901902, 10015771, 6359565]
KNOWN_123 = [5652702, 11012954, 1171944, 2024479, 12336556, 15720500]


@pytest.mark.parametrize("seed, step, stream, shape", CASES)
def test_bit_identical_across_backends(backend, seed, step, stream, shape):
    xp, device = backend
    expected = numpy_bits(seed, step, stream, shape)
    bits = random_bits(xp, device, shape, seed=seed, step=step, stream=stream)
    assert bits.dtype == xp.int32 and tuple(bits.shape) == shape
    np.testing.assert_array_equal(to_host(bits), expected)
    # step given as a 0-d int32 array on the device gives the same bits
    step_arr = xp.asarray(step, dtype=xp.int32, device=device)
    np.testing.assert_array_equal(to_host(random_bits(xp, device, shape, seed=seed, step=step_arr, stream=stream)),
                                  expected)


def test_step_array_dtypes(backend):
    xp, device = backend
    expected = numpy_bits(3, 70001, 4, (50,))
    names = ["int16", "int32", "int64", "uint32"] if xp.__name__ != "jax.numpy" else ["int16", "int32", "uint32"]
    for name in names:
        if name == "int16":
            expected_i = numpy_bits(3, 30001, 4, (50,))
            step = xp.asarray(30001, dtype=getattr(xp, name), device=device)
        else:
            expected_i = expected
            step = xp.asarray(70001, dtype=getattr(xp, name), device=device)
        got = random_bits(xp, device, (50,), seed=3, step=step, stream=4)
        np.testing.assert_array_equal(to_host(got), expected_i, err_msg=name)


def test_array_step_wraps_modulo_2_31():
    expected = numpy_bits(3, 5, 4, (20,))
    for step in (np.asarray(2**31 + 5, dtype=np.int64), np.asarray(-(2**31) + 5, dtype=np.int32),
                 np.asarray(-(2**31) + 5, dtype=np.int64)):
        np.testing.assert_array_equal(numpy_bits(3, step, 4, (20,)), expected)


def test_uniform_and_keep_mask_identical_across_backends(backend):
    xp, device = backend
    shape = (31, 17)
    bits = numpy_bits(9, 11, 13, shape)
    for dtype in ("float32", "float64"):
        if xp.__name__ == "jax.numpy" and dtype == "float64":
            import jax
            if not jax.config.jax_enable_x64:
                continue
        u = uniform(xp, device, shape, seed=9, step=11, stream=13, dtype=getattr(xp, dtype))
        assert u.dtype == getattr(xp, dtype)
        np.testing.assert_array_equal(to_host(u), bits.astype(np.float64) / 2**24)
    for p in (0.0, 0.1, 0.5, 0.9, 1.0):
        m = keep_mask(xp, device, shape, p, seed=9, step=11, stream=13)
        assert m.dtype == xp.bool
        np.testing.assert_array_equal(to_host(m), bits < round(p * 2**24), err_msg=str(p))


def test_prefix_and_shape_independence():
    flat = numpy_bits(4, 5, 6, (100,))
    np.testing.assert_array_equal(numpy_bits(4, 5, 6, (10,)), flat[:10])
    np.testing.assert_array_equal(numpy_bits(4, 5, 6, (4, 25)), flat.reshape(4, 25))
    assert numpy_bits(4, 5, 6, 100).shape == (100,)


def test_uniform_values():
    u = np.asarray(uniform(anp, "cpu", (1000,), seed=1, step=1, stream=1, dtype=anp.float32))
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_array_equal(u * np.float32(2**24), numpy_bits(1, 1, 1, (1000,)).astype(np.float32))


# --------------------------------------------------------------------------------------------
# int32 safety and the operation count, by running the real code on checked int64 arrays
# --------------------------------------------------------------------------------------------
class Checked(np.ndarray):
    """Counts every element-wise operation and asserts that integer results lie in [0, 2**31)."""

    ops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        Checked.ops += 1
        args = [np.asarray(a) if isinstance(a, Checked) else a for a in inputs]
        out = getattr(ufunc, method)(*args, **kwargs)
        if out.dtype.kind in "iu" and out.size:
            assert out.min() >= 0 and out.max() < 2**31, f"{ufunc.__name__} left the int32 range"
        return np.asarray(out).view(Checked)


def checked_namespace(widen):
    """array_api_compat.numpy whose arrays are Checked; with ``widen``, its "int32" is int64, so an
    overflow of int32 would show up as a value >= 2**31 instead of wrapping."""
    ns = types.SimpleNamespace(**{k: getattr(anp, k) for k in dir(anp) if not k.startswith("__")})
    ns.__name__ = "checked"
    if widen:
        ns.int32 = np.int64

    def wrap(f):
        def g(*args, **kwargs):
            Checked.ops += 1
            return np.asarray(f(*args, **kwargs)).view(Checked)
        return g

    def arange(n, dtype, device):
        return wrap(anp.arange)(n, dtype=dtype, device=device)

    ns.arange, ns.astype, ns.reshape = arange, wrap(anp.astype), wrap(anp.reshape)
    return ns


@pytest.mark.parametrize("seed, step, stream", [(0, 0, 0), (2**31 - 1, 2**31 - 1, 2**31 - 1), (12345, 65535, 7),
                                                (1, 65536, 2**30)])
def test_no_intermediate_leaves_int32_range(seed, step, stream):
    xp = checked_namespace(widen=True)
    rng = np.random.default_rng(seed % 1000)
    counters = np.concatenate([np.asarray([0, 1, 0xFFFF, 0x10000, 2**31 - 2, 2**31 - 1]),
                               rng.integers(0, 2**31, 20000)]).astype(np.int64)
    for step_arg in (step, np.asarray(step, dtype=np.int64).view(Checked)):
        keys = br._round_keys(seed, stream, *br._step_limbs(xp, step_arg))
        keys = [int(k) for k in keys]
        assert all(0 <= k < 2**16 for k in keys)
        state = np.asarray(br._state(counters.view(Checked), keys))
        assert state.min() >= 0 and state.max() < 2**31
        # the same counters in true int32 give the same state: nothing wrapped
        np.testing.assert_array_equal(br._state(counters.astype(np.int32), keys), state)
    # the public functions too
    for f in (lambda ns: random_bits(ns, "cpu", (3000,), seed=seed, step=step, stream=stream),
              lambda ns: keep_mask(ns, "cpu", (3000,), 0.7, seed=seed, step=step, stream=stream),
              lambda ns: uniform(ns, "cpu", (3000,), seed=seed, step=step, stream=stream, dtype=ns.float64)):
        np.testing.assert_array_equal(np.asarray(f(xp)), np.asarray(f(anp)))


def test_constants_keep_products_below_2_31():
    assert (2**16 - 1) * br._MUL_S < 2**31 and (2**15 - 1) * br._MUL_L < 2**31
    assert (2**16 - 1) * br._SPREAD_LO < 2**31 and (2**15 - 1) * br._SPREAD_HI < 2**31
    assert all(m % 2 == 1 for m in (br._MUL_S, br._MUL_L, br._SPREAD_LO, br._SPREAD_HI))   # bijective
    assert br.ROUNDS % 2 == 1 and br.ROUNDS >= 3   # the last round is a 16-bit x 15-bit one
    assert (2**15 - 1) << 16 < 2**31     # the final (x1 ^ key) << 16


@pytest.mark.parametrize("func, step_kind, expected", [
    ("random_bits", "int", 38), ("keep_mask", "int", 38), ("uniform", "int", 40),
    ("random_bits", "int32", 52), ("keep_mask", "int32", 52), ("uniform", "int32", 54),
    ("random_bits", "int64", 53), ("uniform", "int64", 55),
])
def test_operation_count_as_documented(func, step_kind, expected):
    xp = checked_namespace(widen=False)
    step = 5 if step_kind == "int" else np.asarray(5, dtype=step_kind).view(Checked)
    extra = {"keep_mask": (0.5,)}.get(func, ())
    kw = {"dtype": xp.float32} if func == "uniform" else {}
    Checked.ops = 0
    getattr(br, func)(xp, "cpu", (4, 8), *extra, seed=1, step=step, stream=2, **kw)
    assert Checked.ops == expected


# --------------------------------------------------------------------------------------------
# no host synchronisation: torch meta, jax.jit with a traced step
# --------------------------------------------------------------------------------------------
def test_runs_on_torch_meta():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as tx
    for step in (3, torch.asarray(3, dtype=torch.int32, device="meta"), torch.asarray(3, device="meta")):
        b = random_bits(tx, "meta", (5, 7), seed=1, step=step, stream=2)
        m = keep_mask(tx, "meta", (5, 7), 0.5, seed=1, step=step, stream=2)
        u = uniform(tx, "meta", (5, 7), seed=1, step=step, stream=2, dtype=tx.float32)
        assert b.device.type == m.device.type == u.device.type == "meta"
        assert b.shape == m.shape == u.shape == (5, 7)
        assert (b.dtype, m.dtype, u.dtype) == (torch.int32, torch.bool, torch.float32)


def test_traces_under_jax_jit_with_traced_step():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    dev = jax.devices("cpu")[0]

    @jax.jit
    def masks(step):
        return (keep_mask(jnp, dev, (6, 9), 0.8, seed=4, step=step, stream=5),
                random_bits(jnp, dev, (6, 9), seed=4, step=step, stream=5))

    for s in (0, 1, 2**31 - 1):
        m, b = masks(jnp.asarray(s, dtype=jnp.int32))
        np.testing.assert_array_equal(np.asarray(b), numpy_bits(4, s, 5, (6, 9)))
        np.testing.assert_array_equal(np.asarray(m), np.asarray(keep_mask(jnp, dev, (6, 9), 0.8, seed=4, step=s,
                                                                            stream=5)))

    def body(carry, step):               # steps as a scanned (traced) sequence
        return carry, random_bits(jnp, dev, (4,), seed=1, step=step, stream=0)

    _, out = jax.lax.scan(body, 0, jnp.arange(5, dtype=jnp.int32))
    np.testing.assert_array_equal(np.asarray(out), np.stack([numpy_bits(1, s, 0, (4,)) for s in range(5)]))


JAX_SCRIPT = textwrap.dedent("""
    import json, jax, jax.numpy as jnp
    from bpx.random import random_bits, keep_mask
    dev = jax.devices("cpu")[0]
    cases = json.loads(CASES)
    out = {"x64": bool(jax.config.jax_enable_x64), "eager": [], "array": [], "jit": [], "mask": []}
    f = jax.jit(lambda s, seed, stream, shape: random_bits(jnp, dev, shape, seed=seed, step=s, stream=stream),
                static_argnums=(1, 2, 3))
    for seed, step, stream, shape in cases:
        shape = tuple(shape)
        kw = dict(seed=seed, stream=stream)
        out["eager"].append(random_bits(jnp, dev, shape, step=step, **kw).reshape(-1).tolist())
        out["array"].append(random_bits(jnp, dev, shape, step=jnp.asarray(step), **kw).reshape(-1).tolist())
        out["jit"].append(f(jnp.asarray(step), seed, stream, shape).reshape(-1).tolist())
        out["mask"].append(keep_mask(jnp, dev, shape, 0.3, step=step, **kw).reshape(-1).tolist())
    print(json.dumps(out))
""")


@pytest.mark.parametrize("x64", ["0", "1"])
def test_jax_bit_identical_with_and_without_x64(x64):
    pytest.importorskip("jax")
    cases = [c for c in CASES if math.prod(c[3]) < 1000]
    script = JAX_SCRIPT.replace("CASES", repr(json.dumps(cases)))
    env = {**os.environ, "JAX_ENABLE_X64": x64, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["x64"] == (x64 == "1")
    for i, (seed, step, stream, shape) in enumerate(cases):
        expected = numpy_bits(seed, step, stream, shape).reshape(-1).tolist()
        assert out["eager"][i] == out["array"][i] == out["jit"][i] == expected, (x64, seed, step, stream, shape)
        assert out["mask"][i] == [b < round(0.3 * 2**24) for b in expected]


# --------------------------------------------------------------------------------------------
# statistics (on NumPy: the bits are the same everywhere)
# --------------------------------------------------------------------------------------------
N = 1 << 20
P_MIN = 1e-6        # a correct generator fails a test with probability 1e-6; a broken one fails hugely


def chi2_sf(x, k):
    """Survival function of the chi-square distribution with ``k`` degrees of freedom."""
    a, x = k / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:                                   # series for the lower incomplete gamma
        term = total = 1.0 / a
        n = a
        while abs(term) > 1e-15 * abs(total):
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1.0 - math.exp(log_front) * total)
    b, c, d = x + 1 - a, 1e300, 1.0 / (x + 1 - a)  # continued fraction for the upper one (Lentz)
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1.0 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def normal_p(z):
    return math.erfc(abs(z) / math.sqrt(2))


def chi2_p(counts):
    counts = np.asarray(counts, dtype=np.float64)
    expected = counts.sum() / counts.size
    return chi2_sf(float(((counts - expected) ** 2).sum() / expected), counts.size - 1)


def corr_p(a, b):
    r = np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1]
    return normal_p(r * math.sqrt(a.size))


def bpx_gen(seed, step, stream, n):
    return numpy_bits(seed, step, stream, (n,)).astype(np.int64)


def battery(gen):
    """p-values of every test on the 24-bit outputs of ``gen(seed, step, stream, n)``."""
    x = gen(11, 5, 3, N)
    u = x / 2**24
    ps = {"mean": normal_p((u.mean() - 0.5) / math.sqrt(1 / 12 / N)),
          "variance": normal_p((u.var() - 1 / 12) / math.sqrt(1 / 180 / N)),
          "top 8 bits, 256 buckets": chi2_p(np.bincount(x >> 16, minlength=256)),
          "low 8 bits, 256 buckets": chi2_p(np.bincount(x & 255, minlength=256)),
          "neighbour pairs, 16x16 buckets": chi2_p(np.bincount((x[:-1] >> 20) * 16 + (x[1:] >> 20), minlength=256)),
          "neighbour counters": corr_p(u[:-1], u[1:]),
          "neighbour counters, low bytes": corr_p(x[:-1] & 255, x[1:] & 255)}
    for b in range(24):
        ps[f"bit {b}"] = chi2_p(np.bincount((x >> b) & 1, minlength=2))
    for name, other in [("next step", gen(11, 6, 3, N)), ("step + 2**16", gen(11, 5 + 2**16, 3, N)),
                        ("next seed", gen(12, 5, 3, N)), ("next stream", gen(11, 5, 4, N))]:
        ps[name] = corr_p(x, other)
        ps[f"{name}, low bytes"] = corr_p(x & 255, other & 255)
        ps[f"{name}, 16x16 buckets"] = chi2_p(np.bincount((x >> 20) * 16 + (other >> 20), minlength=256))
    return ps


def failures(ps):
    return {k: v for k, v in ps.items() if not v > P_MIN}


def test_chi2_sf_matches_known_values():
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(310.4573882199136, 255) == pytest.approx(0.01, rel=1e-7)
    assert chi2_sf(100.0, 255) == pytest.approx(1.0, abs=1e-12)
    assert chi2_sf(420.0, 255) == pytest.approx(3.3528874521445467e-10, rel=1e-9)
    assert chi2_sf(30.0, 3) == pytest.approx(1.3800570312932553e-06, rel=1e-9)
    assert chi2_sf(0.5, 4) == pytest.approx(0.9735009788392561, rel=1e-9)


def test_statistical_battery_passes():
    ps = battery(bpx_gen)
    assert len(ps) >= 40
    assert not failures(ps), failures(ps)


def test_fewer_rounds_still_pass(monkeypatch):
    """Five rounds already pass the battery: the default seven leave a margin."""
    monkeypatch.setattr(br, "ROUNDS", 5)
    bad = failures(battery(bpx_gen))
    assert not bad, bad


def counter_only(seed, step, stream, n):
    return np.arange(n, dtype=np.int64) % 2**24


def multiplicative(seed, step, stream, n):           # a plain multiplicative hash, keyed by everything
    return (np.arange(n, dtype=np.int64) * 0x9E3779B1 + seed * 0x85EBCA6B + step * 0xC2B2AE35 + stream) % 2**24


@pytest.mark.parametrize("weak, caught_by", [
    (counter_only, "bit 23"),
    (multiplicative, "neighbour pairs, 16x16 buckets"),
    (lambda seed, step, stream, n: bpx_gen(seed, 0, stream, n), "next step"),
    (lambda seed, step, stream, n: bpx_gen(seed, step & 0xFFFF, stream, n), "step + 2**16"),
    (lambda seed, step, stream, n: bpx_gen(0, step, stream, n), "next seed"),
    (lambda seed, step, stream, n: bpx_gen(seed, step, 0, n), "next stream"),
    (lambda seed, step, stream, n: bpx_gen(seed, step, stream, n) & 0xFFFF00 | bpx_gen(seed, 0, stream, n) & 0xFF,
     "next step, low bytes"),
], ids=["counter-mod-2**24", "multiplicative-hash", "ignores-step", "ignores-step-high-bits", "ignores-seed",
        "ignores-stream", "low-byte-ignores-step"])
def test_weak_generators_fail_the_battery(weak, caught_by):
    ps = battery(weak)
    assert ps[caught_by] < P_MIN, (caught_by, ps[caught_by])


def test_three_rounds_fail_the_battery(monkeypatch):
    monkeypatch.setattr(br, "ROUNDS", 3)
    assert {"neighbour pairs, 16x16 buckets", "next step"} <= set(failures(battery(bpx_gen)))


def test_keep_rate():
    for p in (0.1, 0.5, 0.9, 0.3333):
        rate = np.asarray(keep_mask(anp, "cpu", (N,), p, seed=2, step=3, stream=4)).mean()
        assert abs(rate - p) < 5.5 * math.sqrt(p * (1 - p) / N), (p, rate)


def test_keep_mask_extremes(backend):
    xp, device = backend
    assert not to_host(keep_mask(xp, device, (300, 7), 0.0, seed=1, step=2, stream=3)).any()
    assert to_host(keep_mask(xp, device, (300, 7), 1.0, seed=1, step=2, stream=3)).all()
    assert to_host(keep_mask(xp, device, (300, 7), 1, seed=1, step=2, stream=3)).all()


# --------------------------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    ({"seed": -1}, BpxValueError, "seed"),
    ({"seed": 2**31}, BpxValueError, "seed"),
    ({"seed": 1.5}, BpxTypeError, "seed"),
    ({"seed": True}, BpxTypeError, "seed"),
    ({"seed": "3"}, BpxTypeError, "seed"),
    ({"stream": -1}, BpxValueError, "stream"),
    ({"stream": 2**31}, BpxValueError, "stream"),
    ({"stream": None}, BpxTypeError, "stream"),
    ({"step": -1}, BpxValueError, "step"),
    ({"step": 2**31}, BpxValueError, "step"),
    ({"step": 2.0}, BpxTypeError, "step"),
    ({"step": np.asarray([1, 2])}, BpxValueError, "step"),
    ({"step": np.asarray(1.0)}, BpxTypeError, "step"),
    ({"step": np.asarray(True)}, BpxTypeError, "step"),
    ({"shape": (2, -1)}, BpxValueError, "shape"),
    ({"shape": (2, 1.5)}, BpxTypeError, "shape"),
    ({"shape": "ab"}, BpxTypeError, "shape"),
    ({"shape": (2**16, 2**15)}, BpxValueError, "shape"),
])
def test_bad_arguments(kwargs, error, match):
    args = {"shape": (3,), "seed": 1, "step": 2, "stream": 3, **kwargs}
    shape = args.pop("shape")
    with pytest.raises(error, match=match):
        random_bits(anp, "cpu", shape, **args)


def test_bad_keep_prob_and_dtype():
    for p, error in ((-0.1, BpxValueError), (1.5, BpxValueError), (float("nan"), BpxValueError),
                     ("0.5", BpxTypeError), (True, BpxTypeError), (None, BpxTypeError)):
        with pytest.raises(error, match="keep_prob"):
            keep_mask(anp, "cpu", (3,), p, seed=1, step=2, stream=3)
    with pytest.raises(BpxValueError, match="dtype"):
        uniform(anp, "cpu", (3,), seed=1, step=2, stream=3, dtype=anp.int32)
    assert issubclass(BpxValueError, ValueError) and issubclass(BpxTypeError, TypeError)


def test_max_elements_is_accepted_on_meta():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as tx
    assert random_bits(tx, "meta", (br.MAX_ELEMENTS,), seed=0, step=0, stream=0).shape == (2**31 - 1,)
    assert torch.asarray(0).dtype == torch.int64
