"""Bad input to the Keras optimizer steps of issue 25 (_core.*_step) names the argument.

Table-driven as test_core_bad_input.py: a valid call, one argument replaced, the
exception type and a pattern the message must match (the argument's name as a
whole word). Wrong dtypes are TypeError; wrong shapes and values ValueError. A
refused call must leave every buffer as it was: the checks run before any write.
"""

import numpy as np
import pytest

from fusedlstm import _core

N = 11
F32 = np.float32


def _r(n=N, dtype=F32, seed=0):
    return np.random.default_rng(seed + n).standard_normal(n).astype(dtype)


def _pos(n=N, dtype=F32):
    return np.abs(_r(n, dtype, 7)) + 0.1


# Valid calls: (function, positional arrays by name, keyword arguments).
CALLS = {
    "adam": (_core.adam_step, lambda: dict(w=_r(), g=_r(seed=1), m=_r(seed=2), v=_pos()), dict(alpha=0.01)),
    "adam_amsgrad": (_core.adam_step, lambda: dict(w=_r(), g=_r(seed=1), m=_r(seed=2), v=_pos(), vhat=_pos()),
                     dict(alpha=0.01)),
    "nadam": (_core.nadam_step, lambda: dict(w=_r(), g=_r(seed=1), m=_r(seed=2), v=_pos()),
              dict(lr=0.01, u_t=0.45, u_t_1=0.46, u_product_t=0.45, u_product_t_1=0.2, beta_2_power=0.999)),
    "adamax": (_core.adamax_step, lambda: dict(w=_r(), g=_r(seed=1), m=_r(seed=2), u=_pos()),
               dict(lr=0.01, beta_1_power=0.9)),
    "adagrad": (_core.adagrad_step, lambda: dict(w=_r(), g=_r(seed=1), accumulator=_pos()), dict(lr=0.01)),
    "adadelta": (_core.adadelta_step,
                 lambda: dict(w=_r(), g=_r(seed=1), accumulated_grad=_pos(), accumulated_delta_var=_pos()),
                 dict(lr=0.01)),
    "lion": (_core.lion_step, lambda: dict(w=_r(), g=_r(seed=1), m=_r(seed=2)), dict(lr=0.01)),
    "ftrl": (_core.ftrl_step, lambda: dict(w=_r(), g=_r(seed=1), accumulator=_pos(), linear=_r(seed=3)),
             dict(lr=0.01)),
    "rmsprop": (_core.rmsprop_step, lambda: dict(w=_r(), g=_r(seed=1), velocity=_pos(), momentum_buf=_r(seed=4),
                                                 average_grad=_r(seed=5)),
                dict(lr=0.01, momentum=0.9)),
    "sgd": (_core.sgd_step, lambda: dict(w=_r(), g=_r(seed=1), u=_r(seed=2)), dict(lr=0.01, momentum=0.9)),
    "accumulate": (_core.accumulate_step, lambda: dict(w=_r(), g=_r(seed=1), gradient_accumulator=_r(seed=2)), {}),
}
STEPS = [k for k in CALLS if k != "accumulate"]


def call(key, change=None):
    """Runs CALLS[key] with change(arrays, kwargs) applied; returns the arrays (after the call or the error)."""
    fn, make, kw = CALLS[key]
    arrays, kw = make(), dict(kw)
    if change:
        change(arrays, kw)
    try:
        fn(*arrays.values(), **kw)
    finally:
        pass
    return arrays


def expect(key, change, exc, pattern):
    fn, make, kw = CALLS[key]
    arrays, kw = make(), dict(kw)
    change(arrays, kw)
    before = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
    with pytest.raises(exc, match=pattern):
        fn(*arrays.values(), **kw)
    for k, v in arrays.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.shape == before[k].shape:
            np.testing.assert_array_equal(v, before[k], err_msg=f"{key}: a refused call changed {k}")


def _set(name, value):
    def change(arrays, kw):
        if name in arrays:
            arrays[name] = value(arrays[name]) if callable(value) else value
        else:
            kw[name] = value(kw.get(name)) if callable(value) else value
    return change


def _state_names(key):
    return [k for k in CALLS[key][1]() if k != "g"]


def _array_names(key):
    return list(CALLS[key][1]())


# ---- arrays ------------------------------------------------------------------

ARRAY_CHANGES = [
    ("int32", lambda a: a.astype(np.int32), TypeError),
    ("float16", lambda a: a.astype(np.float16), TypeError),
    ("float64-mix", lambda a: a.astype(np.float64), TypeError),
    ("long", lambda a: np.zeros(N + 1, a.dtype), ValueError),
    ("2-d", lambda a: a.reshape(1, N), ValueError),
    ("none", lambda a: None, TypeError),
]


