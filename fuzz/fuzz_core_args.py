"""atheris fuzzer of fusedlstm._core's argument checks.

Every input picks one _core function and builds its arguments from the fuzzer's
bytes: a valid call whose arguments are then mutated — dtypes (every NumPy kind,
byte-swapped, object, str), ranks, shapes (0, ±1, swapped, huge broadcast
views), layouts (Fortran, strided, reversed, misaligned by one byte,
read-only), token ids and labels out of range, masks of any integer type,
NaN/inf/huge values, flags, unknown strings, non-array objects. lstm_backward,
gru_backward and simple_rnn_backward get the cache of a training forward and
fuzzed upstream gradients; conv1d_backward fuzzed dy and options.

The only acceptable outcomes are a result or ValueError / TypeError /
MemoryError. Anything else is a finding: another exception (atheris reports it
with the input), a crash or a sanitizer report (the process dies), a hang
(libFuzzer's -timeout). Run it bounded with `.ci/fuzz SECONDS`, or directly:

    python fuzz/fuzz_core_args.py -max_total_time=60 [corpus_dir]
    python fuzz/fuzz_core_args.py crash-<sha1>          # replay one input
    python fuzz/fuzz_core_args.py --stats 20000         # outcome counts of random inputs

Sizes stay small (<= 4096 elements per real array) so an input runs in
microseconds; a "huge" dimension only ever appears in a zero-stride broadcast
view whose C-order copy would need >= 2^47 bytes, beyond any address space, so
the library must refuse it without touching memory.
"""

import sys
import warnings

import atheris
import numpy as np

from fusedlstm import _core

ALLOWED = (ValueError, TypeError, MemoryError)

DTYPES = [np.float32, np.float32, np.float32, np.float64, np.float16, np.longdouble, np.int8, np.int16, np.int32,
          np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, np.complex64, object, "<U3", ">f4", ">f8",
          ">i8", "V4"]
INT_DTYPES = [np.int32, np.int64, np.int8, np.int16, np.uint8, np.uint16, np.uint32, np.uint64, ">i4", np.bool_]
PRECISIONS = ["float32", "bfloat16", "bfloat16", "float16", "", None, 16]
ACTS = ["tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_k2", "relu", "linear"]
HUGE = [2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 40, 2 ** 47]
SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e38, -3e38, 1e-45, 1e-310, 65504.0]
REAL_LIMIT = 4096        # elements of an array that is really allocated
COPY_FLOOR = 2 ** 45     # elements of a broadcast view that is never copyable


