"""The float64 NumPy reference of every fusedlstm kernel.

This module is the oracle the test-suite compares the C++ kernels against, and
the place to read the math: each function is written the way the equations
are, a plain loop over time steps with no tricks for speed. It needs numpy
only and imports nothing else from fusedlstm.

Shapes use B (batch), T (time), I (input features), H (units), V (vocabulary),
N (rows), D (features), C (classes). Gate order along 4H (LSTM) is i, f, c, o;
along 3H (GRU) z, r, h. Conv1D uses L (steps), C (channels), F (filters), K (taps).

LSTM step (a = activation, ra = recurrent_activation, r = recurrent-dropout mask):

    z = x_t·W + (r ⊙ h_{t-1})·U + b
    i = ra(z_i)   f = ra(z_f)   g = a(z_c)   o = ra(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ a(c_t)

Masking follows Keras: a masked step keeps h and c; its output is the previous
output (zeros before the first real step, not h0), or zeros when
zero_output_for_mask.

>>> rng = np.random.default_rng(0)
>>> B, T, I, H = 2, 3, 4, 5
>>> x = rng.standard_normal((B, T, I))
>>> W, U = rng.standard_normal((I, 4 * H)), rng.standard_normal((H, 4 * H))
>>> h0 = c0 = np.zeros((B, H))
>>> y, hT, cT, cache = lstm_forward(x, W, U, None, h0, c0)
>>> y.shape, bool(np.all(y[:, -1] == hT))
((2, 3, 5), True)
>>> dx, dh0, dc0, dW, dU, db = lstm_backward(cache, np.ones_like(y), None, None)
>>> dx.shape, dW.shape, db is None
((2, 3, 4), (4, 20), True)
"""

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "activation_forward",
    "activation_grad_from_output",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "ids_to_onehot",
    "rnn_scan_forward",
    "rnn_scan_backward",
    "gru_step_forward",
    "gru_step_backward",
    "gru_forward",
    "gru_backward",
    "simple_rnn_step_forward",
    "simple_rnn_step_backward",
    "simple_rnn_forward",
    "simple_rnn_backward",
    "conv1d_padding",
    "conv1d_forward",
    "conv1d_backward",
    "dense_softmax_xent",
    "OPTIMIZER_RULES",
    "optimizer_rule",
    "optimizer_slots",
    "KerasOptimizer",
    "bf16_round",
    "bf16_pays",
    "matmul_bf16",
    "rnn_rounding",
    "pool1d_windows",
    "max_pool1d",
    "average_pool1d",
    "global_average_pool1d",
    "batch_norm",
    "layer_norm",
    "relu_layer",
]

ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_k2", "relu", "linear")


# ---------------------------------------------------------------------------
# Activations
#
# Derivatives are written as functions of the activation's *output*, as the
# kernels compute them (the backward pass keeps only outputs). The piecewise
# ones take the slope strictly inside the linear piece.
# ---------------------------------------------------------------------------

def activation_forward(name, z):
    """y = act(z), elementwise."""
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "hard_sigmoid":  # Keras 3: relu6(z + 3) / 6
        return np.clip(z + 3.0, 0.0, 6.0) / 6.0
    if name == "hard_sigmoid_k2":  # Keras 2: clip(0.2 z + 0.5, 0, 1)
        return np.clip(0.2 * z + 0.5, 0.0, 1.0)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "linear":
        return np.array(z, dtype=np.float64, copy=True)
    raise ValueError(f"unknown activation {name!r}, expected one of {ACTIVATIONS}")


def activation_grad_from_output(name, y):
    """d act / dz expressed through y = act(z)."""
    if name == "tanh":
        return 1.0 - y * y
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "hard_sigmoid":
        return np.where((y > 0.0) & (y < 1.0), 1.0 / 6.0, 0.0)
    if name == "hard_sigmoid_k2":
        return np.where((y > 0.0) & (y < 1.0), 0.2, 0.0)
    if name == "relu":
        return np.where(y > 0.0, 1.0, 0.0)
    if name == "linear":
        return np.ones_like(y)
    raise ValueError(f"unknown activation {name!r}, expected one of {ACTIVATIONS}")


# ---------------------------------------------------------------------------
# LSTM: one step, forward and backward
# ---------------------------------------------------------------------------

def lstm_step_forward(x_t, h_prev, c_prev, W, U, b, rec_mask=None,
                      activation="tanh", recurrent_activation="sigmoid", rounding=None):
    """One LSTM step over all B rows.

    Args:
      x_t: (B, I) input at this step.
      h_prev, c_prev: (B, H) state before the step.
      W: (I, 4H) input kernel.  U: (H, 4H) recurrent kernel.  b: (4H,) or None.
      rec_mask: (B, H) multiplied onto h_prev before ·U, or None.
      rounding: the operand rounding of each product kind (rnn_rounding), or
         None (exact products).

    Returns:
      h: (B, H), c: (B, H), step_cache (what lstm_step_backward needs).
    """
    H = h_prev.shape[1]
    rd = rnn_rounding(None) if rounding is None else rounding
    h_in = h_prev if rec_mask is None else h_prev * rec_mask
    z = _mm(rd["xw"], x_t, W) + _mm(rd["hu0"], h_in, U)
    if b is not None:
        z = z + b
    i = activation_forward(recurrent_activation, z[:, 0 * H:1 * H])
    f = activation_forward(recurrent_activation, z[:, 1 * H:2 * H])
    g = activation_forward(activation, z[:, 2 * H:3 * H])
    o = activation_forward(recurrent_activation, z[:, 3 * H:4 * H])
    c = f * c_prev + i * g
    ac = activation_forward(activation, c)
    h = o * ac
    step_cache = dict(x_t=x_t, h_in=h_in, c_prev=c_prev, z=z, c=c, i=i, f=f, g=g, o=o, ac=ac,
                      W=W, U=U, rec_mask=rec_mask, activation=activation,
                      recurrent_activation=recurrent_activation, rounding=rd)
    return h, c, step_cache


def lstm_step_backward(dh, dc, step_cache):
    """Backward of lstm_step_forward.

    Args:
      dh: (B, H) total gradient reaching h_t.
      dc: (B, H) gradient reaching c_t from the later steps.

    Returns:
      dx_t (B, I), dh_prev (B, H), dc_prev (B, H), dW (I, 4H), dU (H, 4H), db (4H,).
    """
    s = step_cache
    a, ra = s["activation"], s["recurrent_activation"]
    i, f, g, o, ac = s["i"], s["f"], s["g"], s["o"], s["ac"]
    dc_t = dc + dh * o * activation_grad_from_output(a, ac)
    do = dh * ac * activation_grad_from_output(ra, o)
    di = dc_t * g * activation_grad_from_output(ra, i)
    df = dc_t * s["c_prev"] * activation_grad_from_output(ra, f)
    dg = dc_t * i * activation_grad_from_output(a, g)
    dc_prev = dc_t * f
    dz = np.concatenate([di, df, dg, do], axis=1)  # (B, 4H)
    rd = s["rounding"]
    dx_t = _mm(rd["dx"], dz, s["W"].T)
    dh_in = _mm(rd["dhu0"], dz, s["U"].T)
    dh_prev = dh_in if s["rec_mask"] is None else dh_in * s["rec_mask"]
    dW = _mm(rd["dw"], s["x_t"].T, dz)
    dU = _mm(rd["du0"], s["h_in"].T, dz)
    db = dz.sum(axis=0)
    return dx_t, dh_prev, dc_prev, dW, dU, db


