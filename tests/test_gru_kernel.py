"""GRU kernels (_core.gru_forward / gru_backward): float64 vs finite differences, float32 vs the float64 reference.

The checks every cell gets are in rnn_kernel_suite.py (imported below); this
file holds the GRU's tables and its own cases. Both Keras forms are covered:
reset_after=True (bias (2, 3H)) and False (bias (3H,)). The reference itself
was checked against keras.layers.GRU (3.15.1, torch backend) to float32
rounding; the Keras parity suites do that for the layer.
"""

import sys

import numpy as np
import pytest

from fusedlstm import _core
from gradcheck import scaled_error
from rnn_kernel_suite import COMMON_OPTIONS, case, parametrize, shape
from rnn_kernel_suite import (restore_threads, test_backward_none_upstream_is_zero_and_repeatable,  # noqa: F401
                              test_backward_writes_weight_gradients_into_out_arrays, test_cache_outlives_its_inputs,
                              test_float32_kernel_matches_reference_options,
                              test_float32_kernel_matches_reference_shapes,
                              test_float64_kernel_directional_derivative_large,
                              test_float64_kernel_matches_finite_differences,
                              test_float64_kernel_matches_finite_differences_shapes,
                              test_float64_kernel_matches_reference, test_go_backwards_is_reversed_time,
                              test_ids_path_equals_dense_onehot_path, test_mask_semantics,
                              test_non_contiguous_inputs_give_the_contiguous_results,
                              test_reference_matches_finite_differences, test_thread_count_does_not_change_results,
                              test_training_and_inference_outputs_identical)
from rnn_problems import kernel_forward, rnn_problem


@pytest.fixture
def cell():
    return "gru"


@pytest.fixture(params=[True, False], ids=["reset_after=True", "reset_after=False"])
def variant(request):
    return dict(reset_after=request.param)


def pytest_generate_tests(metafunc):
    parametrize(metafunc, sys.modules[__name__])


# Inputs scaled so the piecewise activations visit their flat pieces. An
# unbounded update gate (relu, linear) multiplies h by a function of h each
# step, so those get small inputs and a small U (rnn_problem's u_scale). A tanh
# update gate lets z go negative, so h = z h + (1 - z) hh can grow step by step
# (|z| + |1 - z| up to 3): at U's usual scale float32 rounding is amplified to
# ~1e-5 of max|h| after 13 steps, NumPy's own float32 GRU as much as the kernel
# (150 seeds: both median 3.5e-6, max 1.9e-5 kernel, 2.6e-5 NumPy), so U is
# halved (300 seeds: max 7.7e-7 outputs, 1.5e-6 gradients).
X_SCALE_ACT = {"sigmoid": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 3.0, "linear": 1.0}
SCALE_REC = {"tanh": dict(x_scale=1.0, u_scale=0.5), "hard_sigmoid": dict(x_scale=3.0), "hard_sigmoid_k2": dict(x_scale=3.0),
             "relu": dict(x_scale=0.5, u_scale=0.3), "linear": dict(x_scale=0.5, u_scale=0.3)}

BASE_OPTIONS = [
    *COMMON_OPTIONS,
    *[case(f"act={a}", activation=a, x_scale=s) for a, s in X_SCALE_ACT.items()],
    *[case(f"rec_act={a}", recurrent_activation=a, **s) for a, s in SCALE_REC.items()],
    case("hard_sigmoid-both-mask", activation="hard_sigmoid", recurrent_activation="hard_sigmoid_k2",
         x_scale=3.0, mask=True),
]
# every option set in both forms
OPTIONS = [pytest.param(dict(p.values[0], reset_after=ra), id=f"{p.id}-reset_after={ra}")
           for p in BASE_OPTIONS for ra in (True, False)]

FD_SHAPES = [
    shape(1, 1, 1, 1),
    shape(1, 1, 1, 1, mask=True, reset_after=False),
    shape(3, 1, 7, 3, go_backwards=True, return_sequences=False),
    shape(2, 5, 1, 1, mask=True, zero_output_for_mask=True, reset_after=False),
    shape(1, 4, 7, 3, vocab=3, mask=True),
    shape(2, 3, 2, 17, rec_mask=True, reset_after=False),
]
LARGE_SHAPES = [
    shape(67, 200, 7, 33),
    shape(1, 200, 100, 150, reset_after=False),
    shape(67, 1, 99, 150),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True, reset_after=False),
    shape(5, 200, 3, 3, vocab=40, mask=True, zero_output_for_mask=True),
]
F32_SHAPES = [
    shape(1, 1, 1, 1),
    shape(67, 1, 7, 3),
    shape(1, 200, 1, 25),
    shape(67, 200, 7, 33, reset_after=False),
    shape(3, 200, 100, 150),
    shape(67, 1, 100, 150, reset_after=False),
    shape(67, 40, 7, 150, mask=True),
    shape(67, 200, 1, 33, vocab=97, mask=True, go_backwards=True),
    shape(1, 200, 7, 33, mask=True, zero_output_for_mask=True, return_sequences=False, reset_after=False),
    shape(9, 12, 5, 260, rec_mask=True),
]
# U (H, 3H) past 2^18 floats with few rows per thread (H = 300) splits each step's products.
THREAD_SHAPES = [
    shape(9, 12, 5, 300, mask=True, rec_mask=True),
    shape(9, 12, 5, 300, mask=True, rec_mask=True, reset_after=False),
    shape(67, 30, 7, 150, mask=True),
    shape(23, 30, 7, 33, mask=True, rec_mask=True, go_backwards=True, reset_after=False),
    shape(23, 30, 1, 33, vocab=11, mask=True, return_sequences=False),
]


