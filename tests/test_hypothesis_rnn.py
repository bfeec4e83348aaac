"""Property-based tests (hypothesis) of the GRU, SimpleRNN and Conv1D kernels against the float64 reference.

The machinery is tests/test_hypothesis_kernels.py's (budgets, example counts,
rejection of ill-conditioned float32 examples, misaligned buffers); see its
docstring. Each example draws shapes from 1 to past the vector widths with odd
tails, every option of the call and views starting a few elements into a
larger buffer. Properties:

  * float32 kernels vs the float64 reference: <= 1e-5 of max|ref| on outputs,
    <= 1e-4 on gradients;
  * float64 gradients vs central finite differences: <= 1e-6.
"""

import numpy as np

import test_hypothesis_kernels as hk
from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import FD_STEP, fd_gradient, rel_error
from hypothesis import given
from hypothesis import strategies as st
from rnn_problems import (GRAD_NAMES, OUT_NAMES, differentiable, kernel_forward, kernel_run, loss_weights,
                          reference_run, rnn_problem)

for _name, _n in {"rnn_f32": 800, "rnn_fd": 250, "conv_f32": 500, "conv_fd": 150}.items():
    hk.EXAMPLES.setdefault(_name, _n)

# As the LSTM properties: piecewise activations get inputs that reach their flat
# pieces; an unbounded GRU update gate or SimpleRNN activation, small U (rnn_problem).
X_SCALE = {"tanh": 1.0, "sigmoid": 1.0, "hard_sigmoid": 3.0, "hard_sigmoid_k2": 3.0, "relu": 0.5, "linear": 0.5}


@st.composite
def rnn_cases(draw, max_b=8, max_t=9, max_i=20, max_h=40):
    cell = draw(st.sampled_from(["gru", "simple_rnn"]))
    act = draw(st.sampled_from(ref.ACTIVATIONS))
    opts = dict(go_backwards=draw(st.booleans()), zero_output_for_mask=draw(st.booleans()),
                return_sequences=draw(st.booleans()), activation=act)
    scales = [X_SCALE[act]]
    unbounded = act in ("relu", "linear") and cell == "simple_rnn"
    if cell == "gru":
        rec_act = draw(st.sampled_from(ref.ACTIVATIONS))
        opts.update(recurrent_activation=rec_act, reset_after=draw(st.booleans()))
        scales.append(X_SCALE[rec_act])
        unbounded = rec_act in ("relu", "linear")
    return dict(cell=cell, x_kind=draw(st.sampled_from(["dense", "ids", "onehot"])),
                shape=(draw(st.integers(1, max_b)), draw(st.integers(1, max_t)), draw(st.integers(1, max_i)),
                       draw(st.integers(1, max_h))),
                flags=dict(mask=draw(st.booleans()), rec_mask=draw(st.booleans()), bias=draw(st.booleans())),
                opts=opts, x_scale=min(scales), u_scale=0.3 if unbounded else 1.0,
                offset=draw(st.sampled_from([0, 0, 1, 3, 7])), seed=draw(st.integers(0, 2 ** 32 - 1)))


