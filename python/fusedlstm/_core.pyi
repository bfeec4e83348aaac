"""fusedlstm._core — the C++ kernels (private; use the public API in fusedlstm).

Conventions shared by every function here:

* Float arrays are float32 or float64; all float arrays of one call share one
  dtype (float32 for training, float64 for the tests). Integer token ids are
  int32 or int64. Non-contiguous or Fortran-order arrays are copied to C order.
* Shapes use B (batch), T (time), I (input features), H (units), V (vocabulary
  or one-hot width), N (rows), D (features), C (classes).
* Gate order along 4H is i, f, c, o (Keras 2, Keras 3 and PyTorch alike); along
  the GRU's 3H it is z, r, h (Keras's; PyTorch's nn.GRU stores r, z, n).
* Bad input raises ValueError (TypeError for a wrong type) naming the argument
  with the expected and the given shape/dtype, e.g.
  "lstm_forward: U must have shape (H, 4H) = (25, 100), got (25, 96)".
* The GIL is released while the kernels run.
"""

from typing import Optional, Tuple

import numpy as np

__version__: str

def build_info() -> dict:
    """{'version', 'isa' (in use), 'isa_available' (list, best last), 'threads',
    'default_threads', 'compiler', 'cpu', 'buffer_cache_bytes', 'bf16_level' (the
    bfloat16 GEMM level in use), 'bf16_levels' (list, best last: 'portable',
    'avx512bf16'), 'bf16_rule' (which products precision='bfloat16' computes in
    bfloat16)}. FUSEDLSTM_ISA=generic|avx2|avx512 and
    FUSEDLSTM_BF16=portable|avx512bf16 force a level (read at import; an unknown
    or unavailable one fails the import)."""

def clear_buffer_cache() -> int:
    """Free the large buffers (>= 256 KiB) the kernels keep for reuse between calls
    (a training step allocates the same ones every time; at most a quarter of the
    memory limit and 1 GiB are kept). Returns the bytes freed."""

def set_num_threads(n: int) -> None:
    """Threads the kernels may use (n >= 1). Results do not depend on it."""

def get_num_threads() -> int: ...

class LstmCache:
    """Opaque: what lstm_backward needs from one training-mode lstm_forward.
    Holds references to the forward's inputs; one backward per cache (a second
    backward on the same cache is allowed and gives the same result)."""

    B: int
    T: int
    H: int
    nbytes: int
    precision: str  # the forward's: "float32" or "bfloat16"

def onehot_ids(x: np.ndarray) -> Optional[np.ndarray]:
    """If every row x[b, t, :] of a (B,T,V) float array is all zeros or a single
    exact 1.0, return int32 ids (B,T) (the index of the 1.0, or -1 for an
    all-zero row); otherwise None. One pass, stops at the first non-one-hot row."""

def first_nonfinite(x: np.ndarray) -> int:
    """Flat index of the first NaN or ±Inf in x (a C-contiguous float32/float64
    array of any shape), or -1 when every value is finite. One vectorised pass."""

