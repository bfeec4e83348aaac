"""SimpleRNN kernels (_core.simple_rnn_forward / simple_rnn_backward): float64 vs finite differences,
float32 vs the float64 reference.

The checks every cell gets are in rnn_kernel_suite.py (imported below); this
file holds SimpleRNN's tables and its own cases. Keras 3 SimpleRNNCell:
h_t = act(x_t·W + b + (h_{t-1} ⊙ m)·U).
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
    return "simple_rnn"


@pytest.fixture
def variant():
    return {}


def pytest_generate_tests(metafunc):
    parametrize(metafunc, sys.modules[__name__])


# relu and linear outputs are unbounded: small inputs and U keep 200 steps finite.
SCALE_ACT = {"sigmoid": dict(x_scale=1.0), "hard_sigmoid": dict(x_scale=3.0), "hard_sigmoid_k2": dict(x_scale=3.0),
             "relu": dict(x_scale=1.0, u_scale=0.5), "linear": dict(x_scale=0.5, u_scale=0.5)}

OPTIONS = [
    *COMMON_OPTIONS,
    *[case(f"act={a}", activation=a, **s) for a, s in SCALE_ACT.items()],
    case("relu-mask-rec_mask", activation="relu", u_scale=0.5, mask=True, rec_mask=True),
]
FD_SHAPES = [
    shape(1, 1, 1, 1),
    shape(1, 1, 1, 1, mask=True),
    shape(3, 1, 7, 3, go_backwards=True, return_sequences=False),
    shape(2, 5, 1, 1, mask=True, zero_output_for_mask=True),
    shape(1, 4, 7, 3, vocab=3, mask=True),
    shape(2, 3, 2, 17, rec_mask=True),
]
LARGE_SHAPES = [
    shape(67, 200, 7, 33),
    shape(1, 200, 100, 150),
    shape(67, 200, 1, 25, mask=True, go_backwards=True, rec_mask=True),
    shape(5, 200, 3, 3, vocab=40, mask=True, zero_output_for_mask=True),
]
F32_SHAPES = [
    shape(1, 1, 1, 1),
    shape(67, 1, 7, 3),
    shape(1, 200, 1, 25),
    shape(67, 200, 7, 33),
    shape(3, 200, 100, 150),
    shape(67, 40, 7, 150, mask=True),
    shape(67, 200, 1, 33, vocab=97, mask=True, go_backwards=True),
    shape(1, 200, 7, 33, mask=True, zero_output_for_mask=True, return_sequences=False),
    shape(9, 12, 5, 1030, rec_mask=True),
]
# U (H, H) past 2^18 floats with few rows per thread (H = 600) splits each step's products.
THREAD_SHAPES = [
    shape(9, 12, 5, 600, mask=True, rec_mask=True),
    shape(67, 30, 7, 150, mask=True),
    shape(23, 30, 7, 33, mask=True, rec_mask=True, go_backwards=True),
    shape(23, 30, 1, 33, vocab=11, mask=True, return_sequences=False),
]


# ---------------------------------------------------------------------------
# SimpleRNN's own cases
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_step_is_the_formula(dtype, rng, seed):
    """T = 1: h = tanh(x·W + b + (h0 ⊙ m)·U), by hand."""
    inputs, opts = rnn_problem("simple_rnn", rng, 5, 1, 4, 9, dtype, rec_mask=True)
    f = {k: v.astype(np.float64) for k, v in inputs.items() if isinstance(v, np.ndarray)}
    want = np.tanh(f["x"][:, 0] @ f["W"] + f["b"] + (f["h0"] * f["rec_mask"]) @ f["U"])
    y, hT, _ = kernel_forward("simple_rnn", inputs, opts)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert scaled_error(hT, want) <= tol and scaled_error(y[:, 0], want) <= tol, f"seed={seed}"


def _valid():
    r = np.random.default_rng(0)
    f = np.float32
    return dict(x=r.standard_normal((3, 4, 5)).astype(f), W=r.standard_normal((5, 6)).astype(f),
                U=r.standard_normal((6, 6)).astype(f), b=r.standard_normal(6).astype(f), h0=np.zeros((3, 6), f))


@pytest.mark.parametrize("change, options, exc, pattern", [
    (dict(U=np.zeros((6, 7), np.float32)), {}, ValueError, r"U must have shape \(H, H\) = \(6, 6\), got \(6, 7\)"),
    (dict(W=np.zeros((5, 7), np.float32)), {}, ValueError, r"W must have shape \(I, H\) = \(5, 6\)"),
    (dict(b=np.zeros((2, 6), np.float32)), {}, ValueError, r"b must have shape \(H,\) = \(6,\), got \(2, 6\)"),
    (dict(h0=np.zeros((2, 6), np.float32)), {}, ValueError, r"h0 must have shape \(B, H\) = \(3, 6\)"),
    (dict(U=np.zeros((6, 6), np.float64)), {}, TypeError, r"U is float64 but x is float32"),
    (dict(x=np.full((3, 4), 5)), {}, ValueError, r"x\[0, 0\] = 5 is not a token id of W with V = 5 rows"),
    (dict(x=np.zeros((3, 4, 5), np.complex64)), {}, TypeError, r"x must be float32/float64"),
    ({}, dict(activation="elu"), ValueError, r"activation must be one of"),
    ({}, dict(onehot="always"), ValueError, r"onehot must be 'auto' or 'never'"),
])
def test_forward_bad_input(change, options, exc, pattern):
    a = _valid()
    a.update(change)
    with pytest.raises(exc, match=pattern):
        _core.simple_rnn_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], **options)


def test_no_recurrent_activation_argument():
    a = _valid()
    with pytest.raises(TypeError):
        _core.simple_rnn_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], recurrent_activation="sigmoid")


def test_backward_bad_input():
    a = _valid()
    y, _, cache = _core.simple_rnn_forward(a["x"], a["W"], a["U"], a["b"], a["h0"], training=True,
                                           return_sequences=False)
    gru_cache = _core.gru_forward(a["x"], np.zeros((5, 18), np.float32), np.zeros((6, 18), np.float32), None,
                                  a["h0"], training=True)[2]
    with pytest.raises(TypeError, match=r"simple_rnn_backward: cache must be the SimpleRnnCache.*got GruCache"):
        _core.simple_rnn_backward(gru_cache, None)
    with pytest.raises(ValueError, match=r"dy must have shape \(B, H\) = \(3, 6\), got \(3, 4, 6\)"):
        _core.simple_rnn_backward(cache, np.zeros((3, 4, 6), np.float32))
    with pytest.raises(TypeError, match=r"dhT is float64 but the forward that made the cache is float32"):
        _core.simple_rnn_backward(cache, y, np.zeros((3, 6)))