def make_rnn_problem(case, dtype):
    cell = case["cell"]
    B, T, I, H = case["shape"]
    rng = np.random.default_rng(case["seed"])
    vocab = I if case["x_kind"] != "dense" else None
    try:
        inputs, opts = rnn_problem(cell, rng, B, T, I, H, dtype, vocab=vocab, x_scale=case["x_scale"],
                                   u_scale=case["u_scale"], **case["flags"], **case["opts"])
    except RuntimeError:  # no draw away from the kinks, or every draw diverges
        hk.rejected(cell, "on a kink or diverging")
    if case["x_kind"] == "onehot":  # dense floats the kernel's onehot='auto' turns into ids
        inputs["x"] = ref.ids_to_onehot(inputs["x"], I).astype(dtype)
    inputs = {k: hk.misaligned(v, case["offset"]) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    context = (f"{cell} B,T,I,H={case['shape']} x={case['x_kind']} {case['flags']} {case['opts']} "
               f"offset={case['offset']} seed={case['seed']} isa={_core.build_info()['isa']}")
    return inputs, opts, rng, context


@hk.prop_settings("rnn_f32")
@given(case=rnn_cases())
@hk.counted("rnn_f32")
def rnn_float32_matches_reference(case):
    cell = case["cell"]
    inputs, opts, rng, context = make_rnn_problem(case, np.float32)
    Rs = loss_weights(rng, inputs, opts)
    k_out, k_grads = kernel_run(cell, inputs, opts, Rs)
    for name, a in k_out.items():
        assert a.dtype == np.float32, f"{context}: {name} is {a.dtype}"
    hk.check_or_reject_ill_conditioned(
        "rnn_f32", [(k_out, 0, OUT_NAMES, hk.OUT_TOL, context + " outputs", 0.0),
                    (k_grads, 1, GRAD_NAMES, hk.GRAD_TOL, context + " gradients", 0.0)],
        lambda inp: reference_run(cell, inp, opts, Rs), inputs)


@hk.prop_settings("rnn_fd")
@given(case=rnn_cases(max_b=3, max_t=5, max_i=4, max_h=5))
@hk.counted("rnn_fd")
def rnn_float64_matches_finite_differences(case):
    cell = case["cell"]
    inputs, opts, rng, context = make_rnn_problem(case, np.float64)
    Rs = loss_weights(rng, inputs, opts)
    _, k_grads = kernel_run(cell, inputs, opts, Rs)
    inputs = {k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    for g, arr in differentiable(inputs).items():
        forward = lambda: kernel_forward(cell, inputs, opts)[:2]  # noqa: E731
        numeric = fd_gradient(forward, arr, Rs)
        err = rel_error(k_grads[g], numeric)
        if err > hk.FD_TOL:  # unreliable differences (steep unbounded gates): see the LSTM property
            finer = fd_gradient(forward, arr, Rs, h=FD_STEP / 2)
            if rel_error(finer, numeric) > hk.FD_TOL:
                hk.rejected(cell, "finite differences unreliable (steps h and h/2 disagree)")
            err = rel_error(k_grads[g], finer)
        assert err <= hk.FD_TOL, f"{context}: {g} vs finite differences: error {err:.3g} > {hk.FD_TOL:g}"


def test_rnn_float32_matches_reference():
    hk.run_property("rnn_f32", rnn_float32_matches_reference)


def test_rnn_float64_gradients_match_finite_differences():
    hk.run_property("rnn_fd", rnn_float64_matches_finite_differences)


# ---------------------------------------------------------------------------
# Conv1D
# ---------------------------------------------------------------------------

@st.composite
def conv_cases(draw, max_b=4, max_l=30, max_cg=12, max_fg=12, max_k=6):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    return dict(B=draw(st.integers(1, max_b)), L=draw(st.integers(1, max_l)), groups=groups,
                Cg=draw(st.integers(1, max_cg)), Fg=draw(st.integers(1, max_fg)), K=draw(st.integers(1, max_k)),
                strides=draw(st.sampled_from([1, 1, 2, 3])), dilation_rate=draw(st.sampled_from([1, 1, 2, 3])),
                padding=draw(st.sampled_from(["valid", "same", "causal"])), bias=draw(st.booleans()),
                offset=draw(st.sampled_from([0, 0, 1, 5])), seed=draw(st.integers(0, 2 ** 32 - 1)))


def make_conv_problem(case, dtype):
    g = case["groups"]
    C, F = case["Cg"] * g, case["Fg"] * g
    opts = dict(strides=case["strides"], padding=case["padding"], dilation_rate=case["dilation_rate"], groups=g)
    left, right = ref.conv1d_padding(case["L"], case["K"], case["strides"], case["padding"], case["dilation_rate"])
    if case["L"] + left + right < (case["K"] - 1) * case["dilation_rate"] + 1:
        hk.rejected("conv", "no output step")  # (the bad-input tests cover the error)
    rng = np.random.default_rng(case["seed"])
    p = dict(x=rng.standard_normal((case["B"], case["L"], C)).astype(dtype),
             W=(rng.standard_normal((case["K"], case["Cg"], F)) / np.sqrt(case["K"] * case["Cg"])).astype(dtype),
             b=rng.standard_normal(F).astype(dtype) if case["bias"] else None)
    p = {k: hk.misaligned(v, case["offset"]) for k, v in p.items()}
    return p, opts, rng, f"conv1d {case} isa={_core.build_info()['isa']}"


def conv_run(p, opts, R, core):
    if core is _core:
        y = _core.conv1d_forward(p["x"], p["W"], p["b"], **opts)
        g = _core.conv1d_backward(R, p["x"], p["W"], use_bias=p["b"] is not None, **opts)
    else:
        y = ref.conv1d_forward(p["x"], p["W"], p["b"], **opts)
        g = ref.conv1d_backward(R, p["x"], p["W"], p["b"] is not None, **opts)
    return dict(y=y), dict(zip(("dx", "dW", "db"), g))


@hk.prop_settings("conv_f32")
@given(case=conv_cases())
@hk.counted("conv_f32")
def conv_float32_matches_reference(case):
    p, opts, rng, context = make_conv_problem(case, np.float32)
    R = rng.standard_normal(ref.conv1d_forward(p["x"], p["W"], p["b"], **opts).shape).astype(np.float32)
    got = conv_run(p, opts, R, _core)
    hk.check_or_reject_ill_conditioned(
        "conv_f32", [(got[0], 0, ("y",), hk.OUT_TOL, context + " y", 0.0),
                     (got[1], 1, ("dx", "dW", "db"), hk.GRAD_TOL, context + " gradients", 0.0)],
        lambda inp: conv_run(inp, opts, R, ref), p)


@hk.prop_settings("conv_fd")
@given(case=conv_cases(max_b=2, max_l=9, max_cg=3, max_fg=3, max_k=4))
@hk.counted("conv_fd")
def conv_float64_matches_finite_differences(case):
    p, opts, rng, context = make_conv_problem(case, np.float64)
    p = {k: None if v is None else np.ascontiguousarray(v) for k, v in p.items()}
    R = rng.standard_normal(ref.conv1d_forward(p["x"], p["W"], p["b"], **opts).shape)
    _, grads = conv_run(p, opts, R, _core)
    forward = lambda: [_core.conv1d_forward(p["x"], p["W"], p["b"], **opts)]  # noqa: E731
    for g, name in (("dx", "x"), ("dW", "W"), ("db", "b")):
        if p[name] is None:
            assert grads[g] is None, context
            continue
        err = rel_error(grads[g], fd_gradient(forward, p[name], [R]))
        assert err <= hk.FD_TOL, f"{context}: {g} vs finite differences: error {err:.3g} > {hk.FD_TOL:g}"


def test_conv1d_float32_matches_reference():
    hk.run_property("conv_f32", conv_float32_matches_reference)


def test_conv1d_float64_gradients_match_finite_differences():
    hk.run_property("conv_fd", conv_float64_matches_finite_differences)