def lstm_forward(
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray],
    h0: np.ndarray,
    c0: np.ndarray,
    *,
    mask: Optional[np.ndarray] = None,
    rec_mask: Optional[np.ndarray] = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    return_sequences: bool = True,
    training: bool = False,
    onehot: str = "auto",
    precision: str = "float32",
    packed_U: Optional["PackedRecurrentKernel"] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[LstmCache]]:
    """LSTM over a whole sequence in one call.

    x: float (B,T,I) — dense input; W is the kernel (I,4H).
       int (B,T) — token ids in [-1, V); W is the (V,4H) lookup table whose row v
       is x_v·W (id -1 means an all-zero input: only the bias). Out-of-range ids
       raise ValueError naming the first offending position.
    U: (H,4H) recurrent kernel.  b: (4H,) bias or None.  h0, c0: (B,H).
    mask: (B,T) bool/uint8/int, nonzero = step is real (Keras semantics: a masked
       step keeps h and c; its output is the previous output — zeros before the
       first real step — or zeros when zero_output_for_mask).
    rec_mask: (B,H) recurrent-dropout mask multiplied onto h_{t-1} before ·U (Keras
       uses one mask for all steps of a call), or None.
    go_backwards: read x (and mask) from t = T-1 down to 0; outputs come in that
       processing order, as Keras returns them.
    activation / recurrent_activation: 'tanh', 'sigmoid', 'hard_sigmoid' (Keras 3,
       relu6(x+3)/6), 'hard_sigmoid_k2' (Keras 2, clip(0.2x+0.5,0,1)), 'relu', 'linear'.
    onehot: 'auto' — a dense float x whose rows are all one-hot/zero takes the
       row-lookup path (checked in C++ as part of the call); 'never' — dense GEMM.
    precision: 'float32', or 'bfloat16' (float32 arrays only, else TypeError;
       Keras's mixed_bfloat16): the matrix products x·W and h_{t-1}·U round their
       operands to bfloat16 and sum in float32, as matmul does under it (products
       below build_info()['bf16_rule'] stay float32); gates, cell state and the
       outputs stay float32. The token-id path stays exact: its x·W is a row
       lookup of W, not a product. The cache remembers the precision.

    Returns (y, h_T, c_T, cache): y is (B,T,H) if return_sequences else (B,H)
    (the last output); cache is an LstmCache when training else None (inference
    keeps nothing beyond the current step).
    """

