"""fusedlstm._core — the C++ kernels (private; use the public API in fusedlstm).

Conventions shared by every function here:

* Float arrays are float32 or float64; all float arrays of one call share one
  dtype (float32 for training, float64 for the tests). Integer token ids are
  int32 or int64. Non-contiguous or Fortran-order arrays are copied to C order.
* Shapes use B (batch), T (time), I (input features), H (units), V (vocabulary
  or one-hot width), N (rows), D (features), C (classes).
* Gate order along 4H is i, f, c, o (Keras 2, Keras 3 and PyTorch alike).
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
    'default_threads', 'compiler', 'cpu', 'buffer_cache_bytes'}."""

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
) -> Tuple[Optional[np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """BPTT through the forward that made `cache`.

    dW_out, dU_out, db_out: optional arrays (C-contiguous, writeable, the cache's
       dtype and the gradient's shape, three different arrays) that the weight
       gradients are written into instead of new arrays, and returned; with
       accumulate=True they are added to what the given arrays hold (a layer used
       twice in one step). db_out needs a forward with a bias.

    dy: dL/dy with y's shape ((B,T,H) or (B,H)), or None for zeros.
    dhT, dcT: dL/d(h_T), dL/d(c_T) (B,H) or None.
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
    """

def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    out: Optional[np.ndarray] = None,
    accumulate: bool = False,
) -> np.ndarray:
    """op(a)·op(b) on 2-D arrays with the library's GEMM; with out (C-contiguous,
    right shape and dtype) writes there, adding to it when accumulate."""

def adam_update(
    w: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, step: int, lr: float,
    beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
) -> None:
    """In place over flat 1-D float32 buffers of equal length (Keras 3 Adam, PyTorch
    backend order of operations); step is the 1-based iteration count."""

def sgd_update(
    w: np.ndarray, g: np.ndarray, u: Optional[np.ndarray], *, lr: float,
    momentum: float = 0.0, nesterov: bool = False,
) -> None:
    """u = μu - lr·g; w += u (nesterov: w += μu - lr·g); u may be None when momentum == 0."""

def rmsprop_update(
    w: np.ndarray, g: np.ndarray, s: np.ndarray, *, lr: float, rho: float = 0.9,
    epsilon: float = 1e-7,
) -> None:
    """s = ρs + (1-ρ)g²; w -= lr·g/sqrt(s + ε)."""