class Gen:
    """Argument generator over one input's bytes (deterministic: replaying an input reproduces it)."""

    def __init__(self, data):
        self.f = atheris.FuzzedDataProvider(data)

    def int(self, lo, hi):
        return self.f.ConsumeIntInRange(lo, hi)

    def bool(self):
        return self.f.ConsumeBool()

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]

    def chance(self, k):
        """True with probability ~1/k (False once the input is exhausted)."""
        return self.int(0, k - 1) == k - 1

    # ---- values -------------------------------------------------------------
    def floats(self, n):
        raw = [self.f.ConsumeRegularFloat() for _ in range(min(n, 8))]
        vals = np.resize(np.array(raw or [0.0], np.float64), n)
        vals = np.tanh(vals) * self.pick([1.0, 1.0, 3.0, 1e-3])
        if self.chance(6) and n:
            vals[self.int(0, n - 1)] = self.pick(SPECIAL)
        return vals

    def values(self, shape, dtype):
        n = int(np.prod(shape, dtype=np.int64))
        dt = np.dtype(dtype)
        if dt.kind in "fc":
            with np.errstate(over="ignore", invalid="ignore"):
                return self.floats(n).astype(dt).reshape(shape)
        if dt.kind in "iu":
            hi = min(np.iinfo(dt).max, 64)
            lo = max(np.iinfo(dt).min, -3)
            a = np.array([self.int(lo, hi) for _ in range(min(n, 8))] or [0], np.int64)
            a = np.resize(a, n).astype(dt)
            if self.chance(8) and n:
                a[self.int(0, n - 1)] = self.pick([np.iinfo(dt).max, np.iinfo(dt).min])
            return a.reshape(shape)
        if dt.kind == "b":
            return (self.floats(n) > 0).reshape(shape)
        if dt.kind == "O":
            return np.array(self.floats(n), dtype=object).reshape(shape)
        if dt.kind == "U":
            return np.full(shape, "1.5", dtype=dt)
        return np.zeros(shape, dtype=dt)

    # ---- arrays -------------------------------------------------------------
    def shape_like(self, shape):
        shape = list(shape)
        if self.chance(5):
            k = self.int(0, 4)
            if k == 0 and shape:
                shape.pop(self.int(0, len(shape) - 1))        # rank - 1
            elif k == 1:
                shape.insert(self.int(0, len(shape)), self.int(0, 3))  # rank + 1
            elif k == 2 and shape:
                i = self.int(0, len(shape) - 1)
                shape[i] = max(0, shape[i] + self.pick([-1, 1, -shape[i]]))  # off by one, or 0
            elif k == 3 and len(shape) >= 2:
                shape[0], shape[-1] = shape[-1], shape[0]
            else:
                shape = []                                      # 0-d
        return tuple(shape)

    def layout(self, a):
        """Same values, another memory layout (or a view that is not C-contiguous/aligned/writeable)."""
        k = self.int(0, 9)
        if a.ndim == 0 or a.dtype.kind in "OUV" or k < 5:
            return a
        if k == 5:
            return np.asfortranarray(a)
        if k == 6:  # strided view
            wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
            wide[..., ::2] = a
            return wide[..., ::2]
        if k == 7:  # reversed
            return np.flip(np.flip(a, -1).copy(), -1)
        if k == 8:  # elements at an odd byte offset
            buf = bytearray(a.nbytes + 1)
            u = np.frombuffer(buf, a.dtype, a.size, offset=1).reshape(a.shape)
            u[...] = a
            return u
        a = a.copy()
        a.setflags(write=False)
        return a

    def huge_view(self, rank, dtype):
        """A zero-stride view with >= COPY_FLOOR elements: no copy of it can ever be made."""
        shape = [self.pick(HUGE + [1, 3, 2 ** 20]) for _ in range(rank)]
        n = 1
        for d in shape:
            n *= d
        if not COPY_FLOOR <= n < 2 ** 58:  # (2^58 keeps bytes below 2^63 for 16-byte dtypes)
            shape = [2 ** 47] if rank == 1 else [2 ** 24, 2 ** 23] + [1] * (rank - 2)
        return np.broadcast_to(np.zeros((), dtype), shape)

    def array(self, shape, dtype=np.float32, values=None):
        """Usually `shape`/`dtype` (the valid form), sometimes mutated in every way above."""
        # 0 (all an exhausted input yields) is the valid form
        k = self.int(0, 39)
        if k == 39:
            return self.pick([None, 0, 1.5, "x", [1.0, 2.0], [[1.0], [2.0, 3.0]], {"a": 1}, b"\x00"])
        if k == 38:
            return self.huge_view(max(1, len(shape)), dtype)
        if k >= 33:
            shape = self.shape_like(shape)
        if k in (30, 31, 32):
            dtype = self.pick(DTYPES)
        n = 1
        for d in shape:
            n *= d
        if n > REAL_LIMIT:
            shape = tuple(min(d, 4) for d in shape)
        if values is not None and k < 30:
            a = np.asarray(values).astype(dtype, copy=False).reshape(shape) if np.size(values) == n else \
                self.values(shape, dtype)
        else:
            a = self.values(shape, dtype)
        if self.bool():
            a = self.layout(a)
        return a


# ---------------------------------------------------------------------------
# One call per function
# ---------------------------------------------------------------------------