def lstm_backward(
    cache: LstmCache,
    dy: Optional[np.ndarray],
    dhT: Optional[np.ndarray] = None,
    dcT: Optional[np.ndarray] = None,
    *,
    need_dx: bool = True,
    dW_out: Optional[np.ndarray] = None,
    dU_out: Optional[np.ndarray] = None,
    db_out: Optional[np.ndarray] = None,
    accumulate: bool = False,
    precision: Optional[str] = None,
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """BPTT through the forward that made `cache`.

    dW_out, dU_out, db_out: optional arrays (C-contiguous, writeable, the cache's
       dtype and the gradient's shape, three different arrays) that the weight
       gradients are written into instead of new arrays, and returned; with
       accumulate=True they are added to what the given arrays hold (a layer used
       twice in one step). db_out needs a forward with a bias.

    dy: dL/dy with y's shape ((B,T,H) or (B,H)), or None for zeros.
    dhT, dcT: dL/d(h_T), dL/d(c_T) (B,H) or None.
    precision: None (default) — the forward's (cache.precision); or 'float32' /
       'bfloat16' to choose for this backward. Under bfloat16 the products
       dZ·Uᵀ (per step), hᵀ·dZ (dU), xᵀ·dZ (dW) and dZ·Wᵀ (dx) round their
       operands to bfloat16 and sum in float32; the gradients are float32, and
       with accumulate=True are added in float32. The token-table gradient (ids)
       is an exact float32 scatter-add of dZ rows.
    Returns (dx, dh0, dc0, dW, dU, db):
      dx: (B,T,I) for dense input when need_dx, else None (always None for ids);
      dW: (I,4H) for dense input; (V,4H) for ids (Σ of dZ rows per id);
      dU: (H,4H); db: (4H,) or None when the forward had b=None.
    Weight gradients are one GEMM over all T.
    """

def dense_softmax_xent(
    x: np.ndarray,
    W: np.ndarray,
    b: Optional[np.ndarray],
    labels: np.ndarray,
    weights: Optional[np.ndarray] = None,
    *,
    from_logits: bool = False,
    clip_eps: float = 1e-7,
    backward: bool = True,
    precision: str = "float32",
) -> Tuple[float, np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Dense + softmax + cross-entropy, forward and backward in one call.

    x: (N,D); W: (D,C); b: (C,) or None.
    labels: int (N,) class ids in [0,C) (sparse) or float (N,C) target
       distributions (categorical).
    weights: (N,) per-row weight (sample weight × mask × 1/normaliser) or None (1).
    Loss per row: -Σ_c t_c log p_c with p = softmax(x·W + b). With
    from_logits=False this follows Keras 3's PyTorch backend: p is clipped to
    [clip_eps, 1 - clip_eps] before the log, and the gradient is zero through a
    clipped entry. With from_logits=True, log_softmax (no clipping).
    Returns (loss, probs, dx, dW, db): loss = Σ_n w_n·loss_n (a Python float,
    accumulated in double); probs (N,C); gradients of that loss (None when
    backward=False; db None when b is None).
    precision="bfloat16" (float32 arrays only) computes the three products
    x·W, dz·Wᵀ, xᵀ·dz as matmul does under it; softmax, loss and db stay float32.
    """

def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    out: Optional[np.ndarray] = None,
    accumulate: bool = False,
    precision: str = "float32",
) -> np.ndarray:
    """op(a)·op(b) on 2-D arrays with the library's GEMM; with out (C-contiguous,
    right shape and dtype) writes there, adding to it when accumulate.

    precision="bfloat16" (float32 arrays only; Keras's mixed_bfloat16): both
    operands rounded to bfloat16 (nearest-even, NaN kept, subnormals read as 0),
    products summed in float32, on the bfloat16 level in use -- for products
    with K >= 16 and M·N·K >= 32768 (build_info()['bf16_rule']); smaller ones,
    where bfloat16 is not faster, are computed exactly as with "float32"."""

def gemm_bf16(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    out: Optional[np.ndarray] = None,
    accumulate: bool = False,
    level: Optional[str] = None,
    packed: bool = False,
) -> np.ndarray:
    """op(a)·op(b) of float32 arrays on one bfloat16 GEMM level (tests, benchmarks):
    `level` names one of build_info()['bf16_levels'] (None: the one in use), and
    every product goes through it whatever its size (no size rule). packed=True
    packs op(b) first and multiplies the packed copy (pack_b + gemm_packed in one
    call). out/accumulate as for matmul."""

class PackedB:
    """op(b) packed by pack_b for one level's gemm_packed (immutable; may be shared
    by concurrent products)."""

    K: int
    N: int
    level: str
    nbytes: int

def pack_b(b: np.ndarray, *, trans_b: bool = False, level: Optional[str] = None) -> PackedB:
    """op(b) (float32, (K,N), or (N,K) with trans_b) packed once for gemm_packed, in the
    layout of `level`: "float32" or one of build_info()['bf16_levels'] (None: the
    bfloat16 level in use; a bfloat16 level rounds b to bfloat16 as it packs). The
    route of a recurrent kernel's U, packed once per sequence (tests, benchmarks)."""

def gemm_packed(
    a: np.ndarray,
    b: PackedB,
    *,
    trans_a: bool = False,
    out: Optional[np.ndarray] = None,
    accumulate: bool = False,
) -> np.ndarray:
    """op(a)·B (a float32 (M,K), or (K,M) with trans_a) for a PackedB on the level it was
    packed for; out/accumulate as for matmul."""

# ---- optimizers (issue 25): Keras 3.15.1 steps --------------------------------
# One call = one Keras `Optimizer.apply` on the PyTorch backend, in place over flat
# 1-D buffers of one float dtype (float32 or float64) and equal length n (w, g and
# every state buffer; g is only read). python/fusedlstm/optimizer_steps.py computes
# the per-step scalars and makes these calls (FlatStep).
#
# Every *_step takes these keyword arguments besides its own:
#   segments: None | int array (nvars + 1,) of variable offsets, 0 = segments[0] <= ...
#       <= segments[-1] = n: variable k is w[segments[k]:segments[k+1]]. clipnorm and
#       decay_mask are per variable; None: one variable.
#   decay: None | the weight-decay factor 1 - weight_decay·lr formed in float32 (Keras's
#       learning rate is a float32 variable); w *= decay before the rule.
#   decay_mask: None | bool (nvars,): the variables that decay (Keras's
#       exclude_from_weight_decay leaves False); needs decay.
#   clipnorm, global_clipnorm, clipvalue: None | a positive float; at most one.
#   gradient_accumulator: None | buffer (n,): this is a gradient-accumulation update
#       step: g ← (g + acc)/accumulation_steps, and acc = 0 after.
#   accumulation_steps: int >= 1 with gradient_accumulator (else 0).
#   ema: None | buffer (n,) of the moving average, updated after the rule:
#       ema = m·ema + (1-m)·w with m = ema_momentum, which the caller gives as Keras
#       forms it for the step: float32(ema_momentum)·(iterations != 0) in the dtype.
#   ema_overwrite: then w = ema (Keras: (iterations + 1) % ema_overwrite_frequency == 0).
# "t" below is Keras's local_step = optimizer.iterations + 1 (with gradient
# accumulation, optimizer.iterations = raw apply count // accumulation_steps), and
# "in the dtype" means computed with NumPy scalars of the buffers' dtype.

def adam_step(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, vhat: Optional[np.ndarray] = None, *,
              alpha: float, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
              **common) -> None:
    """Adam / AdamW (AdamW: pass decay); amsgrad when vhat is given.
    alpha = lr·sqrt(1 - β2^t)/(1 - β1^t) in the dtype (optimizer_steps.adam_alpha)."""

def nadam_step(w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, lr: float, u_t: float,
               u_t_1: float, u_product_t: float, u_product_t_1: float, beta_2_power: float, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-7, **common) -> None:
    """Nadam. In the dtype (optimizer_steps.nadam_scalars): u_t = β1·(1 - 0.5·0.96^t),
    u_t_1 the same at t+1, u_product_t = Π·u_t (Π: the product stored from the previous
    step, 1 at first; the caller stores u_product_t after the call), u_product_t_1 =
    u_product_t·u_t_1, beta_2_power = β2^t."""

def adamax_step(w: np.ndarray, g: np.ndarray, m: np.ndarray, u: np.ndarray, *, lr: float, beta_1_power: float,
                beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, **common) -> None:
    """Adamax; beta_1_power = β1^t in the dtype."""

def adagrad_step(w: np.ndarray, g: np.ndarray, accumulator: np.ndarray, *, lr: float, epsilon: float = 1e-7,
                 **common) -> None:
    """Adagrad (the accumulator starts at initial_accumulator_value, 0.1 in Keras)."""

def adadelta_step(w: np.ndarray, g: np.ndarray, accumulated_grad: np.ndarray, accumulated_delta_var: np.ndarray,
                  *, lr: float, rho: float = 0.95, epsilon: float = 1e-7, **common) -> None:
    """Adadelta."""

def lion_step(w: np.ndarray, g: np.ndarray, m: np.ndarray, *, lr: float, beta_1: float = 0.9, beta_2: float = 0.99,
              **common) -> None:
    """Lion (beta_1 in (0, 1])."""

def ftrl_step(w: np.ndarray, g: np.ndarray, accumulator: np.ndarray, linear: np.ndarray, *, lr: float,
              learning_rate_power: float = -0.5, l1_regularization_strength: float = 0.0,
              l2_regularization_strength: float = 0.0, l2_shrinkage_regularization_strength: float = 0.0,
              beta: float = 0.0, **common) -> None:
    """Ftrl (the accumulator starts at initial_accumulator_value, 0.1 in Keras); the
    hyperparameters are the user's; l2 + β/(2·lr) is formed inside, as Keras does."""

def rmsprop_step(w: np.ndarray, g: np.ndarray, velocity: np.ndarray, momentum_buf: Optional[np.ndarray] = None,
                 average_grad: Optional[np.ndarray] = None, *, lr: float, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, **common) -> None:
    """RMSprop; momentum_buf is required exactly when momentum > 0; centered when
    average_grad is given."""

def sgd_step(w: np.ndarray, g: np.ndarray, u: Optional[np.ndarray] = None, *, lr: float, momentum: float = 0.0,
             nesterov: bool = False, **common) -> None:
    """SGD (weight_decay through decay); u is required when momentum != 0."""

def accumulate_step(w: np.ndarray, g: np.ndarray, gradient_accumulator: np.ndarray, *,
                    ema: Optional[np.ndarray] = None, ema_momentum: float = 0.0, ema_overwrite: bool = False) -> None:
    """A gradient-accumulation step that does not update: acc += g; then the EMA part
    (Keras updates the average on these steps too)."""

# ---------------------------------------------------------------------------
# GRU and SimpleRNN: the same sequence driver as lstm_forward/lstm_backward
# (lookup path for ids and one-hot x, masks, go_backwards, return_sequences,
# rec_mask, threads), with the cell of Keras 3's GRUCell / SimpleRNNCell.
# ---------------------------------------------------------------------------

class GruCache:
    """Opaque: what gru_backward needs from one training-mode gru_forward (holds
    references to the forward's W and U; a backward may run on it more than once)."""

    B: int
    T: int
    H: int
    nbytes: int
    precision: str  # the forward's: "float32" or "bfloat16"

class SimpleRnnCache:
    """Opaque: what simple_rnn_backward needs from one training-mode simple_rnn_forward."""

    B: int
    T: int
    H: int
    nbytes: int
    precision: str  # the forward's: "float32" or "bfloat16"

def gru_forward(
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray],
    h0: np.ndarray,
    *,
    mask: Optional[np.ndarray] = None,
    rec_mask: Optional[np.ndarray] = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    reset_after: bool = True,
    return_sequences: bool = True,
    training: bool = False,
    onehot: str = "auto",
    precision: str = "float32",
    packed_U: Optional["PackedRecurrentKernel"] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[GruCache]]:
    """GRU over a whole sequence in one call (Keras 3 GRU semantics and weight layout).

    x: float (B,T,I) with W the kernel (I,3H); or int (B,T) token ids in [-1, V)
       with W the (V,3H) lookup table (as lstm_forward).
    U: (H,3H) recurrent kernel. Gate order along 3H: z (update), r (reset), h (candidate).
    b: reset_after=True: (2,3H), row 0 the input bias, row 1 the recurrent bias;
       reset_after=False: (3H,); or None (use_bias=False).
    h0: (B,H). mask, go_backwards, zero_output_for_mask, return_sequences, onehot:
       as lstm_forward.
    rec_mask: (B,H) multiplied onto h_{t-1} before it meets U (for z, r and the
       candidate alike: one mask shared by the three gates, where Keras with
       recurrent_dropout draws one per gate); h_{t-1} itself enters the final mix.
    activation / recurrent_activation, precision: as lstm_forward.

    With a = h_{t-1} ⊙ rec_mask and x·W + b_in = (x_z, x_r, x_h):
      reset_after=True:  (r_z, r_r, r_h) = a·U + b_rec; z = ra(x_z + r_z);
                         r = ra(x_r + r_r); hh = act(x_h + r ⊙ r_h)
      reset_after=False: z = ra(x_z + a·U_z); r = ra(x_r + a·U_r);
                         hh = act(x_h + (r ⊙ a)·U_h)
      h_t = z ⊙ h_{t-1} + (1 - z) ⊙ hh

    Returns (y, h_T, cache): y (B,T,H) or (B,H); cache a GruCache when training.
    """