# ---------------------------------------------------------------------------
# The GRU's own cases
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_recurrent_kernel_is_a_feedforward_gate_mix(dtype, rng, seed):
    """U = 0, b_rec = 0: h_t = z ⊙ h_{t-1} + (1 - z) ⊙ tanh(x·W_h + b_h) with z = σ(x·W_z + b_z), by hand."""
    B, T, I, H = 3, 4, 5, 7
    inputs, opts = rnn_problem("gru", rng, B, T, I, H, dtype)
    inputs["U"][:] = 0
    inputs["b"][1] = 0
    x, W, b = (inputs[k].astype(np.float64) for k in ("x", "W", "b"))
    h = inputs["h0"].astype(np.float64)
    for t in range(T):
        pre = x[:, t] @ W + b[0]
        z = 1 / (1 + np.exp(-pre[:, :H]))
        h = z * h + (1 - z) * np.tanh(pre[:, 2 * H:])
    hT = kernel_forward("gru", inputs, opts)[1]
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert scaled_error(hT, h) <= tol, f"seed={seed}"


# ---------------------------------------------------------------------------
# Bad input: clear exceptions naming the argument
# ---------------------------------------------------------------------------

def _valid(reset_after=True):
    B, T, I, H = 3, 4, 5, 6
    r = np.random.default_rng(0)
    f = np.float32
    b = (2, 18) if reset_after else (18,)
    return dict(x=r.standard_normal((B, T, I)).astype(f), W=r.standard_normal((I, 18)).astype(f),
                U=r.standard_normal((H, 18)).astype(f), b=r.standard_normal(b).astype(f),
                h0=np.zeros((B, H), f))


@pytest.mark.parametrize("change, options, exc, pattern", [
    (dict(b=np.zeros(18, np.float32)), {}, ValueError, r"b must have shape \(2, 3H\) = \(2, 18\) with reset_after"),
    (dict(b=np.zeros((2, 18), np.float32)), dict(reset_after=False), ValueError,
     r"b must have shape \(3H,\) = \(18,\) with reset_after=False"),
    (dict(U=np.zeros((6, 24), np.float32)), {}, ValueError, r"U must have shape \(H, 3H\) = \(6, 18\), got \(6, 24\)"),
    (dict(W=np.zeros((5, 24), np.float32)), {}, ValueError, r"W must have shape \(I, 3H\) = \(5, 18\)"),
    (dict(h0=np.zeros((3, 5), np.float32)), {}, ValueError, r"h0 must have shape \(B, H\) = \(3, 6\)"),
    (dict(W=np.zeros((5, 18), np.float64)), {}, TypeError, r"W is float64 but x is float32"),
    (dict(x=np.array([[0, 9]])), {}, ValueError, r"W must have shape \(V, 3H\)|h0 must have shape"),
    (dict(x=np.full((3, 4), 5)), {}, ValueError, r"x\[0, 0\] = 5 is not a token id of W with V = 5 rows"),
    (dict(mask=np.ones((3, 5), bool)), {}, ValueError, r"mask must have shape \(B, T\) = \(3, 4\)"),
    (dict(rec_mask=np.ones((3, 5), np.float32)), {}, ValueError, r"rec_mask must have shape \(B, H\) = \(3, 6\)"),
    ({}, dict(activation="softmax"), ValueError, r"activation must be one of"),
    ({}, dict(recurrent_activation="swish"), ValueError, r"recurrent_activation must be one of"),
    (dict(x=None), {}, TypeError, r"gru_forward: x must be a numpy array, got None"),
])
def test_forward_bad_input(change, options, exc, pattern):
    a = _valid(options.get("reset_after", True))
    extra = {k: change.pop(k) for k in ("mask", "rec_mask") if k in change}
    a.update(change)
    with pytest.raises(exc, match=pattern):
        _core.gru_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], **extra, **options)


def test_backward_bad_input():
    a = _valid()
    y, _, cache = _core.gru_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], training=True)
    lstm_cache = _core.lstm_forward(a["x"], np.zeros((5, 24), np.float32), np.zeros((6, 24), np.float32), None,
                                    a["h0"], a["h0"], training=True)[3]
    with pytest.raises(TypeError, match=r"gru_backward: cache must be the GruCache of a training=True gru_forward, "
                                        r"got LstmCache"):
        _core.gru_backward(lstm_cache, None)
    with pytest.raises(TypeError, match=r"lstm_backward: cache must be the LstmCache.*got GruCache"):
        _core.lstm_backward(cache, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(B, T, H\) = \(3, 4, 6\)"):
        _core.gru_backward(cache, y[:, :2])
    with pytest.raises(ValueError, match=r"db_out must have shape \(2, 3H\) = \(2, 18\), got \(18,\)"):
        _core.gru_backward(cache, y, db_out=np.zeros(18, np.float32))
    with pytest.raises(TypeError, match=r"dW_out must be float32 in native byte order"):
        _core.gru_backward(cache, y, dW_out=np.zeros((5, 18), ">f4"))
    square = _core.gru_forward(a["x"][:, :, :1].repeat(6, axis=2), np.zeros((6, 18), np.float32), a["U"], None,
                               a["h0"], training=True)[2]  # I = H: dW and dU have one shape
    buf = np.zeros((6, 18), np.float32)
    with pytest.raises(ValueError, match=r"dW_out, dU_out and db_out must be different arrays"):
        _core.gru_backward(square, y, dW_out=buf, dU_out=buf)
    no_bias = _core.gru_forward(a["x"], a["W"], a["U"], None, a["h0"], training=True)[2]
    with pytest.raises(ValueError, match=r"db_out was given but the forward had no bias"):
        _core.gru_backward(no_bias, y, db_out=np.zeros((2, 18), np.float32))
