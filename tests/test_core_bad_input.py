"""Bad input to every _core function raises a clear exception naming the argument.

Table-driven: each case takes a valid call, replaces one argument, and states
the exception and a regular expression the message must match (the argument's
name as a whole word). Wrong dtypes are TypeError; wrong shapes and values are
ValueError (_core.pyi). Also here: layouts that must *work* (strided and
Fortran-order arrays give the results of C-order copies), empty sizes, and a
request too large for the machine (MemoryError stating the bytes).
"""

import numpy as np
import pytest

from fusedlstm import _core

B, T, I, H, V = 3, 4, 5, 6, 10
G = 4 * H
N, D, C = 4, 5, 3
F32 = np.float32


def _r(*shape, dtype=F32):
    return np.random.default_rng(sum(shape) + 1).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------
# Valid calls: positional argument names and keyword options per function
# ---------------------------------------------------------------------------

def lstm_forward_call():
    return dict(x=_r(B, T, I), W=_r(I, G), U=_r(H, G), b=_r(G), h0=_r(B, H), c0=_r(B, H)), {}


def lstm_forward_ids_call():
    ids = np.arange(B * T).reshape(B, T) % V - 1
    return dict(x=ids, W=_r(V, G), U=_r(H, G), b=_r(G), h0=_r(B, H), c0=_r(B, H)), {}


def lstm_backward_call(return_sequences=True):
    args, _ = lstm_forward_call()
    y, _, _, cache = _core.lstm_forward(*args.values(), training=True,
                                        return_sequences=return_sequences)
    return dict(cache=cache, dy=np.ones_like(y), dhT=_r(B, H), dcT=_r(B, H)), {}


def dense_call():
    return dict(x=_r(N, D), W=_r(D, C), b=_r(C), labels=np.array([0, 2, 1, 2]), weights=_r(N)), {}


def matmul_call():
    return dict(a=_r(3, 4), b=_r(4, 2)), {}


def gemm_bf16_call():
    return dict(a=_r(3, 4), b=_r(4, 2)), {}


def pack_b_call():
    return dict(b=_r(4, 2)), {}


def gemm_packed_call():
    return dict(a=_r(3, 4), b=_core.pack_b(_r(4, 2))), {}


def adam_call():
    return dict(w=_r(10), g=_r(10), m=np.zeros(10, F32), v=np.zeros(10, F32)), dict(alpha=0.01)


def sgd_call():
    return dict(w=_r(10), g=_r(10), u=np.zeros(10, F32)), dict(lr=0.1, momentum=0.9, nesterov=True)


def rmsprop_call():
    return dict(w=_r(10), g=_r(10), velocity=np.zeros(10, F32)), dict(lr=0.01)


def finite_call():
    return dict(x=_r(3, 4)), {}


def onehot_call():
    return dict(x=np.eye(V, dtype=F32)[np.arange(B * T).reshape(B, T) % V]), {}


CALLS = {
    "lstm_forward": (_core.lstm_forward, lstm_forward_call),
    "lstm_forward[ids]": (_core.lstm_forward, lstm_forward_ids_call),
    "lstm_backward": (_core.lstm_backward, lstm_backward_call),
    "dense_softmax_xent": (_core.dense_softmax_xent, dense_call),
    "matmul": (_core.matmul, matmul_call),
    "gemm_bf16": (_core.gemm_bf16, gemm_bf16_call),
    "pack_b": (_core.pack_b, pack_b_call),
    "gemm_packed": (_core.gemm_packed, gemm_packed_call),
    "adam_step": (_core.adam_step, adam_call),
    "sgd_step": (_core.sgd_step, sgd_call),
    "rmsprop_step": (_core.rmsprop_step, rmsprop_call),
    "onehot_ids": (_core.onehot_ids, onehot_call),
    "first_nonfinite": (_core.first_nonfinite, finite_call),
}