def gru_backward(
    cache: GruCache,
    dy: Optional[np.ndarray],
    dhT: Optional[np.ndarray] = None,
    *,
    need_dx: bool = True,
    dW_out: Optional[np.ndarray] = None,
    dU_out: Optional[np.ndarray] = None,
    db_out: Optional[np.ndarray] = None,
    accumulate: bool = False,
    precision: Optional[str] = None,
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """BPTT through the forward that made `cache`: (dx, dh0, dW, dU, db).

    dy: dL/dy with y's shape, or None; dhT: (B,H) or None.
    dx: (B,T,I) for dense x when need_dx, else None (always None for ids).
    dW: like W; dU: (H,3H); db: b's shape ((2,3H) with reset_after: input and
    recurrent bias gradients), or None without a bias.
    dW_out, dU_out, db_out, accumulate, precision: as lstm_backward (db_out has b's shape).
    """

def simple_rnn_forward(
    x: np.ndarray,
    W: np.ndarray,
    U: np.ndarray,
    b: Optional[np.ndarray],
    h0: np.ndarray,
    *,
    mask: Optional[np.ndarray] = None,
    rec_mask: Optional[np.ndarray] = None,
    go_backwards: bool = False,
    zero_output_for_mask: bool = False,
    activation: str = "tanh",
    return_sequences: bool = True,
    training: bool = False,
    onehot: str = "auto",
    precision: str = "float32",
    packed_U: Optional["PackedRecurrentKernel"] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[SimpleRnnCache]]:
    """SimpleRNN over a whole sequence (Keras 3): h_t = act(x_t·W + b + (h_{t-1} ⊙ rec_mask)·U).

    x: float (B,T,I) with W (I,H), or int ids (B,T) with W the (V,H) table.
    U: (H,H); b: (H,) or None; h0: (B,H). Other arguments as gru_forward (there
    is no recurrent_activation; precision as lstm_forward). Returns (y, h_T, cache).
    """

def simple_rnn_backward(
    cache: SimpleRnnCache,
    dy: Optional[np.ndarray],
    dhT: Optional[np.ndarray] = None,
    *,
    need_dx: bool = True,
    dW_out: Optional[np.ndarray] = None,
    dU_out: Optional[np.ndarray] = None,
    db_out: Optional[np.ndarray] = None,
    accumulate: bool = False,
    precision: Optional[str] = None,
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """BPTT through the forward that made `cache`: (dx, dh0, dW, dU, db), as gru_backward."""

# ---------------------------------------------------------------------------
# Conv1D (channels_last), im2col + the library's GEMM
# ---------------------------------------------------------------------------

def conv1d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: Optional[np.ndarray],
    *,
    strides: int = 1,
    padding: str = "valid",
    dilation_rate: int = 1,
    groups: int = 1,
) -> np.ndarray:
    """Conv1D (Keras 3 semantics): y (B, L_out, filters).

    x: float (B, L, C). W: (kernel_size, C/groups, filters), Keras's kernel layout.
    b: (filters,) or None.
      y[b, t, f] = b[f] + Σ_{k, c} xp[b, t·strides + k·dilation_rate, g·C/groups + c]·W[k, c, f]
    with g = f // (filters/groups) and xp = x zero-padded on the time axis:
    padding 'valid' (none), 'causal' (dilation_rate·(kernel_size-1) steps on the
    left), 'same' (total (ceil(L/strides) - 1)·strides + span - L with span =
    dilation_rate·(kernel_size-1) + 1, at least 0, the odd step on the right, as
    Keras's torch backend splits it). L_out = (L + padding - span) // strides + 1;
    an input shorter than that raises ValueError. groups must divide C and filters.
    Lower-case padding names only (the layer normalises Keras's case-insensitive ones).
    """

def conv1d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    W: np.ndarray,
    *,
    use_bias: bool = True,
    strides: int = 1,
    padding: str = "valid",
    dilation_rate: int = 1,
    groups: int = 1,
    need_dx: bool = True,
    dW_out: Optional[np.ndarray] = None,
    db_out: Optional[np.ndarray] = None,
    accumulate: bool = False,
) -> Tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """Gradients of conv1d_forward(x, W, b, ...) given dy = dL/dy (B, L_out, filters): (dx, dW, db).

    Stateless: x and W are the forward's (nothing is cached). dx: (B, L, C), or
    None when need_dx is False; dW: (kernel_size, C/groups, filters); db:
    (filters,), None when use_bias is False. dW_out, db_out, accumulate: as
    lstm_backward's out= arrays.
    """


