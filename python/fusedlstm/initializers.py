"""Weight initializers with Keras 3's formulas, drawing from the library's seeded stream.

Every initializer is called as `init(shape, dtype)` and draws from
`fusedlstm.utils._global_rng()` (or its own Generator when built with `seed=`), so
`set_random_seed(s)` makes the weights of a model reproducible bit for bit. The
numbers are Keras's distributions, not Keras's draws: the same seed does not give
the same weights as Keras (load Keras weights with set_weights for that).
"""

import contextlib
import math

import numpy as np

from . import progress as _progress
from . import registry as _registry
from . import utils

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal",
           "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal",
           "Identity", "get", "serialize"]


class Initializer:
    """Base class: subclasses implement __call__(shape, dtype) and get_config()."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"Received an invalid value for argument `seed`, expected an integer or None, got {seed!r}.")
        self.seed = seed
        self._rng = utils.seeded_generator(seed)

    def _gen(self):
        return self._rng if self._rng is not None else utils._global_rng()

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError


class Zeros(Initializer):
    def __init__(self):
        super().__init__()

    def get_config(self):
        return {}

    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)


class Ones(Zeros):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__()
        self.value = float(value)

    def get_config(self):
        return {"value": self.value}

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype=dtype)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}

    def __call__(self, shape, dtype="float32"):
        return self._gen().uniform(self.minval, self.maxval, size=shape).astype(dtype)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}

    def __call__(self, shape, dtype="float32"):
        return (self.mean + self.stddev * self._gen().standard_normal(size=shape)).astype(dtype)


def _truncated_normal(gen, shape, stddev):
    """Normal(0, stddev) redrawn outside two standard deviations (as Keras does)."""
    out = gen.standard_normal(size=shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = gen.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2
    return out * stddev


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}

    def __call__(self, shape, dtype="float32"):
        return (self.mean + _truncated_normal(self._gen(), shape, self.stddev)).astype(dtype)


def compute_fans(shape):
    """(fan_in, fan_out) as keras.src.initializers.random_initializers.compute_fans."""
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"Received an invalid value for argument `scale`, expected a positive float, got {scale}.")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Received an invalid value for argument `mode`, expected one of fan_in, fan_out, fan_avg, got {mode!r}.")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                "Received an invalid value for argument `distribution`, expected one of "
                f"truncated_normal, untruncated_normal, uniform, got {distribution!r}.")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        gen = self._gen()
        if self.distribution == "truncated_normal":
            # 0.879...: stddev of a unit normal truncated to (-2, 2).
            out = _truncated_normal(gen, shape, math.sqrt(scale) / 0.87962566103423978)
        elif self.distribution == "untruncated_normal":
            out = gen.standard_normal(size=shape) * math.sqrt(scale)
        else:
            limit = math.sqrt(3.0 * scale)
            out = gen.uniform(-limit, limit, size=shape)
        return out.astype(dtype)


def _fixed(name, scale, mode, distribution):
    class _Init(VarianceScaling):
        def __init__(self, seed=None):
            super().__init__(scale, mode, distribution, seed)

        def get_config(self):
            return {"seed": self.seed}

    _Init.__name__ = _Init.__qualname__ = name
    return _Init


GlorotUniform = _fixed("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _fixed("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _fixed("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _fixed("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _fixed("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _fixed("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """Keras 3: QR of a normal (max(r,c), min(r,c)) matrix, columns sign-corrected by diag(R).

    The sign correction makes diag(R) positive, which pins Q down uniquely: Q is
    the Gram-Schmidt orthonormalisation of the normal matrix's columns, and its
    distribution is the uniform (Haar) one over matrices with orthonormal columns.
    Small matrices go through LAPACK's Householder QR in float64. Large ones
    (LSTM(1024) and up) take the same Q from a blocked Gram-Schmidt whose bulk is
    float32 (float64 for float64 weights) matrix products, several times faster
    than the float64 QR, with a progress bar when it takes seconds; see
    _blocked_orthonormal.
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}

    def __call__(self, shape, dtype="float32"):
        if len(shape) < 2:
            raise ValueError(f"The tensor to initialize must be at least two-dimensional, got shape={tuple(shape)}.")
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        m, n = max(rows, cols), min(rows, cols)
        if m * n * n < _BLOCKED_MIN_WORK:
            a = self._gen().standard_normal(size=(m, n))
            q, r = np.linalg.qr(a)
            q = q * np.sign(np.diag(r))
        else:
            work = np.float64 if np.dtype(dtype) == np.float64 else np.float32
            q = _blocked_orthonormal(self._gen(), m, n, work)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)


# m * n^2 from which Orthogonal takes the blocked path: a float64 Householder QR of
# this size takes ~0.1-1 s, so every model up to LSTM(768) keeps the exact numbers
# of the plain QR.
_BLOCKED_MIN_WORK = 2**32
_PANEL = 128            # columns orthonormalised together
_PROGRESS_WORK = 2**37  # m * n^2 from which the blocked path shows progress (LSTM(3072) and up)