KW_ONLY = {"mask", "rec_mask", "go_backwards", "zero_output_for_mask", "activation",
           "recurrent_activation", "return_sequences", "training", "onehot", "need_dx",
           "from_logits", "clip_eps", "backward", "trans_a", "trans_b", "out", "accumulate",
           "dW_out", "dU_out", "db_out", "precision", "level", "packed",
           "alpha", "lr", "beta_1", "beta_2", "epsilon", "momentum", "nesterov", "rho"}


def call(fn_key, **changes):
    fn, make = CALLS[fn_key]
    args, kwargs = make()
    for name, change in changes.items():
        value = change(args.get(name, kwargs.get(name))) if callable(change) else change
        (kwargs if name in KW_ONLY else args)[name] = value
    return fn(*args.values(), **kwargs)


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

OBJ = lambda a: a.astype(object)  # noqa: E731
STR = lambda a: a.astype(str)  # noqa: E731
F64 = lambda a: a.astype(np.float64)  # noqa: E731
F16 = lambda a: a.astype(np.float16)  # noqa: E731
I32 = lambda a: a.astype(np.int32)  # noqa: E731
C64 = lambda a: a.astype(np.complex64)  # noqa: E731


def shp(*shape, dtype=F32):
    return lambda _: _r(*shape, dtype=dtype) if shape else np.array(1.0, dtype)


def bad(fn_key, arg, change, exc, what, name=None, pattern=None):
    """One case: fn_key's `arg` replaced via `change` must raise `exc` naming the argument.

    The message must say what is wrong *with* the argument: "<name> must ...",
    "<name> is float64 but ...", "<name>[1, 0] = 10 is not ..." (a bare mention,
    as in a dump of the whole signature, does not count). `pattern` overrides.
    """
    name = name or arg
    pattern = pattern or rf"\b({name})\b(\[[^\]]*\] = \S+)? (must|is)\b"
    return pytest.param(fn_key, arg, change, exc, pattern, id=f"{fn_key}-{arg}-{what}")


TYPE = TypeError
VAL = ValueError