# ---- inference: the recurrent kernel packed once (issue #23) ---------------------------------

class PackedRecurrentKernel:
    """Opaque: U packed as the forward kernel packs it on every call; pass it as packed_U=
    to lstm_/gru_/simple_rnn_forward to skip that packing. It is a copy: it does not
    follow later changes of U (the layers key it on fusedlstm.variables.write_version)."""
    H: int
    nbytes: int
    cell: str   # "lstm", "gru" or "simple_rnn"
    dtype: str  # "float32" or "float64"
    precision: str  # what it was packed for, with batch
    batch: int

def recurrent_schedule(cell: str, B: int, T: int, H: int, threads: int, *, training: bool = False,
                       rec_mask: bool = False) -> dict:
    """How a float32 <cell>_forward of this shape shares its time loop among `threads`
    (inference unless training=True; rec_mask: a recurrent-dropout mask is given):
    {"kind": "units", "parts": P, "bounds": [u0, ..., H]} — thread j owns units
    [bounds[j], bounds[j+1]) with all their gate columns, one join per step (inference,
    LSTM and SimpleRNN, large steps with too few rows per thread for row blocks);
    {"kind": "rows", "parts": P, "bounds": [0, ..., B]} — each thread runs the whole
    loop on its batch rows; {"kind": "gemm", "parts": 1, "bounds": []} — each step's
    product splits its columns. Results never depend on it (same bits at any thread count)."""
    ...