def dims(g):
    return g.int(1, 5), g.int(1, 6), g.int(1, 6), g.int(1, 5)


def call_lstm(g):
    B, T, I, H = dims(g)
    dt = g.pick([np.float32, np.float32, np.float64])
    ids = g.chance(3)
    if ids:
        idt = g.pick(INT_DTYPES)
        raw = [g.int(-2, I) for _ in range(min(B * T, 8))] or [0]
        x = g.array((B, T), idt, np.resize(np.array(raw), B * T).reshape(B, T))
    else:
        x = g.array((B, T, I), dt)
    args = [x, g.array((I, 4 * H), dt), g.array((H, 4 * H), dt),
            None if g.chance(3) else g.array((4 * H,), dt), g.array((B, H), dt), g.array((B, H), dt)]
    kw = {}
    if g.bool():
        kw["mask"] = g.array((B, T), g.pick(INT_DTYPES))
    if g.chance(3):
        kw["rec_mask"] = g.array((B, H), dt)
    for flag in ("go_backwards", "zero_output_for_mask", "return_sequences"):
        if g.bool():
            kw[flag] = g.bool()
    if g.chance(3):
        kw["activation"] = g.pick(ACTS + ["softmax", "", "TANH", "tanh\x00"])
    if g.chance(3):
        kw["recurrent_activation"] = g.pick(ACTS + ["hard_sigmoid_k3"])
    if g.chance(4):
        kw["onehot"] = g.pick(["auto", "never", "always", None])
    if g.chance(10):
        kw[g.pick(["training", "mask", "activation"])] = g.pick([None, 3, "yes", np.zeros(2)])
    kw["training"] = kw.get("training", g.bool())
    out = _core.lstm_forward(*args, **kw)
    cache = out[3]
    if cache is None:
        return
    y = out[0]
    bw = [g.array(y.shape, y.dtype) if not g.chance(5) else None,
          g.array((cache.B, cache.H), y.dtype), g.array((cache.B, cache.H), y.dtype)]
    n = g.int(0, 3)
    _core.lstm_backward(cache, *bw[:n], need_dx=g.bool())
    if g.chance(4):
        _core.lstm_backward(g.pick([None, y, 3, "cache"]), None)


def call_gru_or_simple_rnn(g):
    """gru_* or simple_rnn_*: as call_lstm, with their bias layouts ((2, 3H) or (3H,) for the GRU)."""
    cell = g.pick(["gru", "simple_rnn"])
    B, T, I, H = dims(g)
    G = (3 if cell == "gru" else 1) * H
    dt = g.pick([np.float32, np.float32, np.float64])
    reset_after = g.bool() if cell == "gru" else True
    if g.chance(3):
        raw = [g.int(-2, I) for _ in range(min(B * T, 8))] or [0]
        x = g.array((B, T), g.pick(INT_DTYPES), np.resize(np.array(raw), B * T).reshape(B, T))
    else:
        x = g.array((B, T, I), dt)
    b_shape = (2, G) if cell == "gru" and reset_after else (G,)
    if g.chance(6):
        b_shape = g.pick([(G,), (2, G), (2 * G,)])  # the other layout
    args = [x, g.array((I, G), dt), g.array((H, G), dt), None if g.chance(3) else g.array(b_shape, dt),
            g.array((B, H), dt)]
    kw = {}
    if cell == "gru":
        kw["reset_after"] = reset_after
        if g.chance(3):
            kw["recurrent_activation"] = g.pick(ACTS + ["hard_sigmoid_k3"])
    if g.bool():
        kw["mask"] = g.array((B, T), g.pick(INT_DTYPES))
    if g.chance(3):
        kw["rec_mask"] = g.array((B, H), dt)
    for flag in ("go_backwards", "zero_output_for_mask", "return_sequences"):
        if g.bool():
            kw[flag] = g.bool()
    if g.chance(3):
        kw["activation"] = g.pick(ACTS + ["softmax", "", "TANH"])
    if g.chance(4):
        kw["onehot"] = g.pick(["auto", "never", "always", None])
    if g.chance(10):
        kw[g.pick(["training", "mask", "reset_after"])] = g.pick([None, 3, "yes", np.zeros(2)])
    kw["training"] = kw.get("training", g.bool())
    y, hT, cache = getattr(_core, f"{cell}_forward")(*args, **kw)
    if cache is None:
        return
    bw = [g.array(y.shape, y.dtype) if not g.chance(5) else None, g.array((cache.B, cache.H), y.dtype)]
    out = {}
    if g.chance(4):
        out["db_out"] = g.array(b_shape, y.dtype)
        out["accumulate"] = g.bool()
    _core_backward = getattr(_core, f"{cell}_backward")
    _core_backward(cache, *bw[:g.int(0, 2)], need_dx=g.bool(), **out)
    if g.chance(4):
        _core_backward(g.pick([None, y, 3, "cache"]), None)