def _blocked_orthonormal(gen, m, n, work_dtype):
    """Q of the QR of an (m, n) standard normal matrix with diag(R) > 0, for large m * n^2.

    The matrix is drawn in row blocks as float64 normals (the same numbers, in the
    same order, as one standard_normal((m, n)) call) and stored in `work_dtype`.
    Then block classical Gram-Schmidt, panel by panel of _PANEL columns: remove
    the panel's components along the columns done so far (C = Q^T P, P -= Q C:
    matrix products in `work_dtype`, the bulk of the work) and orthonormalise
    the panel (_panel_q, float64). Each R has a positive diagonal, so in exact
    arithmetic this is the sign-corrected Householder Q, column for column.

    Rounding leaves components along the done columns of the order of the
    rounding unit times ||P|| / sigma_min(P after projection), which the
    panel's normalisation turns into a loss of orthogonality. Where that ratio
    exceeds _REORTH_RATIO (the later panels of a near-square matrix) the panel
    goes through a second projection and normalisation, which starts from an
    orthonormal panel and so removes what the first left without amplifying it
    ("twice is enough": Kahan-Parlett, and Barlow-Smoktunowicz's BCGS2 for
    blocks). The ratio comes from the panel's Gram matrices (P^T P before,
    P^T P - C^T C after), so tall matrices such as an LSTM's (4H, H) need one
    pass: 2 m n^2 work in all. The result is orthonormal to `work_dtype`
    rounding and equals the float64 QR of the same draws to a few hundred
    rounding units (tests/test_initializers.py). LAPACK's QR is not used for
    the whole matrix: it runs in float64 whatever the input, and its panel
    steps are memory-bound.
    """
    a = np.empty((m, n), dtype=work_dtype)
    rows = max(1, 2**22 // n)  # draw ~32 MB of float64 at a time
    for i in range(0, m, rows):
        a[i:i + rows] = gen.standard_normal(size=(min(rows, m - i), n))
    panels = range(0, n, _PANEL)
    show = m * n * n >= _PROGRESS_WORK
    ctx = (_progress.steps(len(panels), f"orthogonal initializer ({m} x {n})") if show
           else contextlib.nullcontext(lambda k=1: None))
    with ctx as advance:
        for j in panels:
            p = a[:, j:j + _PANEL]
            done = a[:, :j]  # orthonormal columns
            if j:
                gram = (p.T @ p).astype(np.float64)
                c = done.T @ p
                p = p - done @ c
                c = c.astype(np.float64)
                before = np.linalg.eigvalsh(gram)[-1]
                after = np.linalg.eigvalsh(gram - c.T @ c)[0]
                if after <= 0 or before > _REORTH_RATIO**2 * after:
                    p = _panel_q(p).astype(work_dtype)
                    p = p - done @ (done.T @ p)
            a[:, j:j + _PANEL] = _panel_q(p)
            advance(1)
    return a


_REORTH_RATIO = 4.0  # ||P|| / sigma_min(projected P) above which a panel is projected twice


def _panel_q(p):
    """Q of an (m, k) panel with diag(R) > 0, in float64: Cholesky QR (Q = P R^-1 with
    R^T R = P^T P: matrix products, unlike LAPACK's memory-bound panel QR); a panel
    too ill-conditioned for it (P^T P not positive definite in float64) takes a
    Householder QR, sign-corrected to the same factorisation."""
    p = p.astype(np.float64)
    try:
        lower = np.linalg.cholesky(p.T @ p)
    except np.linalg.LinAlgError:
        q, r = np.linalg.qr(p)
        return q * np.sign(np.diag(r))
    return p @ np.linalg.inv(lower.T)


class Identity(Initializer):
    def __init__(self, gain=1.0):
        super().__init__()
        self.gain = float(gain)

    def get_config(self):
        return {"gain": self.gain}

    def __call__(self, shape, dtype="float32"):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2-D shape, got {tuple(shape)}.")
        return (self.gain * np.eye(*shape)).astype(dtype)


# The names users type, by class; each class is registered under its class name too.
for _cls, _aliases in ((Zeros, ("zeros", "zero")), (Ones, ("ones", "one")), (Constant, ("constant",)),
                       (RandomUniform, ("uniform", "random_uniform")), (RandomNormal, ("normal", "random_normal")),
                       (TruncatedNormal, ("truncated_normal",)), (VarianceScaling, ("variance_scaling",)),
                       (GlorotUniform, ("glorot_uniform",)), (GlorotNormal, ("glorot_normal",)),
                       (HeUniform, ("he_uniform",)), (HeNormal, ("he_normal",)),
                       (LecunUniform, ("lecun_uniform",)), (LecunNormal, ("lecun_normal",)),
                       (Orthogonal, ("orthogonal",)), (Identity, ("identity",))):
    _registry.register("initializers", aliases=_aliases)(_cls)
del _cls, _aliases


def _names():
    return [n for n in _registry.names("initializers") if n.islower()]


def get(identifier, arg="initializer"):
    """An Initializer from a name, a {'class_name', 'config'} dict or an Initializer;
    `arg` is the argument named in error messages."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        # Keras accepts class names as well ("GlorotUniform").
        cls = _registry.lookup("initializers", identifier)
        if cls is None:
            if identifier.lower() == "stft":
                raise NotImplementedError(f"Initializer {identifier!r} (argument `{arg}`) is not supported.")
            raise ValueError(
                f"Received an invalid value for argument `{arg}`, expected one of {_names()}, "
                f"got {identifier!r}.")
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _registry.lookup("initializers", identifier["class_name"])
        if not isinstance(cls, type) or not issubclass(cls, Initializer):
            raise NotImplementedError(f"Initializer class {identifier['class_name']!r} is not supported.")
        return cls.from_config(identifier.get("config", {}))
    raise TypeError(
        f"Received an invalid value for argument `{arg}`, expected a name, a config "
        f"dict or a fusedlstm.initializers.Initializer, got {identifier!r}.")


def serialize(init):
    """{"class_name", "config"}: the initializer's registered name and get_config()."""
    return _registry.serialize_keras_object(init)