CASES = [
    # ---- lstm_forward, dense x ----
    bad("lstm_forward", "x", shp(I), VAL, "rank1"),
    bad("lstm_forward", "x", shp(B, T, I, 1), VAL, "rank4"),
    bad("lstm_forward", "x", shp(B, T), (TYPE, VAL), "float-rank2"),
    bad("lstm_forward", "x", shp(B, T, I + 1), VAL, "I-mismatch", name="x|W"),
    bad("lstm_forward", "x", F64, TYPE, "float64-mixed", name="x|W"),
    bad("lstm_forward", "x", F16, TYPE, "float16"),
    bad("lstm_forward", "x", C64, TYPE, "complex"),
    bad("lstm_forward", "x", OBJ, TYPE, "object"),
    bad("lstm_forward", "x", STR, TYPE, "str"),
    bad("lstm_forward", "x", None, TYPE, "None"),
    bad("lstm_forward", "x", lambda a: a.astype(np.int64), (TYPE, VAL), "int-rank3"),
    bad("lstm_forward", "W", shp(I + 1, G), VAL, "rows", name="W|x"),
    bad("lstm_forward", "W", shp(I, G + 4), VAL, "cols"),
    bad("lstm_forward", "W", shp(G), VAL, "rank1"),
    bad("lstm_forward", "W", shp(1, I, G), VAL, "rank3"),
    bad("lstm_forward", "W", F64, TYPE, "float64-mixed"),
    bad("lstm_forward", "W", I32, TYPE, "int"),
    bad("lstm_forward", "W", OBJ, TYPE, "object"),
    bad("lstm_forward", "W", None, TYPE, "None"),
    bad("lstm_forward", "U", shp(H, G - 4), VAL, "cols"),
    bad("lstm_forward", "U", shp(H + 1, G), VAL, "rows"),
    bad("lstm_forward", "U", shp(H, H, 4), VAL, "rank3"),
    bad("lstm_forward", "U", shp(0, 0), VAL, "H=0", pattern=r"\bH\b.*\bU\.shape\b"),
    bad("lstm_forward", "x", shp(0, T, I), VAL, "B=0", pattern=r"\bB\b.*\bx\.shape\b"),
    bad("lstm_forward", "x", shp(B, 0, I), VAL, "T=0", pattern=r"\bT\b.*\bx\.shape\b"),
    bad("lstm_forward", "x", shp(B, T, 0), VAL, "I=0", pattern=r"\b(I|x|W)\b"),
    bad("lstm_forward", "U", F64, TYPE, "float64-mixed"),
    bad("lstm_forward", "U", STR, TYPE, "str"),
    bad("lstm_forward", "b", shp(G + 1), VAL, "length"),
    bad("lstm_forward", "b", shp(1, G), VAL, "rank2"),
    bad("lstm_forward", "b", F64, TYPE, "float64-mixed"),
    bad("lstm_forward", "b", I32, TYPE, "int"),
    bad("lstm_forward", "b", OBJ, TYPE, "object"),
    bad("lstm_forward", "h0", shp(B + 1, H), VAL, "batch"),
    bad("lstm_forward", "h0", shp(B, H + 1), VAL, "units"),
    bad("lstm_forward", "h0", shp(H), VAL, "rank1"),
    bad("lstm_forward", "h0", F64, TYPE, "float64-mixed"),
    bad("lstm_forward", "h0", None, TYPE, "None"),
    bad("lstm_forward", "c0", shp(B, H - 1), VAL, "units"),
    bad("lstm_forward", "c0", shp(1, B, H), VAL, "rank3"),
    bad("lstm_forward", "c0", F64, TYPE, "float64-mixed"),
    bad("lstm_forward", "c0", OBJ, TYPE, "object"),
    bad("lstm_forward", "mask", lambda _: np.ones((B, T + 1), bool), VAL, "time"),
    bad("lstm_forward", "mask", lambda _: np.ones((B + 1, T), bool), VAL, "batch"),
    bad("lstm_forward", "mask", lambda _: np.ones((B, T, 1), bool), VAL, "rank3"),
    bad("lstm_forward", "mask", lambda _: np.ones((B, T), F32), TYPE, "float"),
    bad("lstm_forward", "mask", lambda _: np.ones((B, T), object), TYPE, "object"),
    bad("lstm_forward", "mask", lambda _: np.full((B, T), "1"), TYPE, "str"),
    bad("lstm_forward", "rec_mask", shp(B, H + 1), VAL, "units"),
    bad("lstm_forward", "rec_mask", shp(H), VAL, "rank1"),
    bad("lstm_forward", "rec_mask", shp(B, H, dtype=np.float64), TYPE, "float64-mixed"),
    bad("lstm_forward", "rec_mask", lambda _: np.ones((B, H), bool), TYPE, "bool"),
    bad("lstm_forward", "activation", "softmax", VAL, "unknown"),
    bad("lstm_forward", "activation", "", VAL, "empty"),
    bad("lstm_forward", "recurrent_activation", "hard_sigmoid_k3", VAL, "unknown"),
    bad("lstm_forward", "onehot", "sometimes", VAL, "unknown"),
    # ---- lstm_forward, token ids ----
    bad("lstm_forward[ids]", "x", lambda a: np.where(a == 3, V, a), VAL, "id=V"),
    bad("lstm_forward[ids]", "x", lambda a: np.where(a == 3, -2, a), VAL, "id=-2"),
    bad("lstm_forward[ids]", "x", lambda a: np.where(a == 3, 2 ** 40, a), VAL, "id=2^40"),
    bad("lstm_forward[ids]", "x", lambda a: a.astype(np.uint64) + np.uint64(V + 5), VAL, "uint-id>V"),
    bad("lstm_forward[ids]", "x", lambda a: a[:, :, None], (TYPE, VAL), "int-rank3"),
    bad("lstm_forward[ids]", "W", shp(V, G + 4), VAL, "cols"),
    bad("lstm_forward[ids]", "W", shp(G), VAL, "rank1"),
    bad("lstm_forward[ids]", "W", F64, TYPE, "float64-mixed", name="W|U"),
    bad("lstm_forward[ids]", "h0", shp(B + 2, H), VAL, "batch"),
    bad("lstm_forward[ids]", "mask", lambda _: np.ones((B, T - 1), bool), VAL, "time"),
    bad("lstm_forward[ids]", "x", lambda _: np.zeros((0, T), np.int64), VAL, "B=0",
        pattern=r"\bB\b.*\bx\.shape\b"),
    bad("lstm_forward[ids]", "x", lambda _: np.zeros((B, 0), np.int64), VAL, "T=0",
        pattern=r"\bT\b.*\bx\.shape\b"),
    bad("lstm_forward[ids]", "W", shp(0, G), VAL, "V=0", pattern=r"\b(V|W|x)\b"),
    # ---- lstm_backward ----
    bad("lstm_backward", "cache", None, TYPE, "None", pattern=r"\bcache\b.*LstmCache"),
    bad("lstm_backward", "cache", lambda _: np.zeros(3), TYPE, "array",
        pattern=r"\bcache\b.*LstmCache"),
    bad("lstm_backward", "dy", shp(B, T, H + 1), VAL, "units"),
    bad("lstm_backward", "dy", shp(B, H), VAL, "last-for-sequences"),
    bad("lstm_backward", "dy", shp(B, T + 1, H), VAL, "time"),
    bad("lstm_backward", "dy", F64, TYPE, "float64-mixed"),
    bad("lstm_backward", "dy", OBJ, TYPE, "object"),
    bad("lstm_backward", "dy", I32, TYPE, "int"),
    bad("lstm_backward", "dhT", shp(B, H + 1), VAL, "units"),
    bad("lstm_backward", "dhT", shp(B + 1, H), VAL, "batch"),
    bad("lstm_backward", "dhT", F64, TYPE, "float64-mixed"),
    bad("lstm_backward", "dcT", shp(B), VAL, "rank1"),
    bad("lstm_backward", "dcT", F64, TYPE, "float64-mixed"),
    bad("lstm_backward", "dcT", STR, TYPE, "str"),
    bad("lstm_backward", "dW_out", shp(I + 1, G), VAL, "rows"),
    bad("lstm_backward", "dU_out", shp(H, G - 1), VAL, "columns"),
    bad("lstm_backward", "dU_out", shp(H, G, dtype=np.float64), TYPE, "float64"),
    bad("lstm_backward", "db_out", shp(G + 1), VAL, "length"),
    bad("lstm_backward", "db_out", lambda _: [0.0] * G, TYPE, "list"),
    bad("lstm_backward", "dU_out", lambda _: np.zeros((G, H), F32).T, VAL, "Fortran-order"),
    # ---- dense_softmax_xent ----
    bad("dense_softmax_xent", "x", shp(D), VAL, "rank1"),
    bad("dense_softmax_xent", "x", shp(N, D, 1), VAL, "rank3"),
    bad("dense_softmax_xent", "x", shp(N, D + 1), VAL, "D-mismatch", name="x|W"),
    bad("dense_softmax_xent", "x", F64, TYPE, "float64-mixed", name="x|W"),
    bad("dense_softmax_xent", "x", F16, TYPE, "float16"),
    bad("dense_softmax_xent", "x", OBJ, TYPE, "object"),
    bad("dense_softmax_xent", "x", STR, TYPE, "str"),
    bad("dense_softmax_xent", "W", shp(D + 1, C), VAL, "rows", name="W|x"),
    bad("dense_softmax_xent", "W", shp(C), VAL, "rank1"),
    bad("dense_softmax_xent", "W", shp(D, 0), VAL, "C=0", pattern=r"\bC\b.*\bW\.shape\b"),
    bad("dense_softmax_xent", "x", shp(0, D), VAL, "N=0", pattern=r"\bN\b.*\bx\.shape\b"),
    bad("dense_softmax_xent", "W", F64, TYPE, "float64-mixed"),
    bad("dense_softmax_xent", "W", None, TYPE, "None"),
    bad("dense_softmax_xent", "b", shp(C + 1), VAL, "length"),
    bad("dense_softmax_xent", "b", shp(1, C), VAL, "rank2"),
    bad("dense_softmax_xent", "b", F64, TYPE, "float64-mixed"),
    bad("dense_softmax_xent", "labels", lambda _: np.zeros(N + 1, int), VAL, "length"),
    bad("dense_softmax_xent", "labels", lambda _: np.array([0, 1, C, 0]), VAL, "id=C"),
    bad("dense_softmax_xent", "labels", lambda _: np.array([0, -1, 1, 0]), VAL, "id=-1"),
    bad("dense_softmax_xent", "labels", shp(N, C + 1), VAL, "targets-width"),
    bad("dense_softmax_xent", "labels", shp(N + 1, C), VAL, "targets-rows"),
    bad("dense_softmax_xent", "labels", shp(N, C, dtype=np.float64), TYPE, "targets-float64-mixed"),
    bad("dense_softmax_xent", "labels", shp(N, C, 1), VAL, "rank3"),
    bad("dense_softmax_xent", "labels", STR, TYPE, "str"),
    bad("dense_softmax_xent", "labels", OBJ, TYPE, "object"),
    bad("dense_softmax_xent", "labels", None, TYPE, "None"),
    bad("dense_softmax_xent", "weights", shp(N + 1), VAL, "length"),
    bad("dense_softmax_xent", "weights", shp(N, 1), VAL, "rank2"),
    bad("dense_softmax_xent", "weights", F64, TYPE, "float64-mixed"),
    bad("dense_softmax_xent", "weights", OBJ, TYPE, "object"),
    bad("dense_softmax_xent", "clip_eps", -1e-7, VAL, "negative"),
    bad("dense_softmax_xent", "clip_eps", 0.5, VAL, "0.5"),
    bad("dense_softmax_xent", "clip_eps", float("nan"), VAL, "nan"),
    # ---- matmul ----
    bad("matmul", "a", shp(3), VAL, "rank1"),
    bad("matmul", "a", shp(3, 4, 1), VAL, "rank3"),
    bad("matmul", "a", F64, TYPE, "float64-mixed", name="a|b"),
    bad("matmul", "a", OBJ, TYPE, "object"),
    bad("matmul", "a", I32, TYPE, "int"),
    bad("matmul", "b", shp(5, 2), VAL, "K-mismatch", pattern=r"\bop\(a\).*\bop\(b\)"),
    bad("matmul", "b", shp(4), VAL, "rank1"),
    bad("matmul", "b", STR, TYPE, "str"),
    bad("matmul", "b", F64, TYPE, "float64-mixed", name="a|b"),
    bad("matmul", "out", shp(3, 3), VAL, "shape"),
    bad("matmul", "out", shp(3, 2, dtype=np.float64), TYPE, "float64"),
    bad("matmul", "out", lambda _: _r(2, 3).T, VAL, "not-C-contiguous"),
    bad("matmul", "out", lambda _: _r(3, 4)[:, ::2], VAL, "strided"),
    bad("matmul", "precision", "bfloat", VAL, "unknown"),
    bad("matmul", "precision", "float64", VAL, "float64"),
    bad("dense_softmax_xent", "precision", "mixed_bfloat16", VAL, "unknown"),
    # ---- gemm_bf16 ----
    bad("gemm_bf16", "a", shp(3), VAL, "rank1"),
    bad("gemm_bf16", "a", F64, TYPE, "float64-mixed", name="a|b"),
    bad("gemm_bf16", "a", OBJ, TYPE, "object"),
    bad("gemm_bf16", "a", None, TYPE, "None"),
    bad("gemm_bf16", "b", shp(5, 2), VAL, "K-mismatch", pattern=r"\bop\(a\).*\bop\(b\)"),
    bad("gemm_bf16", "b", I32, TYPE, "int"),
    bad("gemm_bf16", "b", F16, TYPE, "float16"),
    bad("gemm_bf16", "out", shp(2, 3), VAL, "shape"),
    bad("gemm_bf16", "out", shp(3, 2, dtype=np.float64), TYPE, "float64"),
    bad("gemm_bf16", "out", lambda _: _r(2, 3).T, VAL, "not-C-contiguous"),
    bad("gemm_bf16", "out", [[1.0, 2.0]] * 3, TYPE, "list"),
    bad("gemm_bf16", "accumulate", True, VAL, "accumulate-without-out", pattern=r"\baccumulate=True needs out\b"),
    bad("gemm_bf16", "level", "amx", VAL, "unknown", pattern=r"\blevel must be one of .*portable.*'amx'"),
    bad("gemm_bf16", "level", 3, TYPE, "int"),
    bad("gemm_bf16", "level", "float32", VAL, "float32", pattern=r"\blevel must be one of .*'float32'"),
    # ---- pack_b / gemm_packed ----
    bad("pack_b", "b", F64, TYPE, "float64"),
    bad("pack_b", "b", shp(4), VAL, "rank1"),
    bad("pack_b", "b", OBJ, TYPE, "object"),
    bad("pack_b", "b", None, TYPE, "None"),
    bad("pack_b", "level", "amx", VAL, "unknown", pattern=r"\blevel must be one of .*float32.*portable.*'amx'"),
    bad("pack_b", "level", b"portable", TYPE, "bytes"),
    bad("gemm_packed", "a", F64, TYPE, "float64"),
    bad("gemm_packed", "a", shp(3, 5), VAL, "K-mismatch", pattern=r"\bop\(a\).*\bpacked b\b"),
    bad("gemm_packed", "a", shp(4), VAL, "rank1"),
    bad("gemm_packed", "b", lambda _: _r(4, 2), TYPE, "array", pattern=r"\bb must be a PackedB\b"),
    bad("gemm_packed", "b", None, TYPE, "None", pattern=r"\bb must be a PackedB\b"),
    bad("gemm_packed", "out", shp(3, 3), VAL, "shape"),
    bad("gemm_packed", "out", shp(3, 2, dtype=np.float64), TYPE, "float64"),
    bad("gemm_packed", "accumulate", True, VAL, "accumulate-without-out", pattern=r"\baccumulate=True needs out\b"),
    # ---- optimizers ----
    bad("adam_step", "w", shp(10, 1), VAL, "rank2"),
    bad("adam_step", "w", F64, TYPE, "float64"),
    bad("adam_step", "w", I32, TYPE, "int"),
    bad("adam_step", "g", shp(9), VAL, "length"),
    bad("adam_step", "g", F64, TYPE, "float64"),
    bad("adam_step", "g", OBJ, TYPE, "object"),
    bad("adam_step", "m", shp(11), VAL, "length"),
    bad("adam_step", "m", F64, TYPE, "float64"),
    bad("adam_step", "v", shp(10, 1), VAL, "rank2"),
    bad("adam_step", "v", STR, TYPE, "str"),
    bad("adam_step", "v", None, TYPE, "None"),
    bad("adam_step", "alpha", float("nan"), VAL, "nan"),
    bad("sgd_step", "w", shp(9), VAL, "length", name="w|g"),
    bad("sgd_step", "w", F64, TYPE, "float64"),
    bad("sgd_step", "g", shp(10, 1), VAL, "rank2"),
    bad("sgd_step", "g", F16, TYPE, "float16"),
    bad("sgd_step", "u", shp(11), VAL, "length"),
    bad("sgd_step", "u", F64, TYPE, "float64"),
    bad("sgd_step", "u", None, VAL, "None-with-momentum", pattern=r"\bmomentum\b.*\bu\b"),
    bad("rmsprop_step", "w", C64, TYPE, "complex"),
    bad("rmsprop_step", "g", shp(3), VAL, "length"),
    bad("rmsprop_step", "velocity", shp(9), VAL, "length"),
    bad("rmsprop_step", "velocity", F64, TYPE, "float64"),
    bad("rmsprop_step", "velocity", OBJ, TYPE, "object"),
    # ---- onehot_ids ----
    bad("onehot_ids", "x", shp(B, V), VAL, "rank2"),
    bad("onehot_ids", "x", shp(B, T, V, 1), VAL, "rank4"),
    bad("onehot_ids", "x", lambda a: a.astype(np.int64), TYPE, "int"),
    bad("onehot_ids", "x", OBJ, TYPE, "object"),
    bad("onehot_ids", "x", STR, TYPE, "str"),
    # ---- first_nonfinite ----
    bad("first_nonfinite", "x", I32, TYPE, "int"),
    bad("first_nonfinite", "x", F16, TYPE, "float16"),
    bad("first_nonfinite", "x", OBJ, TYPE, "object"),
    bad("first_nonfinite", "x", lambda a: a.astype(">f4"), TYPE, "byte-swapped"),
    bad("first_nonfinite", "x", lambda a: a[:, ::2], VAL, "strided"),
]