def call_conv1d(g):
    B, L, K = g.int(1, 4), g.int(1, 12), g.int(1, 5)
    groups = g.pick([1, 1, 2, 3])
    C, F = groups * g.int(1, 4), groups * g.int(1, 4)
    dt = g.pick([np.float32, np.float32, np.float64])
    kw = dict(strides=g.pick([1, 1, 2, 3]), padding=g.pick(["valid", "same", "causal"]),
              dilation_rate=g.pick([1, 1, 2]), groups=groups)
    if g.chance(5):
        kw[g.pick(list(kw))] = g.pick([0, -1, 2 ** 31, 2 ** 63, 1.5, None, "same", "SAME", "full", 7])
    x, W = g.array((B, L, C), dt), g.array((K, C // groups, F), dt)
    b = None if g.chance(3) else g.array((F,), dt)
    y = _core.conv1d_forward(x, W, b, **kw)
    out = {}
    if g.chance(4):
        out["dW_out"] = g.array(W.shape if hasattr(W, "shape") else (K, C // groups, F), y.dtype)
        out["accumulate"] = g.bool()
    _core.conv1d_backward(g.array(y.shape, y.dtype), x, W, use_bias=b is not None, need_dx=g.bool(), **kw, **out)


def call_dense(g):
    N, D, C = g.int(1, 6), g.int(1, 6), g.int(1, 6)
    dt = g.pick([np.float32, np.float64])
    if g.bool():
        raw = [g.int(-1, C) for _ in range(min(N, 8))] or [0]
        labels = g.array((N,), g.pick(INT_DTYPES), np.resize(np.array(raw), N))
    else:
        labels = g.array((N, C), dt)
    kw = {"from_logits": g.bool(), "backward": g.bool()}
    if g.chance(3):
        kw["precision"] = g.pick(PRECISIONS)
    if g.chance(4):
        kw["clip_eps"] = g.pick([0.0, 1e-7, 0.49, 0.5, -1e-7, float("nan"), float("inf"), 1e-300])
    _core.dense_softmax_xent(g.array((N, D), dt), g.array((D, C), dt), None if g.chance(3) else g.array((C,), dt),
                             labels, None if g.bool() else g.array((N,), dt), **kw)


def call_matmul(g):
    M, N, K = g.int(0, 6), g.int(0, 6), g.int(0, 6)
    ta, tb = g.bool(), g.bool()
    dt = g.pick([np.float32, np.float64])
    kw = {"trans_a": ta, "trans_b": tb}
    if g.bool():
        kw["out"] = g.array((M, N), dt)
        kw["accumulate"] = g.bool()
    elif g.chance(5):
        kw["accumulate"] = True
    if g.chance(3):
        kw["precision"] = g.pick(PRECISIONS)
    _core.matmul(g.array((K, M) if ta else (M, K), dt), g.array((N, K) if tb else (K, N), dt), **kw)


def call_gemm_bf16(g):
    # Sizes up to 40: past the 12x32 register tile and a 32-k pack chunk, odd K included.
    M, N, K = g.int(0, 40), g.int(0, 40), g.int(0, 40)
    ta, tb = g.bool(), g.bool()
    dt = g.pick([np.float32, np.float32, np.float64])
    kw = {"trans_a": ta, "trans_b": tb, "packed": g.bool()}
    if g.bool():
        kw["out"] = g.array((M, N), dt)
        kw["accumulate"] = g.bool()
    if g.chance(3):
        kw["level"] = g.pick([None, "portable", "avx512bf16", "amx", "", 3])
    a, b = g.array((K, M) if ta else (M, K), dt), g.array((N, K) if tb else (K, N), dt)
    if g.chance(3):  # the pack-once route: pack_b, then gemm_packed (a PackedB or anything else)
        level = g.pick([None, "float32", "portable", "avx512bf16", "amx", 3])
        pb = _core.pack_b(b, trans_b=tb, level=level) if not g.chance(8) else g.pick([b, None, "b"])
        kw = {k: v for k, v in kw.items() if k in ("out", "accumulate")}
        _core.gemm_packed(a, pb, trans_a=ta, **kw)
        return
    _core.gemm_bf16(a, b, **kw)


def scalar(g, normal):
    if g.chance(6):
        return g.pick([0.0, -1.0, float("nan"), float("inf"), 1e300, 2 ** 63, -2 ** 63, None, "0.1", True])
    return normal


STEP_STATE = {  # Keras 3 optimizer steps (issue 25): required state buffers, optional ones
    "adam_step": (("m", "v"), ("vhat",)), "nadam_step": (("m", "v"), ()), "adamax_step": (("m", "u"), ()),
    "adagrad_step": (("accumulator",), ()), "adadelta_step": (("accumulated_grad", "accumulated_delta_var"), ()),
    "lion_step": (("m",), ()), "ftrl_step": (("accumulator", "linear"), ()),
    "rmsprop_step": (("velocity",), ("momentum_buf", "average_grad")), "sgd_step": ((), ("u",)),
}
STEP_SCALARS = {
    "adam_step": dict(alpha=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "nadam_step": dict(lr=1e-3, u_t=0.45, u_t_1=0.46, u_product_t=0.45, u_product_t_1=0.2, beta_2_power=0.999),
    "adamax_step": dict(lr=1e-3, beta_1_power=0.9, beta_2=0.999),
    "adagrad_step": dict(lr=1e-3, epsilon=1e-7), "adadelta_step": dict(lr=1.0, rho=0.95),
    "lion_step": dict(lr=1e-4, beta_1=0.9, beta_2=0.99),
    "ftrl_step": dict(lr=1e-3, learning_rate_power=-0.5, l1_regularization_strength=0.01, beta=0.1),
    "rmsprop_step": dict(lr=1e-3, rho=0.9, momentum=0.9), "sgd_step": dict(lr=0.01, momentum=0.9, nesterov=True),
}


def call_optimizer_step(g):
    """One Keras 3 optimizer step with its common options (segments, decay, clipping,
    accumulation, EMA), any of them mutated."""
    n = g.int(0, 40)
    dt = g.pick([np.float32, np.float32, np.float64])
    name = g.pick(sorted(STEP_STATE))
    required, optional = STEP_STATE[name]
    w, grad = g.array((n,), dt), g.array((n,), dt)
    state = [g.array((n,), dt) for _ in required]
    state += [None if g.bool() else g.array((n,), dt) for _ in optional]
    if state and g.chance(8):
        state[0] = w  # aliasing buffers: allowed, must not crash
    kw = {k: scalar(g, v) for k, v in STEP_SCALARS[name].items()}
    if g.bool():
        cuts = sorted(g.int(0, n) for _ in range(g.int(0, 4)))
        seg = np.array([0] + cuts + [n], np.int64)
        if g.chance(4):
            seg[g.int(0, seg.size - 1)] += g.pick([-1, 1, 2 ** 40])
        kw["segments"] = g.array(seg.shape, g.pick(INT_DTYPES), seg)
        nvars = seg.size - 1
    else:
        nvars = 1
    if g.bool():
        kw["decay"] = scalar(g, 0.999)
        if g.bool():
            kw["decay_mask"] = g.array((nvars,), g.pick([np.bool_, np.bool_, np.int32, np.float32]))
    clip = g.int(0, 4)
    if clip:
        kw[["clipnorm", "global_clipnorm", "clipvalue", "clipnorm"][clip - 1]] = scalar(g, 0.5)
        if g.chance(6):
            kw["clipvalue"] = 1.0
    if g.chance(3):
        kw["gradient_accumulator"] = g.array((n,), dt)
        kw["accumulation_steps"] = scalar(g, g.int(-1, 4))
    if g.chance(3):
        kw["ema"] = g.array((n,), dt)
        kw["ema_momentum"] = scalar(g, 0.99)
        kw["ema_overwrite"] = g.bool()
    getattr(_core, name)(w, grad, *state, **kw)
    if g.chance(4):
        ema = g.array((n,), dt) if g.bool() else None
        _core.accumulate_step(w, grad, g.array((n,), dt), ema=ema, ema_momentum=scalar(g, 0.9),
                              ema_overwrite=g.bool())


def call_onehot(g):
    B, T, V = g.int(1, 4), g.int(1, 4), g.int(0, 6)
    dt = g.pick([np.float32, np.float64])
    base = np.zeros((B, T, V), dt)
    if V and g.bool():
        for b in range(B):
            for t in range(T):
                if g.bool():
                    base[b, t, g.int(0, V - 1)] = 1.0
    x = g.array((B, T, V), dt, base)
    _core.onehot_ids(x)


def call_misc(g):
    k = g.int(0, 2)
    if k == 0:
        _core.set_num_threads(scalar(g, g.int(-1, 4)))
    elif k == 1:
        assert _core.get_num_threads() >= 1
    else:
        info = _core.build_info()
        assert info["isa"] in info["isa_available"], info
        assert info["bf16_level"] in info["bf16_levels"], info


CALLS = [call_lstm, call_lstm, call_lstm, call_gru_or_simple_rnn, call_gru_or_simple_rnn, call_conv1d, call_dense,
         call_matmul, call_gemm_bf16, call_optimizer_step, call_optimizer_step, call_optimizer_step, call_onehot,
         call_misc]


def TestOneInput(data):
    g = Gen(data)
    fn = g.pick(CALLS)
    try:
        fn(g)
    except ALLOWED as exc:
        return f"{fn.__name__}: {type(exc).__name__}"
    return f"{fn.__name__}: result"


def stats(n):
    """`--stats N`: N random inputs without libFuzzer; prints how often each outcome occurs,
    to check that the generator reaches the kernels and not only the argument checks."""
    import collections
    import random

    rnd = random.Random(0)
    seen = collections.Counter(TestOneInput(rnd.randbytes(rnd.randint(0, 400))) for _ in range(n))
    for outcome, count in sorted(seen.items()):
        print(f"{count:8d}  {outcome}")


def main():
    # Casts of NaN to int and the like warn; only exceptions and crashes are findings.
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    # Coverage feedback from the argument builders steers the fuzzer towards new
    # argument shapes (the C++ module is not instrumented: see README.md).
    for obj in list(globals().values()):
        if callable(obj) and getattr(obj, "__module__", None) == __name__ and hasattr(obj, "__code__"):
            atheris.instrument_func(obj)
    for name, fn in vars(Gen).items():
        if hasattr(fn, "__code__"):
            atheris.instrument_func(fn)
    _core.set_num_threads(2)  # exercise the pool, not only the caller's thread
    if len(sys.argv) == 3 and sys.argv[1] == "--stats":
        return stats(int(sys.argv[2]))
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