@pytest.mark.parametrize("change_id, change, exc", [pytest.param(*c, id=c[0]) for c in ARRAY_CHANGES])
@pytest.mark.parametrize("key", list(CALLS))
def test_bad_array_is_named(key, change_id, change, exc):
    for name in _array_names(key):
        if change_id == "float64-mix" and name == "w":
            continue  # w sets the dtype: changing it is a mismatch of every other array, named after them
        if change_id == "none" and name in ("vhat", "momentum_buf", "average_grad", "u"):
            continue  # optional buffers (None is valid where the hyperparameters allow it)
        expect(key, _set(name, change), exc, rf"\b{name}\b")


@pytest.mark.parametrize("key", list(CALLS))
def test_in_place_buffers_must_be_writable_contiguous_native(key):
    for name in _state_names(key):
        def read_only(a):
            a = a.copy()
            a.setflags(write=False)
            return a

        def strided(a):
            wide = np.zeros(2 * a.size, a.dtype)
            wide[::2] = a
            return wide[::2]

        expect(key, _set(name, read_only), ValueError, rf"\b{name}\b.*writeable")
        expect(key, _set(name, strided), ValueError, rf"\b{name}\b.*C-contiguous")
        expect(key, _set(name, lambda a: a.astype(">f4")), TypeError, rf"\b{name}\b")
        expect(key, _set(name, lambda a: a.tolist()), TypeError, rf"\b{name}\b.*numpy array")


@pytest.mark.parametrize("key", STEPS)
def test_strided_gradient_gives_the_contiguous_result(key):
    def wide_g(arrays, kw):
        wide = np.zeros(2 * N, F32)
        wide[::2] = arrays["g"]
        arrays["g"] = wide[::2]
    a = call(key, wide_g)
    b = call(key)
    for name in a:
        if name != "g":
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{key}: {name}")


# ---- the common options ---------------------------------------------------------

COMMON_CASES = [
    ("segments-float", dict(segments=np.array([0.0, 11.0])), TypeError, r"\bsegments\b"),
    ("segments-2d", dict(segments=np.array([[0, 11]])), ValueError, r"\bsegments\b"),
    ("segments-empty", dict(segments=np.zeros(0, np.int64)), ValueError, r"\bsegments\b"),
    ("segments-start", dict(segments=np.array([1, 11])), ValueError, r"\bsegments\b.*from 0"),
    ("segments-end", dict(segments=np.array([0, 10])), ValueError, r"\bsegments\b.*n = 11"),
    ("segments-past-end", dict(segments=np.array([0, 5, 12])), ValueError, r"\bsegments\b"),
    ("segments-decreasing", dict(segments=np.array([0, 7, 3, 11])), ValueError, r"\bsegments\b.*non-decreasing"),
    ("segments-negative", dict(segments=np.array([0, -4, 11])), ValueError, r"\bsegments\b"),
    ("segments-uint-huge", dict(segments=np.array([0, 2 ** 63 + 5, 11], np.uint64)), ValueError, r"\bsegments\b"),
    ("decay-str", dict(decay="0.9"), TypeError, r"\bdecay\b"),
    ("decay-array", dict(decay=np.ones(2)), TypeError, r"\bdecay\b"),
    ("decay-nan", dict(decay=float("nan")), ValueError, r"\bdecay\b"),
    ("decay-mask-alone", dict(decay_mask=np.ones(1, bool)), ValueError, r"\bdecay_mask\b"),
    ("decay-mask-shape", dict(decay=0.9, decay_mask=np.ones(2, bool)), ValueError, r"\bdecay_mask\b"),
    ("decay-mask-float", dict(decay=0.9, decay_mask=np.ones(1)), TypeError, r"\bdecay_mask\b"),
    ("clipnorm-0", dict(clipnorm=0.0), ValueError, r"\bclipnorm\b"),
    ("clipnorm-negative", dict(clipnorm=-1.0), ValueError, r"\bclipnorm\b"),
    ("clipnorm-nan", dict(clipnorm=float("nan")), ValueError, r"\bclipnorm\b"),
    ("global-clipnorm-inf", dict(global_clipnorm=float("inf")), ValueError, r"\bglobal_clipnorm\b"),
    ("clipvalue-0", dict(clipvalue=0.0), ValueError, r"\bclipvalue\b"),
    ("two-clips", dict(clipnorm=1.0, clipvalue=1.0), ValueError, r"only one of clipnorm"),
    ("accumulator-shape", dict(gradient_accumulator=np.zeros(N + 1, F32), accumulation_steps=2), ValueError,
     r"\bgradient_accumulator\b"),
    ("accumulator-dtype", dict(gradient_accumulator=np.zeros(N), accumulation_steps=2), TypeError,
     r"\bgradient_accumulator\b"),
    ("accumulator-steps-0", dict(gradient_accumulator=np.zeros(N, F32), accumulation_steps=0), ValueError,
     r"\baccumulation_steps\b"),
    ("steps-alone", dict(accumulation_steps=2), ValueError, r"\baccumulation_steps\b.*gradient_accumulator"),
    ("ema-shape", dict(ema=np.zeros(3, F32)), ValueError, r"\bema\b"),
    ("ema-read-only", dict(ema=np.zeros(N, F32)[::-1]), ValueError, r"\bema\b"),
    ("ema-overwrite-alone", dict(ema_overwrite=True), ValueError, r"\bema_overwrite\b"),
    ("ema-momentum", dict(ema=np.zeros(N, F32), ema_momentum=1.5), ValueError, r"\bema_momentum\b"),
    ("ema-momentum-nan", dict(ema=np.zeros(N, F32), ema_momentum=float("nan")), ValueError, r"\bema_momentum\b"),
]