@pytest.mark.parametrize("fn_key, arg, change, exc, pattern", CASES)
def test_bad_argument_is_named(fn_key, arg, change, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        call(fn_key, **{arg: change})
    assert fn_key.split("[")[0] in str(info.value) or arg in ("cache",), \
        f"the message should say which function complained: {info.value}"


# A read-only in-place buffer needs its own case: setflags returns None.
@pytest.mark.parametrize("fn_key, arg", [("adam_step", "w"), ("adam_step", "m"),
                                         ("sgd_step", "u"), ("rmsprop_step", "velocity"),
                                         ("matmul", "out"), ("gemm_bf16", "out"), ("gemm_packed", "out"),
                                         ("lstm_backward", "dU_out")])
def test_read_only_in_place_buffer_is_refused(fn_key, arg):
    default = {"out": (3, 2), "dU_out": (H, G)}

    def frozen(a):
        a = np.array(a if a is not None else np.zeros(default[arg], F32))
        a.setflags(write=False)
        return a
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call(fn_key, **{arg: frozen})


@pytest.mark.parametrize("fn_key, arg", [("adam_step", "w"), ("adam_step", "v"),
                                         ("sgd_step", "w"), ("sgd_step", "u"),
                                         ("rmsprop_step", "velocity")])
def test_strided_in_place_buffer_is_refused(fn_key, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call(fn_key, **{arg: lambda a: np.repeat(a, 2)[::2]})


def test_lstm_backward_out_arrays_must_differ():
    args, _ = lstm_forward_call()
    args["x"] = _r(B, T, H)
    args["W"] = _r(H, G)  # dW and dU now have the same shape
    y, _, _, cache = _core.lstm_forward(*args.values(), training=True)
    buf = np.zeros((H, G), F32)
    with pytest.raises(ValueError, match=r"dW_out, dU_out and db_out must be different arrays"):
        _core.lstm_backward(cache, y, dW_out=buf, dU_out=buf)


def test_lstm_backward_db_out_needs_a_bias():
    args, _ = lstm_forward_call()
    args["b"] = None
    y, _, _, cache = _core.lstm_forward(*args.values(), training=True)
    with pytest.raises(ValueError, match=r"\bdb_out\b.*no bias"):
        _core.lstm_backward(cache, y, db_out=np.zeros(G, F32))


def test_set_num_threads_rejects_nonpositive():
    for n in (0, -1):
        with pytest.raises(ValueError, match=r"\bn\b"):
            _core.set_num_threads(n)


# ---------------------------------------------------------------------------
# Layouts that must work: strided, reversed, Fortran order -> same results
# ---------------------------------------------------------------------------

def _strided(a):
    """The same values behind a non-contiguous view."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


LAYOUTS = {"fortran": np.asfortranarray, "strided": _strided,
           "reversed": lambda a: np.flip(np.flip(a, -1).copy(), -1)}


def _same(got, want, what):
    for k, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, np.ndarray):
            np.testing.assert_array_equal(g, w, err_msg=f"{what}: output {k}")
        elif not isinstance(w, _core.LstmCache):
            assert g == w, f"{what}: output {k}"


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("fn_key", ["lstm_forward", "lstm_forward[ids]", "dense_softmax_xent",
                                    "matmul", "gemm_bf16", "gemm_packed", "onehot_ids"])
def test_non_contiguous_inputs_give_the_same_results(fn_key, layout):
    fn, make = CALLS[fn_key]
    args, kwargs = make()
    if fn_key.startswith("lstm"):
        kwargs = dict(mask=np.arange(B * T).reshape(B, T) % 3 != 0, rec_mask=_r(B, H))
    want = fn(*args.values(), **kwargs)
    relaid = {k: LAYOUTS[layout](v) if isinstance(v, np.ndarray) and v.ndim >= 1 else v
              for k, v in args.items()}
    kw_relaid = {k: LAYOUTS[layout](v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    assert any(not v.flags.c_contiguous for v in relaid.values()
               if isinstance(v, np.ndarray) and v.ndim >= 2), "set-up: nothing was relaid"
    got = fn(*relaid.values(), **kw_relaid)
    _same(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
          f"{fn_key} with {layout} inputs")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_non_contiguous_upstream_gradients(layout):
    args, _ = lstm_backward_call()
    want = _core.lstm_backward(*args.values())
    relaid = {k: LAYOUTS[layout](v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    _same(_core.lstm_backward(*relaid.values()), want, f"lstm_backward with {layout} dy/dhT/dcT")


# ---------------------------------------------------------------------------
# Huge requests
# ---------------------------------------------------------------------------

def _huge_lstm():
    # ids x is 64 MiB of untouched calloc'd zeros; y alone would be 2^24·1024·4 B = 64 GiB
    x = np.zeros((1, 2 ** 24), np.int32)
    return _core.lstm_forward(x, np.zeros((1, 4096), F32), np.zeros((1024, 4096), F32), None,
                              np.zeros((1, 1024), F32), np.zeros((1, 1024), F32), training=True)


def _huge_dense():
    # probs alone: 2^20 × 2^15 × 4 B = 128 GiB
    return _core.dense_softmax_xent(np.zeros((2 ** 20, 1), F32), np.zeros((1, 2 ** 15), F32), None,
                                    np.zeros(2 ** 20, np.int32))


def _huge_matmul():
    return _core.matmul(np.zeros((2 ** 20, 1), F32), np.zeros((1, 2 ** 15), F32))


def _huge_gemm_bf16():
    return _core.gemm_bf16(np.zeros((2 ** 20, 1), F32), np.zeros((1, 2 ** 15), F32), packed=True)


def _huge_pack_b():
    # a zero-stride view: the packed copy (64 GiB) is refused before any copy is made
    return _core.pack_b(np.broadcast_to(np.zeros((), F32), (2 ** 20, 2 ** 15)), level="float32")


@pytest.mark.parametrize("request_fn", [_huge_lstm, _huge_dense, _huge_matmul, _huge_gemm_bf16, _huge_pack_b],
                         ids=["lstm_forward", "dense_softmax_xent", "matmul", "gemm_bf16", "pack_b"])
def test_huge_request_raises_memory_error_with_bytes(request_fn):
    with pytest.raises(MemoryError, match=r"bytes"):
        request_fn()