# ---------------------------------------------------------------------------
# Any recurrent cell over a sequence
#
# The scan applies the Keras mask rule around each step: rows whose step is
# masked keep their state, and their output repeats the previous output. Token
# ids are turned into one-hot rows, so the ids path is by construction the
# dense path with x = onehot(ids) and W the (V, G) table. A cell is a pair of
# step functions over a tuple of states whose first entry is h (LSTM: (h, c);
# GRU, SimpleRNN: (h,)).
# ---------------------------------------------------------------------------

def ids_to_onehot(ids, V):
    """(B, T) ids in [-1, V) -> (B, T, V) float64 one-hot rows; id -1 -> all zeros."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < -1 or ids.max() >= V):
        raise ValueError(f"ids must lie in [-1, {V}), got range [{ids.min()}, {ids.max()}]")
    out = np.zeros(ids.shape + (V,), dtype=np.float64)
    b, t = np.nonzero(ids >= 0)
    out[b, t, ids[b, t]] = 1.0
    return out


def _sequence_input(x, W):
    """(x as float64 (B, T, I), whether x was token ids) for a kernel or table W."""
    x = np.asarray(x)
    ids = x.ndim == 2 and np.issubdtype(x.dtype, np.integer)
    return (ids_to_onehot(x, W.shape[0]) if ids else np.asarray(x, dtype=np.float64)), ids


def rnn_scan_forward(step, xd, states0, mask=None, go_backwards=False, zero_output_for_mask=False,
                     return_sequences=True):
    """Runs `step(x_t, states) -> (new_states, step_cache)` over time with Keras masking.

    Args:
      xd: (B, T, I) float64 input.  states0: tuple of (B, H) initial states, h first.
      mask, go_backwards, zero_output_for_mask, return_sequences: as lstm_forward.

    Returns:
      y ((B, T, H) or (B, H)), final states (tuple), steps [(t, m_t, step_cache)].
    """
    B, T, _ = xd.shape
    H = states0[0].shape[1]
    m = np.ones((B, T), dtype=bool) if mask is None else np.asarray(mask) != 0
    states = tuple(np.array(s, dtype=np.float64) for s in states0)
    prev_out = np.zeros((B, H))
    ys = np.zeros((B, T, H))
    steps = []
    for s in range(T):
        t = T - 1 - s if go_backwards else s
        m_t = m[:, t][:, None]  # (B, 1)
        new_states, step_cache = step(xd[:, t], states)
        states = tuple(np.where(m_t, n, o) for n, o in zip(new_states, states))
        out = np.where(m_t, new_states[0], prev_out)
        prev_out = out
        ys[:, s] = np.where(m_t, out, 0.0) if zero_output_for_mask else out
        steps.append((t, m_t, step_cache))
    y = ys if return_sequences else ys[:, T - 1].copy()
    return y, tuple(st.copy() for st in states), steps


def rnn_scan_backward(step_backward, steps, x_shape, dy, dstates_T, zero_output_for_mask=False,
                      return_sequences=True):
    """BPTT through rnn_scan_forward.

    Args:
      step_backward: (dstates, step_cache) -> (dx_t, dstates_prev, {name: weight gradient}).
      steps, x_shape: from the forward.  dy: dL/dy or None.
      dstates_T: tuple of (B, H) gradients reaching the final states (None entries: zeros).

    Returns:
      dx (x_shape), gradients reaching the initial states (tuple), summed weight gradients (dict).
    """
    B, T = x_shape[0], x_shape[1]
    H = steps[0][2]["H"] if T else 0
    dy_seq = np.zeros((B, T, H))
    if dy is not None:
        if return_sequences:
            dy_seq[:] = dy
        elif T > 0:
            dy_seq[:, T - 1] = dy
    dstates = [np.zeros((B, H)) if d is None else np.array(d, dtype=np.float64) for d in dstates_T]
    dout_carry = np.zeros((B, H))  # gradient reaching the previous step's output
    dx = np.zeros(x_shape)
    wgrads = {}
    for s in reversed(range(T)):
        t, m_t, step_cache = steps[s]
        if zero_output_for_mask:
            # y_s = m ? h_new : 0 — nothing reaches the previous output.
            dh_from_out = np.where(m_t, dy_seq[:, s], 0.0)
        else:
            # y_s = m ? h_new : y_{s-1}
            g_out = dy_seq[:, s] + dout_carry
            dh_from_out = np.where(m_t, g_out, 0.0)
            dout_carry = np.where(m_t, 0.0, g_out)
        # state: st_s = m ? st_new : st_{s-1}
        dnew = [np.where(m_t, d, 0.0) for d in dstates]
        dnew[0] = dnew[0] + dh_from_out
        dx_t, dprev, wg = step_backward(tuple(dnew), step_cache)
        dstates = [dp + np.where(m_t, 0.0, d) for dp, d in zip(dprev, dstates)]
        dx[:, t] = dx_t
        for name, g in wg.items():
            wgrads[name] = wgrads.get(name, 0.0) + g
    return dx, tuple(dstates), wgrads


def lstm_forward(x, W, U, b, h0, c0, mask=None, rec_mask=None, go_backwards=False,
                 zero_output_for_mask=False, activation="tanh",
                 recurrent_activation="sigmoid", return_sequences=True, precision="float32"):
    """LSTM over a whole sequence.

    Args:
      x: (B, T, I) float input, or (B, T) integer ids in [-1, V) with W the
         (V, 4H) lookup table (id -1 = all-zero input).
      W: (I, 4H) or (V, 4H).  U: (H, 4H).  b: (4H,) or None.
      h0, c0: (B, H) initial state.
      mask: (B, T), nonzero = real step, or None.
      rec_mask: (B, H) recurrent-dropout mask (one for all steps), or None.
      go_backwards: step s reads x[:, T-1-s]; outputs stay in processing order.
      zero_output_for_mask: masked steps output zeros instead of the previous output.
      return_sequences: y is (B, T, H) if True, else (B, H) (the last step's output).
      precision: "float32" (exact products) or "bfloat16" (the kernels'
         operand rounding, see rnn_rounding); the backward uses the same.

    Returns:
      y, hT (B, H), cT (B, H), cache (for lstm_backward).
    """
    W = np.asarray(W, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    b = None if b is None else np.asarray(b, dtype=np.float64)
    xd, ids = _sequence_input(x, W)
    r = None if rec_mask is None else np.asarray(rec_mask, dtype=np.float64)
    H = U.shape[0]
    rd = rnn_rounding(precision, xd.shape[0], xd.shape[1], W.shape[0], H, [4 * H], ids)

    def step(x_t, states):
        h, c, sc = lstm_step_forward(x_t, states[0], states[1], W, U, b, r, activation, recurrent_activation, rd)
        sc["H"] = H
        return (h, c), sc

    y, (hT, cT), steps = rnn_scan_forward(step, xd, (h0, c0), mask, go_backwards, zero_output_for_mask,
                                          return_sequences)
    cache = dict(steps=steps, ids=ids, x_shape=xd.shape, W=W, U=U, has_bias=b is not None,
                 zero_output_for_mask=zero_output_for_mask,
                 return_sequences=return_sequences, B=xd.shape[0], T=xd.shape[1], H=H)
    return y, hT, cT, cache


def lstm_backward(cache, dy, dhT, dcT):
    """BPTT through lstm_forward.

    Args:
      cache: from lstm_forward.
      dy: dL/dy with y's shape, or None (zeros).
      dhT, dcT: (B, H) dL/dh_T and dL/dc_T, or None (zeros).

    Returns:
      dx: (B, T, I) for float input, None for ids.
      dh0, dc0: (B, H).  dW: like W.  dU: (H, 4H).  db: (4H,), None when b was None.
    """
    def step_backward(dstates, sc):
        dx_t, dh_prev, dc_prev, dW, dU, db = lstm_step_backward(dstates[0], dstates[1], sc)
        return dx_t, (dh_prev, dc_prev), dict(W=dW, U=dU, b=db)

    dx, (dh, dc), g = rnn_scan_backward(step_backward, cache["steps"], cache["x_shape"], dy, (dhT, dcT),
                                        cache["zero_output_for_mask"], cache["return_sequences"])
    dW = g.get("W", np.zeros_like(cache["W"]))
    dU = g.get("U", np.zeros_like(cache["U"]))
    db = g.get("b", np.zeros(4 * cache["H"]))
    return (None if cache["ids"] else dx, dh, dc, dW, dU,
            db if cache["has_bias"] else None)


# ---------------------------------------------------------------------------
# Dense + softmax + cross-entropy
#
# Keras 3 (PyTorch backend) computes the loss on probabilities: p is
# renormalised to p/Σp, clipped to [eps, 1-eps], then logged. The clip passes
# no gradient through entries it clips, so a row that is already confidently
# right (p_label > 1 - eps) contributes nothing. The backward below goes
# through each of those steps rather than using the p - t shortcut, which
# holds only when nothing is clipped.
# ---------------------------------------------------------------------------

def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_softmax_xent(x, W, b, labels, weights=None, from_logits=False, clip_eps=1e-7,
                       precision="float32"):
    """Loss and gradients of Σ_n w_n · CE(t_n, softmax(x_n·W + b)).

    Args:
      x: (N, D).  W: (D, C).  b: (C,) or None.
      labels: int (N,) class ids (sparse) or float (N, C) targets (categorical).
      weights: (N,) per-row weights, or None (all 1).
      from_logits: log_softmax of the logits (no clipping) instead of the
         Keras probability path.
      precision: "bfloat16" rounds the operands of the three products
         (x·W, dz·Wᵀ, xᵀ·dz) as matmul_bf16 does, where bf16_pays; the
         gradient dz is rounded from float32, as the kernel stores it.

    Returns:
      loss (float), probs (N, C), dx (N, D), dW (D, C), db (C,) or None.
    """
    # Keras clamps with Python-float bounds applied in the tensor's dtype: for
    # float32, 1 - 1e-7 becomes 0.99999988, so a clipped row costs 1.19e-7, not 1e-7.
    dt = np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.dtype(np.float64)
    lo, hi = float(dt.type(clip_eps)), float(dt.type(1.0 - clip_eps))
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    N, C = x.shape[0], W.shape[1]

    def mm(a, b_, ta, tb):
        M_, K_ = (a.shape[1], a.shape[0]) if ta else a.shape
        N_ = b_.shape[0] if tb else b_.shape[1]
        if precision == "bfloat16" and bf16_pays(M_, N_, K_):
            return matmul_bf16(a, b_, ta, tb)
        return (a.T if ta else a) @ (b_.T if tb else b_)

    z = mm(x, W, False, False)
    if b is not None:
        z = z + np.asarray(b, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        t = np.zeros((N, C))
        t[np.arange(N), labels] = 1.0
    else:
        t = np.asarray(labels, dtype=np.float64)
    w = np.ones(N) if weights is None else np.asarray(weights, dtype=np.float64)

    p = _softmax(z)
    if from_logits:
        logp = z - z.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
        loss_n = -(t * logp).sum(axis=1)
        dz = p * t.sum(axis=1, keepdims=True) - t  # d(-Σ t·log_softmax(z))/dz
    else:
        S = p.sum(axis=1, keepdims=True)
        q = p / S
        q_clip = np.clip(q, lo, hi)
        loss_n = -(t * np.log(q_clip)).sum(axis=1)
        inside = (q >= lo) & (q <= hi)
        dq = np.where(inside, -t / q_clip, 0.0)
        dp = (dq - (dq * q).sum(axis=1, keepdims=True)) / S  # through q = p / Σp
        dz = p * (dp - (p * dp).sum(axis=1, keepdims=True))  # through softmax
    dz = dz * w[:, None]
    loss = float((w * loss_n).sum())
    dx = mm(dz, W, False, True)
    dW = mm(x, dz, True, False)
    db = dz.sum(axis=0) if b is not None else None
    return loss, p, dx, dW, db


# ---------------------------------------------------------------------------
# Keras 3.15.1 optimizers (issue 25): BaseOptimizer.apply and the rules of its
# PyTorch backend (keras/src/optimizers/base_optimizer.py,
# keras/src/backend/torch/optimizers/torch_<rule>.py; Ftrl has no torch
# version and runs keras/src/optimizers/ftrl.py).
#
# KerasOptimizer works as Keras does, on a list of variables, each its own
# array; the kernels work on one flat buffer cut by offsets, so comparing the
# two also checks the flat-buffer bookkeeping. Elementwise arithmetic is in
# float64. Scalars are formed where Keras forms them: Python arithmetic on the
# user's floats in double (1 - β1), tensor arithmetic (β^t, Nadam's products,
# 1 - wd·lr, the EMA momentum) in the variables' dtype. State (variables,
# slots, accumulators, averages) is stored in the variables' dtype after each
# step, as both Keras and the kernels store it.
# ---------------------------------------------------------------------------

OPTIMIZER_RULES = ("adam", "nadam", "adamax", "adagrad", "adadelta", "lion", "ftrl", "rmsprop", "sgd")


def _sign_torch(x):
    """torch.sign: -1, 0 or 1, and 0 for NaN."""
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0))


def optimizer_rule(rule, w, g, s, lr, local_step, hyper, dtype, nadam_u_product=None):
    """One update of one variable by `rule` (w, g, slots s: float64 arrays, s updated in place).

    `lr` is the learning rate, `local_step` Keras's iterations + 1. Returns the new w,
    and for Nadam also the new stored product of the momentum schedule.
    """
    dt = np.dtype(dtype).type
    one = dt(1)
    lr_t = float(dt(lr))
    h = hyper
    if rule == "adam":  # torch_adam.py; amsgrad when s has "vhat"
        t = dt(local_step)
        alpha = float(dt(lr) * np.sqrt(one - dt(h["beta_2"]) ** t) / (one - dt(h["beta_1"]) ** t))
        s["m"] = h["beta_1"] * s["m"] + (1.0 - h["beta_1"]) * g
        s["v"] = h["beta_2"] * s["v"] + (1.0 - h["beta_2"]) * g * g
        v = s["v"]
        if "vhat" in s:
            s["vhat"] = np.maximum(s["vhat"], s["v"])
            v = s["vhat"]
        return w - s["m"] * alpha / (np.sqrt(v) + h["epsilon"])
    if rule == "nadam":  # torch_nadam.py: the u's in the dtype, the stored product Π carried between steps
        t, t1, decay, b1 = dt(local_step), dt(local_step + 1), dt(0.96), dt(h["beta_1"])
        u_t = b1 * (dt(1.0) - dt(0.5) * decay ** t)
        u_t_1 = b1 * (dt(1.0) - dt(0.5) * decay ** t1)
        u_product_t = dt(nadam_u_product) * u_t
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = dt(h["beta_2"]) ** t
        s["m"] = h["beta_1"] * s["m"] + (1.0 - h["beta_1"]) * g
        s["v"] = h["beta_2"] * s["v"] + (1.0 - h["beta_2"]) * g * g
        m_hat = s["m"] * float(u_t_1) / float(one - u_product_t_1) + g * float(one - u_t) / float(one - u_product_t)
        v_hat = s["v"] / float(one - beta_2_power)
        return w - m_hat * lr_t / (np.sqrt(v_hat) + h["epsilon"]), u_product_t
    if rule == "adamax":  # torch_adamax.py
        beta_1_power = dt(h["beta_1"]) ** dt(local_step)
        s["m"] = h["beta_1"] * s["m"] + (1.0 - h["beta_1"]) * g
        s["u"] = np.maximum(h["beta_2"] * s["u"], np.abs(g))
        return w - s["m"] * lr_t / ((s["u"] + h["epsilon"]) * float(one - beta_1_power))
    if rule == "adagrad":  # torch_adagrad.py
        s["accumulator"] = s["accumulator"] + g * g
        return w - g * lr_t / np.sqrt(s["accumulator"] + h["epsilon"])
    if rule == "adadelta":  # torch_adadelta.py
        rho, eps = h["rho"], h["epsilon"]
        s["accumulated_grad"] = rho * s["accumulated_grad"] + (1.0 - rho) * g * g
        delta = -np.sqrt(s["accumulated_delta_var"] + eps) * g / np.sqrt(s["accumulated_grad"] + eps)
        s["accumulated_delta_var"] = rho * s["accumulated_delta_var"] + (1.0 - rho) * delta * delta
        return w + lr_t * delta
    if rule == "lion":  # torch_lion.py
        c = h["beta_1"] * s["m"] + (1.0 - h["beta_1"]) * g
        s["m"] = h["beta_2"] * s["m"] + (1.0 - h["beta_2"]) * g
        return w - _sign_torch(c) * lr_t
    if rule == "ftrl":  # ftrl.py (generic ops); l2_reg = l2 + β/(2·lr) is tensor arithmetic, and
        # the Python floats given to keras.ops (the power, l1, 2·l2 shrinkage) become float32 tensors
        p = float(np.float32(-h["learning_rate_power"]))
        l2_reg = float(dt(h["l2_regularization_strength"]) + dt(h["beta"]) / (dt(2.0) * dt(lr)))
        l1 = float(np.float32(h["l1_regularization_strength"]))
        g_use = g + float(np.float32(2 * h["l2_shrinkage_regularization_strength"])) * w
        new_acc = s["accumulator"] + g * g
        s["linear"] = s["linear"] + g_use - (new_acc ** p - s["accumulator"] ** p) / lr_t * w
        quadratic = new_acc ** p / lr_t + 2 * l2_reg
        s["accumulator"] = new_acc
        return (np.clip(s["linear"], -l1, l1) - s["linear"]) / quadratic
    if rule == "rmsprop":  # torch_rmsprop.py; centred when s has "average_grad", momentum when "momentum_buf"
        rho = h["rho"]
        s["velocity"] = rho * s["velocity"] + (1.0 - rho) * g * g
        den = s["velocity"] + h["epsilon"]
        if "average_grad" in s:
            s["average_grad"] = rho * s["average_grad"] + (1.0 - rho) * g
            den = den - s["average_grad"] ** 2
        increment = g * lr_t / np.sqrt(den)
        if "momentum_buf" in s:
            s["momentum_buf"] = h["momentum"] * s["momentum_buf"] + increment
            return w - s["momentum_buf"]
        return w - increment
    if rule == "sgd":  # torch_sgd.py
        if h["momentum"] == 0:
            return w - lr_t * g
        s["u"] = h["momentum"] * s["u"] - lr_t * g
        if h["nesterov"]:
            return w - lr_t * g + h["momentum"] * s["u"]
        return w + s["u"]
    raise ValueError(f"unknown rule {rule!r}; expected one of {OPTIMIZER_RULES}")


def optimizer_slots(rule, shape, hyper, dtype):
    """The state Keras's build() creates for one variable of `shape`, by name."""
    zeros = lambda: np.zeros(shape, dtype)  # noqa: E731
    if rule == "adam":
        return {"m": zeros(), "v": zeros(), **({"vhat": zeros()} if hyper.get("amsgrad") else {})}
    if rule == "nadam":
        return {"m": zeros(), "v": zeros()}
    if rule == "adamax":
        return {"m": zeros(), "u": zeros()}
    if rule == "adagrad":
        return {"accumulator": np.full(shape, hyper["initial_accumulator_value"], dtype)}
    if rule == "adadelta":
        return {"accumulated_grad": zeros(), "accumulated_delta_var": zeros()}
    if rule == "lion":
        return {"m": zeros()}
    if rule == "ftrl":
        return {"accumulator": np.full(shape, hyper["initial_accumulator_value"], dtype), "linear": zeros()}
    if rule == "rmsprop":
        s = {"velocity": zeros()}
        if hyper.get("momentum", 0) > 0:
            s["momentum_buf"] = zeros()
        if hyper.get("centered"):
            s["average_grad"] = zeros()
        return s
    if rule == "sgd":
        return {"u": zeros()} if hyper.get("momentum", 0) != 0 else {}
    raise ValueError(f"unknown rule {rule!r}; expected one of {OPTIMIZER_RULES}")


class KerasOptimizer:
    """Keras 3.15.1's `Optimizer.apply` (PyTorch backend) on a list of variables.

    Args:
        rule: one of OPTIMIZER_RULES (AdamW is "adam" with a weight_decay).
        shapes: the variables' shapes.
        dtype: the variables' dtype.
        learning_rate: a float, or a callable of the raw iteration count (a schedule).
        weight_decay, clipnorm, global_clipnorm, clipvalue, use_ema, ema_momentum,
        ema_overwrite_frequency, gradient_accumulation_steps: Keras's arguments.
        exclude_from_weight_decay: indices of variables Keras would exclude.
        **hyper: the rule's hyperparameters, all given (no defaults here).

    `apply(grads, variables)` returns the new variables; `slots`, `accumulators`,
    `averages`, `iterations` and `u_product` hold the state, as Keras's do.

    >>> opt = KerasOptimizer("sgd", [(2,)], momentum=0.0, nesterov=False, learning_rate=0.5)
    >>> [w.tolist() for w in opt.apply([np.ones(2)], [np.zeros(2, np.float32)])]
    [[-0.5, -0.5]]
    """

    def __init__(self, rule, shapes, dtype=np.float32, learning_rate=0.001, weight_decay=None, clipnorm=None,
                 global_clipnorm=None, clipvalue=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, gradient_accumulation_steps=None, exclude_from_weight_decay=(),
                 **hyper):
        self.rule, self.dtype, self.hyper = rule, np.dtype(dtype), hyper
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm, self.global_clipnorm, self.clipvalue = clipnorm, global_clipnorm, clipvalue
        self.use_ema, self.ema_momentum, self.ema_overwrite_frequency = use_ema, ema_momentum, ema_overwrite_frequency
        self.steps = gradient_accumulation_steps
        self.exclude = set(exclude_from_weight_decay)
        self.slots = [optimizer_slots(rule, s, hyper, self.dtype) for s in shapes]
        self.accumulators = [np.zeros(s, self.dtype) for s in shapes] if self.steps else None
        self.averages = [np.zeros(s, self.dtype) for s in shapes] if use_ema else None
        self.iterations = 0  # Keras's _iterations: every apply() call
        self.u_product = self.dtype.type(1.0)

    @property
    def step_iterations(self):
        """optimizer.iterations: _iterations // gradient_accumulation_steps when accumulating."""
        return self.iterations // self.steps if self.steps else self.iterations

    def _lr(self):
        """The learning rate: a float32 Variable in Keras (floatx) whatever the variables' dtype."""
        lr = self.learning_rate
        return float(np.float32(lr(self.iterations) if callable(lr) else lr))

    def _clip(self, grads):
        """BaseOptimizer._clip_gradients (norms in float64). Python floats given to keras.ops
        become float32 tensors, and ops.maximum/minimum with them return float32: f32() below."""
        f32 = np.float32
        if self.clipnorm and self.clipnorm > 0:
            c = f32(self.clipnorm)
            return [g * float(c) / float(np.maximum(f32(np.sqrt(np.sum(g * g))), c)) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            c = self.global_clipnorm
            norm = np.sqrt(sum(np.sum(g * g) for g in grads))
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                scale = float(f32(c) * np.minimum(f32(1.0 / norm), f32(1.0 / c))) + (norm - norm)
            return [g * scale for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            v = float(f32(self.clipvalue))
            return [np.clip(g, -v, v) for g in grads]
        return grads

    def apply(self, grads, variables):
        dt = self.dtype.type
        w = [np.asarray(v, np.float64) for v in variables]
        g = [np.asarray(x, np.float64) for x in grads]
        lr = self._lr()
        if self.steps and (self.iterations + 1) % self.steps != 0:
            self.accumulators = [(a + x).astype(self.dtype) for a, x in zip(self.accumulators, g)]
        else:
            if self.steps:
                g = [(x + a) / self.steps for x, a in zip(g, self.accumulators)]
            g = self._clip(g)
            if self.weight_decay is not None:  # TorchOptimizer._apply_weight_decay
                factor = float(np.float32(1) - np.float32(self.weight_decay) * np.float32(lr))
                w = [x if k in self.exclude else x * factor for k, x in enumerate(w)]
            t = self.step_iterations + 1
            new_product = None
            for k in range(len(w)):
                s = {name: a.astype(np.float64) for name, a in self.slots[k].items()}
                out = optimizer_rule(self.rule, w[k], g[k], s, lr, t, self.hyper, self.dtype, self.u_product)
                if self.rule == "nadam":
                    out, new_product = out
                w[k] = out
                self.slots[k] = {name: a.astype(self.dtype) for name, a in s.items()}
            if new_product is not None:
                self.u_product = new_product
            if self.steps:
                self.accumulators = [np.zeros_like(a) for a in self.accumulators]
        if self.use_ema:
            it = self.step_iterations
            m = dt(it != 0) * dt(np.float32(self.ema_momentum))  # ops.multiply(cast(...), float)
            self.averages = [(float(m) * a + float(dt(1) - m) * x).astype(self.dtype)
                             for a, x in zip(self.averages, w)]
            if self.ema_overwrite_frequency and (it + 1) % self.ema_overwrite_frequency == 0:
                w = [a.astype(np.float64) for a in self.averages]
        self.iterations += 1
        return [x.astype(self.dtype) for x in w]


# ---------------------------------------------------------------------------
# bfloat16 products (mixed precision)
#
# Under precision "bfloat16" the kernels round both operands of a matrix
# product to bfloat16 and sum the products (exact in float32) in float32; here
# the sums are in float64. The rounding is VCVTNEPS2BF16's: nearest-even, NaN
# stays NaN, float32 subnormals read as zero. A product too small to gain from
# bfloat16 stays float32 (bf16_pays, the rule of csrc/precision.cpp).
# ---------------------------------------------------------------------------

BF16_MIN_K = 16
BF16_MIN_MNK = 32768


def bf16_pays(M, N, K):
    """Whether the kernels take bfloat16 operands for op(A)(M,K)·op(B)(K,N)."""
    return K >= BF16_MIN_K and M * N * K >= BF16_MIN_MNK


def bf16_round(x):
    """x (as float32) rounded to bfloat16, returned as float64.

    >>> [float(v) for v in bf16_round(np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1e-40]))]
    [1.0, 1.015625, 0.0]
    """
    # ml_dtypes (the 'test' extra, the library Keras and JAX use for bfloat16)
    # is imported here only: the rest of this module needs numpy alone.
    import ml_dtypes

    x = np.asarray(x, dtype=np.float32)
    x = np.where(np.abs(x) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), x), x)
    with np.errstate(invalid="ignore"):  # NaN -> bfloat16 NaN warns in the cast
        return x.astype(ml_dtypes.bfloat16).astype(np.float64)


def matmul_bf16(a, b, trans_a=False, trans_b=False):
    """op(a)·op(b) on bfloat16-rounded operands, summed in float64 (no size rule)."""
    A, B = bf16_round(a), bf16_round(b)
    return (A.T if trans_a else A) @ (B.T if trans_b else B)


def _exact(a):
    return a


def rnn_rounding(precision, B=0, T=0, I=0, H=0, segments=(), ids=False):
    """The operand rounding of each product of a recurrent sequence, as the
    sequence driver decides it: once per product kind, from the kind's whole
    shape (bf16_pays), under precision "bfloat16"; exact for "float32" or None.

    Kinds (M, N, K; TB = T·B, G the gate columns, n_p the columns of U's
    segment p: [G], or [2H, H] for the GRU without reset_after):
      xw  X·W (TB, G, I)        hu<p>  a·U_p per step (B, n_p, H)
      dx  dZ·Wᵀ (TB, I, G)      dhu<p> dZ_p·U_pᵀ per step (B, H, n_p)
      dw  Xᵀ·dZ (I, G, TB)      du<p>  Aᵀ·dZ_p (H, n_p, TB)
    Token ids are a row lookup of W and a scatter-add of dZ rows: xw and dw
    stay exact (`ids`; the kernels take the same path for one-hot float x
    unless onehot='never'). Returns {kind: function applied to both operands}.
    """
    kinds = ["xw", "dx", "dw"] + [f"{k}{p}" for p in range(max(len(segments), 2)) for k in ("hu", "dhu", "du")]
    if precision is None or precision == "float32":
        return dict.fromkeys(kinds, _exact)
    if precision != "bfloat16":
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    TB, G = T * B, sum(segments)

    def rule(M, N, K):
        return bf16_round if bf16_pays(M, N, K) else _exact

    rd = dict(xw=_exact if ids else rule(TB, G, I), dx=rule(TB, I, G), dw=_exact if ids else rule(I, G, TB))
    for p, n in enumerate(segments):
        rd.update({f"hu{p}": rule(B, n, H), f"dhu{p}": rule(B, H, n), f"du{p}": rule(H, n, TB)})
    return rd


def _mm(rnd, a, b):
    """a·b with both operands passed through rnd (exact or bf16_round)."""
    return rnd(a) @ rnd(b)


# ---------------------------------------------------------------------------
# GRU (Keras 3 GRUCell): one step, forward and backward, and the sequence
#
# Gate order along 3H is z (update), r (reset), h (candidate). a = h_{t-1} ⊙ r_m
# (r_m the recurrent-dropout mask) multiplies U; the final mix uses h_{t-1}.
#   reset_after=True (bias (2, 3H): input row, recurrent row):
#     x_z, x_r, x_h = x·W + b_in     r_z, r_r, r_h = a·U + b_rec
#     z = ra(x_z + r_z)   r = ra(x_r + r_r)   hh = act(x_h + r ⊙ r_h)
#   reset_after=False (bias (3H)):
#     z = ra(x_z + a·U_z)   r = ra(x_r + a·U_r)   hh = act(x_h + (r ⊙ a)·U_h)
#   h = z ⊙ h_{t-1} + (1 - z) ⊙ hh
# ---------------------------------------------------------------------------

def _gru_biases(b, H, reset_after):
    """(b_in (3H,) or None, b_rec (3H,) or None) from Keras's bias layout."""
    if b is None:
        return None, None
    b = np.asarray(b, dtype=np.float64)
    if reset_after:
        if b.shape != (2, 3 * H):
            raise ValueError(f"reset_after=True: b must be (2, {3 * H}), got {b.shape}")
        return b[0], b[1]
    if b.shape != (3 * H,):
        raise ValueError(f"reset_after=False: b must be ({3 * H},), got {b.shape}")
    return b, None


def gru_step_forward(x_t, h_prev, W, U, b, rec_mask=None, activation="tanh",
                     recurrent_activation="sigmoid", reset_after=True, rounding=None):
    """One GRU step over all B rows.

    Args:
      x_t: (B, I).  h_prev: (B, H).  W: (I, 3H).  U: (H, 3H).
      b: (2, 3H) with reset_after, (3H,) without, or None.
      rec_mask: (B, H) multiplied onto h_prev before ·U, or None.
      rounding: as lstm_step_forward (segments [3H], or [2H, H] without reset_after).

    Returns:
      h: (B, H), step_cache (what gru_step_backward needs).
    """
    H = h_prev.shape[1]
    rd = rnn_rounding(None) if rounding is None else rounding
    ra = lambda z: activation_forward(recurrent_activation, z)  # noqa: E731
    b_in, b_rec = _gru_biases(b, H, reset_after)
    a = h_prev if rec_mask is None else h_prev * rec_mask
    xw = _mm(rd["xw"], x_t, W)
    if b_in is not None:
        xw = xw + b_in
    sc = dict(x_t=x_t, h_prev=h_prev, a=a, W=W, U=U, rec_mask=rec_mask, reset_after=reset_after, H=H,
              has_bias=b is not None, activation=activation, recurrent_activation=recurrent_activation,
              rounding=rd)
    if reset_after:
        rec = _mm(rd["hu0"], a, U)
        if b_rec is not None:
            rec = rec + b_rec
        z = ra(xw[:, :H] + rec[:, :H])
        r = ra(xw[:, H:2 * H] + rec[:, H:2 * H])
        pre_h = xw[:, 2 * H:] + r * rec[:, 2 * H:]
        sc.update(rh=rec[:, 2 * H:])
    else:
        rec = _mm(rd["hu0"], a, U[:, :2 * H])
        z = ra(xw[:, :H] + rec[:, :H])
        r = ra(xw[:, H:2 * H] + rec[:, H:])
        q = r * a
        pre_h = xw[:, 2 * H:] + _mm(rd["hu1"], q, U[:, 2 * H:])
        sc.update(q=q)
    hh = activation_forward(activation, pre_h)
    h = z * h_prev + (1.0 - z) * hh
    sc.update(z=z, r=r, hh=hh, pre_z=xw[:, :H] + rec[:, :H], pre_r=xw[:, H:2 * H] + rec[:, H:2 * H],
              pre_h=pre_h)
    return h, sc


def gru_step_backward(dh, step_cache):
    """Backward of gru_step_forward.

    Args:
      dh: (B, H) total gradient reaching h_t.

    Returns:
      dx_t (B, I), dh_prev (B, H), dW (I, 3H), dU (H, 3H), db (b's shape, or None).
    """
    s = step_cache
    a_, ra_ = s["activation"], s["recurrent_activation"]
    H, z, r, hh, a = s["H"], s["z"], s["r"], s["hh"], s["a"]
    U, rd = s["U"], s["rounding"]
    gz = dh * (s["h_prev"] - hh) * activation_grad_from_output(ra_, z)
    gh = dh * (1.0 - z) * activation_grad_from_output(a_, hh)
    dh_prev = dh * z
    if s["reset_after"]:
        gr = gh * s["rh"] * activation_grad_from_output(ra_, r)
        dzx = np.concatenate([gz, gr, gh], axis=1)
        dzr = np.concatenate([gz, gr, gh * r], axis=1)
        dU = _mm(rd["du0"], a.T, dzr)
        da = _mm(rd["dhu0"], dzr, U.T)
        db = np.stack([dzx.sum(axis=0), dzr.sum(axis=0)]) if s["has_bias"] else None
    else:
        dq = _mm(rd["dhu1"], gh, U[:, 2 * H:].T)
        gr = dq * a * activation_grad_from_output(ra_, r)
        dzx = np.concatenate([gz, gr, gh], axis=1)
        dU = np.concatenate([_mm(rd["du0"], a.T, dzx[:, :2 * H]), _mm(rd["du1"], s["q"].T, gh)], axis=1)
        da = _mm(rd["dhu0"], dzx[:, :2 * H], U[:, :2 * H].T) + dq * r
        db = dzx.sum(axis=0) if s["has_bias"] else None
    dh_prev = dh_prev + (da if s["rec_mask"] is None else da * s["rec_mask"])
    return _mm(rd["dx"], dzx, s["W"].T), dh_prev, _mm(rd["dw"], s["x_t"].T, dzx), dU, db


def gru_forward(x, W, U, b, h0, mask=None, rec_mask=None, go_backwards=False, zero_output_for_mask=False,
                activation="tanh", recurrent_activation="sigmoid", reset_after=True, return_sequences=True,
                precision="float32"):
    """GRU over a whole sequence (arguments as lstm_forward; no c0; see gru_step_forward).

    Returns:
      y, hT (B, H), cache (for gru_backward).
    """
    W = np.asarray(W, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    b = None if b is None else np.asarray(b, dtype=np.float64)
    xd, ids = _sequence_input(x, W)
    r = None if rec_mask is None else np.asarray(rec_mask, dtype=np.float64)
    H = U.shape[0]
    rd = rnn_rounding(precision, xd.shape[0], xd.shape[1], W.shape[0], H,
                      [3 * H] if reset_after else [2 * H, H], ids)

    def step(x_t, states):
        h, sc = gru_step_forward(x_t, states[0], W, U, b, r, activation, recurrent_activation, reset_after, rd)
        return (h,), sc

    y, (hT,), steps = rnn_scan_forward(step, xd, (h0,), mask, go_backwards, zero_output_for_mask,
                                       return_sequences)
    cache = dict(steps=steps, ids=ids, x_shape=xd.shape, W=W, U=U, b=b, zero_output_for_mask=zero_output_for_mask,
                 return_sequences=return_sequences, H=U.shape[0])
    return y, hT, cache


def gru_backward(cache, dy, dhT):
    """BPTT through gru_forward: (dx or None for ids, dh0, dW, dU, db or None)."""
    def step_backward(dstates, sc):
        dx_t, dh_prev, dW, dU, db = gru_step_backward(dstates[0], sc)
        g = dict(W=dW, U=dU)
        if db is not None:
            g["b"] = db
        return dx_t, (dh_prev,), g

    dx, (dh,), g = rnn_scan_backward(step_backward, cache["steps"], cache["x_shape"], dy, (dhT,),
                                     cache["zero_output_for_mask"], cache["return_sequences"])
    b = cache["b"]
    return (None if cache["ids"] else dx, dh, g.get("W", np.zeros_like(cache["W"])),
            g.get("U", np.zeros_like(cache["U"])), None if b is None else g.get("b", np.zeros_like(b)))


# ---------------------------------------------------------------------------
# SimpleRNN (Keras 3 SimpleRNNCell)
#
#   h_t = act(x_t·W + b + (h_{t-1} ⊙ r_m)·U)
# ---------------------------------------------------------------------------

def simple_rnn_step_forward(x_t, h_prev, W, U, b, rec_mask=None, activation="tanh", rounding=None):
    """One SimpleRNN step: x_t (B, I), h_prev (B, H), W (I, H), U (H, H), b (H,) or None;
    rounding as lstm_step_forward."""
    rd = rnn_rounding(None) if rounding is None else rounding
    a = h_prev if rec_mask is None else h_prev * rec_mask
    z = _mm(rd["xw"], x_t, W)
    if b is not None:
        z = z + b
    z = z + _mm(rd["hu0"], a, U)
    h = activation_forward(activation, z)
    return h, dict(x_t=x_t, a=a, h=h, z=z, W=W, U=U, rec_mask=rec_mask, activation=activation,
                   H=h_prev.shape[1], rounding=rd)


def simple_rnn_step_backward(dh, step_cache):
    """Backward of simple_rnn_step_forward: dx_t, dh_prev, dW, dU, db."""
    s = step_cache
    rd = s["rounding"]
    dz = dh * activation_grad_from_output(s["activation"], s["h"])
    da = _mm(rd["dhu0"], dz, s["U"].T)
    dh_prev = da if s["rec_mask"] is None else da * s["rec_mask"]
    return (_mm(rd["dx"], dz, s["W"].T), dh_prev, _mm(rd["dw"], s["x_t"].T, dz), _mm(rd["du0"], s["a"].T, dz),
            dz.sum(axis=0))


def simple_rnn_forward(x, W, U, b, h0, mask=None, rec_mask=None, go_backwards=False, zero_output_for_mask=False,
                       activation="tanh", return_sequences=True, precision="float32"):
    """SimpleRNN over a whole sequence (arguments as lstm_forward; no c0, no recurrent_activation).

    Returns:
      y, hT (B, H), cache (for simple_rnn_backward).
    """
    W = np.asarray(W, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    b = None if b is None else np.asarray(b, dtype=np.float64)
    xd, ids = _sequence_input(x, W)
    r = None if rec_mask is None else np.asarray(rec_mask, dtype=np.float64)
    rd = rnn_rounding(precision, xd.shape[0], xd.shape[1], W.shape[0], U.shape[0], [U.shape[0]], ids)

    def step(x_t, states):
        h, sc = simple_rnn_step_forward(x_t, states[0], W, U, b, r, activation, rd)
        return (h,), sc

    y, (hT,), steps = rnn_scan_forward(step, xd, (h0,), mask, go_backwards, zero_output_for_mask,
                                       return_sequences)
    cache = dict(steps=steps, ids=ids, x_shape=xd.shape, W=W, U=U, has_bias=b is not None,
                 zero_output_for_mask=zero_output_for_mask, return_sequences=return_sequences, H=U.shape[0])
    return y, hT, cache


def simple_rnn_backward(cache, dy, dhT):
    """BPTT through simple_rnn_forward: (dx or None for ids, dh0, dW, dU, db or None)."""
    def step_backward(dstates, sc):
        dx_t, dh_prev, dW, dU, db = simple_rnn_step_backward(dstates[0], sc)
        return dx_t, (dh_prev,), dict(W=dW, U=dU, b=db)

    dx, (dh,), g = rnn_scan_backward(step_backward, cache["steps"], cache["x_shape"], dy, (dhT,),
                                     cache["zero_output_for_mask"], cache["return_sequences"])
    H = cache["H"]
    return (None if cache["ids"] else dx, dh, g.get("W", np.zeros_like(cache["W"])),
            g.get("U", np.zeros_like(cache["U"])), g.get("b", np.zeros(H)) if cache["has_bias"] else None)


# ---------------------------------------------------------------------------
# Conv1D (Keras 3, channels_last)
#
#   y[b, t, f] = bias[f] + Σ_{k, c} xp[b, t·s + k·d, g·Cg + c] · W[k, c, f],  g = f // Fg
# x (B, L, C); W (K, C/groups, F) (Keras's layout); xp is x zero-padded by
# (left, right) = conv1d_padding(...); Cg = C/groups, Fg = F/groups.
# ---------------------------------------------------------------------------

def conv1d_padding(L, kernel_size, strides=1, padding="valid", dilation_rate=1):
    """(left, right) zero padding of the time axis, as Keras 3 computes it.

    'valid': none.  'causal': dilation·(K-1) on the left.  'same': the total
    (ceil(L/s) - 1)·s + dilation·(K-1) + 1 - L (at least 0), split with the odd
    one on the right (keras/src/backend/torch/nn.py _compute_padding_length).
    """
    eff = (kernel_size - 1) * dilation_rate + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return eff - 1, 0
    if padding == "same":
        total = eff - 1 if strides == 1 else max(0, ((L + strides - 1) // strides - 1) * strides + eff - L)
        return total // 2, total - total // 2
    raise ValueError(f"padding must be 'valid', 'same' or 'causal', got {padding!r}")


def conv1d_forward(x, W, b, strides=1, padding="valid", dilation_rate=1, groups=1):
    """Conv1D forward: x (B, L, C), W (K, C/groups, F), b (F,) or None -> y (B, L_out, F)."""
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    B, L, C = x.shape
    K, Cg, F = W.shape
    Fg = F // groups
    left, right = conv1d_padding(L, K, strides, padding, dilation_rate)
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    L_out = (L + left + right - (K - 1) * dilation_rate - 1) // strides + 1
    if L_out < 1:
        raise ValueError(f"input of {L} steps is shorter than the dilated kernel")
    y = np.zeros((B, L_out, F))
    for t in range(L_out):
        for k in range(K):
            xs = xp[:, t * strides + k * dilation_rate]  # (B, C)
            for g in range(groups):
                y[:, t, g * Fg:(g + 1) * Fg] += xs[:, g * Cg:(g + 1) * Cg] @ W[k, :, g * Fg:(g + 1) * Fg]
    if b is not None:
        y += np.asarray(b, dtype=np.float64)
    return y


def conv1d_backward(dy, x, W, has_bias=True, strides=1, padding="valid", dilation_rate=1, groups=1):
    """Backward of conv1d_forward: (dx (B, L, C), dW (K, C/groups, F), db (F,) or None)."""
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    B, L, C = x.shape
    K, Cg, F = W.shape
    Fg = F // groups
    left, right = conv1d_padding(L, K, strides, padding, dilation_rate)
    xp = np.pad(x, ((0, 0), (left, right), (0, 0)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for t in range(dy.shape[1]):
        for k in range(K):
            i = t * strides + k * dilation_rate
            for g in range(groups):
                c, f = slice(g * Cg, (g + 1) * Cg), slice(g * Fg, (g + 1) * Fg)
                dW[k, :, f] += xp[:, i, c].T @ dy[:, t, f]
                dxp[:, i, c] += dy[:, t, f] @ W[k, :, f].T
    db = dy.sum(axis=(0, 1)) if has_bias else None
    return dxp[:, left:left + L], dW, db


# ---------------------------------------------------------------------------
# Pooling, normalization and activation layers (layers/pooling.py,
# normalization.py, advanced_activations.py). x is (B, L, C), channels last.
# Each window, sample or position is its own loop iteration: the oracle the
# vectorised layers are compared against.
# ---------------------------------------------------------------------------

def pool1d_windows(L, pool_size, strides, padding):
    """[(start, stop)] of each window's real steps: 'valid', or 'same' with
    (ceil(L/s) - 1)·s + k - L padding steps, the smaller half on the left."""
    k, s = pool_size, strides
    if padding == "valid":
        n, left = (L - k) // s + 1, 0
    else:
        n = -(-L // s)
        left = max(0, (n - 1) * s + k - L) // 2
    return [(max(t * s - left, 0), min(t * s - left + k, L)) for t in range(n)]


def max_pool1d(x, dy, pool_size, strides, padding="valid"):
    """y[b, t, c] = max of window t; dx routes dy[b, t, c] to the window's first maximum.
    Returns (y, dx) (dx None when dy is None)."""
    x = np.asarray(x, dtype=np.float64)
    wins = pool1d_windows(x.shape[1], pool_size, strides, padding)
    y = np.zeros((x.shape[0], len(wins), x.shape[2]))
    dx = None if dy is None else np.zeros_like(x)
    for b in range(x.shape[0]):
        for t, (a, e) in enumerate(wins):
            for c in range(x.shape[2]):
                j = a + int(np.argmax(x[b, a:e, c]))
                y[b, t, c] = x[b, j, c]
                if dx is not None:
                    dx[b, j, c] += dy[b, t, c]
    return y, dx


def average_pool1d(x, dy, pool_size, strides, padding="valid"):
    """y[b, t] = mean of window t's real steps (padding never counts). Returns (y, dx)."""
    x = np.asarray(x, dtype=np.float64)
    wins = pool1d_windows(x.shape[1], pool_size, strides, padding)
    y = np.zeros((x.shape[0], len(wins), x.shape[2]))
    dx = None if dy is None else np.zeros_like(x)
    for t, (a, e) in enumerate(wins):
        y[:, t] = x[:, a:e].sum(axis=1) / (e - a)
        if dx is not None:
            dx[:, a:e] += np.asarray(dy, dtype=np.float64)[:, t, None] / (e - a)
    return y, dx


def global_average_pool1d(x, dy, mask=None):
    """y[b] = mean over the steps with mask[b, t] (all steps without a mask; 0 when none
    is unmasked). Returns (y, dx)."""
    x = np.asarray(x, dtype=np.float64)
    B, L, C = x.shape
    m = np.ones((B, L), bool) if mask is None else np.asarray(mask, bool)
    y = np.zeros((B, C))
    dx = None if dy is None else np.zeros_like(x)
    for b in range(B):
        n = int(m[b].sum())
        if n:
            y[b] = x[b, m[b]].sum(axis=0) / n
            if dx is not None:
                dx[b, m[b]] = np.asarray(dy, dtype=np.float64)[b] / n
    return y, dx


def batch_norm(x, dy, gamma, beta, eps, mask=None, moving=None):
    """BatchNormalization over every axis but the last, in training (batch statistics,
    `moving` None) or inference (moving = (mean, variance)).

    With a mask (x's shape without the last axis) the statistics use Keras's
    S = Σ mask + 1e-7. Returns (y, dx, dgamma, dbeta, mean, var); the gradients are
    None when dy is None. dx comes from the chain rule written out step by step
    (through x̂, then σ², then μ), not from the closed form the layer uses.
    """
    x = np.asarray(x, dtype=np.float64)
    C = x.shape[-1]
    X = x.reshape(-1, C)
    m = np.ones(X.shape[0]) if mask is None else np.asarray(mask, np.float64).reshape(-1)
    g = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    bt = np.zeros(C) if beta is None else np.asarray(beta, np.float64)
    if moving is None:
        S = m.sum() + (0.0 if mask is None else 1e-7)
        mean = (m[:, None] * X).sum(axis=0) / S
        var = (m[:, None] * (X - mean) ** 2).sum(axis=0) / S
    else:
        mean, var = (np.asarray(a, np.float64) for a in moving)
    r = 1.0 / np.sqrt(var + eps)
    xhat = (X - mean) * r
    y = (xhat * g + bt).reshape(x.shape)
    if dy is None:
        return y, None, None, None, mean, var
    D = np.asarray(dy, np.float64).reshape(-1, C)
    dgamma, dbeta = (D * xhat).sum(axis=0), D.sum(axis=0)
    dxhat = D * g
    if moving is not None:
        return y, (dxhat * r).reshape(x.shape), dgamma, dbeta, mean, var
    dX = dxhat * r                                             # through x̂ = (x - μ)·r, μ and r held
    dvar = (dxhat * (X - mean)).sum(axis=0) * -0.5 * r ** 3    # dL/dσ²
    dX += dvar * 2.0 * m[:, None] * (X - mean) / S             # σ² = Σ m (x - μ)² / S, μ held
    dmean = -(dxhat * r).sum(axis=0) + dvar * (-2.0 * (m[:, None] * (X - mean)).sum(axis=0) / S)
    dX += dmean * m[:, None] / S                               # μ = Σ m x / S
    return y, dX.reshape(x.shape), dgamma, dbeta, mean, var


def layer_norm(x, dy, gamma, beta, eps, rms_scaling=False):
    """LayerNormalization over the last axis, one row at a time. Returns (y, dx, dgamma, dbeta)."""
    x = np.asarray(x, dtype=np.float64)
    C = x.shape[-1]
    X = x.reshape(-1, C)
    g = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    bt = np.zeros(C) if (beta is None or rms_scaling) else np.asarray(beta, np.float64)
    Y = np.zeros_like(X)
    D = None if dy is None else np.asarray(dy, np.float64).reshape(-1, C)
    dX, dgamma, dbeta = np.zeros_like(X), np.zeros(C), np.zeros(C)
    for n in range(X.shape[0]):
        row = X[n]
        mu = row.mean()
        var = ((row - mu) ** 2).mean()
        r = 1.0 / np.sqrt(var + eps)
        z = row * r if rms_scaling else (row - mu) * r
        Y[n] = z * g + bt
        if D is None:
            continue
        dgamma += D[n] * z
        dbeta += D[n]
        dz = D[n] * g
        dvar = -0.5 * r ** 3 * (dz * (row if rms_scaling else row - mu)).sum()
        dX[n] = dz * r + dvar * 2.0 * (row - mu) / C
        if not rms_scaling:
            dX[n] += -(dz * r).sum() / C  # through μ (σ²'s own μ term sums to zero)
    if D is None:
        return Y.reshape(x.shape), None, None, None
    return Y.reshape(x.shape), dX.reshape(x.shape), dgamma, (None if rms_scaling else dbeta)


def relu_layer(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """keras.layers.ReLU, element by element: min(x, max_value) above the threshold,
    negative_slope·(x - threshold) below it. Returns (y, dy/dx)."""
    x = np.asarray(x, dtype=np.float64)
    y, d = np.zeros_like(x), np.zeros_like(x)
    for i, v in np.ndenumerate(x):
        if v > threshold:
            cap = max_value is not None and v >= max_value
            y[i], d[i] = (max_value, 0.0) if cap else (v, 1.0)
        else:
            y[i], d[i] = negative_slope * (v - threshold), negative_slope
    return y, d