@pytest.mark.parametrize("options, exc, pattern", [pytest.param(*c[1:], id=c[0]) for c in COMMON_CASES])
@pytest.mark.parametrize("key", STEPS)
def test_bad_common_option_is_named(key, options, exc, pattern):
    expect(key, lambda arrays, kw: kw.update(options), exc, pattern)


@pytest.mark.parametrize("options, exc, pattern", [pytest.param(*c[1:], id=c[0]) for c in COMMON_CASES
                                                   if c[0].startswith("ema")])
def test_accumulate_step_checks_its_ema(options, exc, pattern):
    expect("accumulate", lambda arrays, kw: kw.update(options), exc, pattern)


# ---- hyperparameters and per-step scalars -------------------------------------------

NAN, INF = float("nan"), float("inf")
HYPER_CASES = [
    ("adam", dict(alpha=NAN), r"\balpha\b"),
    ("adam", dict(beta_1=1.0), r"\bbeta_1\b"),
    ("adam", dict(beta_2=-0.1), r"\bbeta_2\b"),
    ("adam", dict(epsilon=-1e-7), r"\bepsilon\b"),
    ("nadam", dict(lr=INF), r"\blr\b"),
    ("nadam", dict(u_t=NAN), r"\bu_t\b"),
    ("nadam", dict(u_product_t_1=INF), r"\bu_product_t_1\b"),
    ("nadam", dict(beta_2_power=NAN), r"\bbeta_2_power\b"),
    ("adamax", dict(beta_1_power=INF), r"\bbeta_1_power\b"),
    ("adamax", dict(beta_2=1.5), r"\bbeta_2\b"),
    ("adagrad", dict(epsilon=NAN), r"\bepsilon\b"),
    ("adadelta", dict(rho=1.5), r"\brho\b"),
    ("lion", dict(beta_1=0.0), r"\bbeta_1\b"),
    ("lion", dict(beta_2=2.0), r"\bbeta_2\b"),
    ("ftrl", dict(learning_rate_power=0.5), r"\blearning_rate_power\b"),
    ("ftrl", dict(l1_regularization_strength=-1.0), r"\bl1_regularization_strength\b"),
    ("ftrl", dict(l2_shrinkage_regularization_strength=NAN), r"\bl2_shrinkage_regularization_strength\b"),
    ("ftrl", dict(beta=INF), r"\bbeta\b"),
    ("rmsprop", dict(momentum=0.0), r"\bmomentum_buf\b"),
    ("rmsprop", dict(rho=-0.5), r"\brho\b"),
    ("sgd", dict(momentum=1.5), r"\bmomentum\b"),
    ("sgd", dict(lr=NAN), r"\blr\b"),
]


@pytest.mark.parametrize("key, options, pattern", [pytest.param(*c, id=f"{c[0]}-{next(iter(c[1]))}")
                                                   for c in HYPER_CASES])
def test_bad_hyperparameter_is_named(key, options, pattern):
    expect(key, lambda arrays, kw: kw.update(options), ValueError, pattern)


def test_momentum_without_its_buffer_is_named():
    expect("rmsprop", _set("momentum_buf", None), ValueError, r"\bmomentum_buf\b")
    expect("sgd", _set("u", None), ValueError, r"\bu\b")


def test_float64_buffers_work_and_mixing_is_refused():
    w, g, m, v = (_r(dtype=np.float64, seed=k) for k in range(4))
    v = np.abs(v)
    _core.adam_step(w, g, m, v, alpha=0.01, clipnorm=1.0, ema=np.zeros(N), gradient_accumulator=np.zeros(N),
                    accumulation_steps=2)
    with pytest.raises(TypeError, match=r"\bema\b.*float32"):
        _core.adam_step(w, g, m, v, alpha=0.01, ema=np.zeros(N, F32))