def pack_recurrent_kernel(U: np.ndarray, cell: str, *, reset_after: bool = True, precision: str = "float32",
                          batch: int = 1) -> PackedRecurrentKernel:
    """U (H, gH) of `cell` ("lstm" g=4, "gru" g=3, "simple_rnn" g=1) packed for the forward's
    products (GRU: split as reset_after says), as a forward at `precision` with `batch` rows
    packs it (the bfloat16 level is chosen per product shape: precision.h). A forward given
    packed_U= checks that it was packed for its cell, float type, H and reset_after
    (ValueError/TypeError otherwise); it uses it when its own precision and batch choose the
    same level for every product with U (always at float32), else packs U itself, and
    returns the same numbers, bitwise, as without it."""
    ...


# ---- inference: a stateful model's step in one call (issue #23) -------------------------------

class StreamKernel:
    """A stateful model's step as one call, for fusedlstm.models.Stream (csrc/stream.h).

    Built in plan order: add_recurrent for each recurrent layer (the first reads token ids
    through its (V, gH) table W when `ids`, else dense (B, T, I) input), then add_dense for
    each Dense head. It keeps references to the arrays it was given (not copies) and
    reads `write_counter` ([n], fusedlstm.variables' write counter): once n changes, step
    returns None until the stream is rebuilt.

    step(x) returns the last layer's or head's output, (B, T, N) or (B, N), a new array,
    making the layers' own kernel calls (lstm_/gru_/simple_rnn_forward with the given
    packings, matmul, the bias added in its own pass), so the numbers are the layers'
    bitwise except a softmax head, which is the kernels' row softmax (a few ulp from
    NumPy's). The final states are written into the arrays of each layer's `states`
    attribute, in place. It returns None, having changed nothing, when the weights were
    written, when x is not a C-order ndarray of the expected kind (int32/int64 ids in
    [0, V) of shape (batch, T), or finite floats of the stream's dtype (batch, T, I)), or
    when a layer's states are not distinct, writeable, C-order (batch, H) arrays of the
    stream's dtype: the caller then runs its own path, whose checks raise the errors.
    The GIL stays held during a step."""
    threads: int  # kernel threads a step may use; 0 (default): get_num_threads()
    current: bool  # False once a weight was written since the weights were read
    dtype: str
    batch: int

    def __init__(self, batch: int, dtype: str, ids: bool, input_dim: int, write_counter: list, *,
                 mask_zero: bool = False) -> None:
        """input_dim: V (table rows) for ids, else I. mask_zero: id 0 masks its step."""
    def set_embedding(self, E: np.ndarray) -> None:
        """For ids: the first layer reads the rows E[ids] (E (V, D)) through its own kernel W (D, gH)
        instead of a (V, gH) table (as predict_on_batch does when the table is too large to keep)."""
    def add_recurrent(self, layer: object, cell: str, W: np.ndarray, U: np.ndarray, b: Optional[np.ndarray],
                      packed_U: Optional[PackedRecurrentKernel], *, activation: str = "tanh",
                      recurrent_activation: str = "sigmoid", reset_after: bool = True,
                      return_sequences: bool = True, go_backwards: bool = False,
                      zero_output_for_mask: bool = False, precision: str = "float32") -> None:
        """A recurrent layer (its states are read from and written to layer.states). W: (I, gH),
        or the (V, gH) table for the first layer of an ids stream; U (H, gH); b (gH,), GRU with
        reset_after (2, 3H), or None. Options as in lstm_forward."""
    def add_dense(self, W: np.ndarray, b: Optional[np.ndarray], *, activation: str = "linear",
                  precision: str = "float32") -> None:
        """A Dense head after the recurrent layers: activation(x·W + b), activation 'linear',
        'relu' or 'softmax' (any other: apply it to a linear head's output yourself)."""
    def step(self, x: np.ndarray) -> Optional[np.ndarray]: ...
