"""The orthogonal initializer: Keras 3's distribution, from the plain QR and from the
blocked construction large matrices take, with the library's seed semantics."""

import math

import numpy as np
import pytest

from conftest import require
from fusedlstm import initializers
from fusedlstm.utils import set_random_seed
import keras_parity_support as ps


def keras_formula(a):
    """keras.initializers.Orthogonal on a given normal matrix, in float64:
    q, r = qr(a); q *= sign(diag(r))."""
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))


@pytest.fixture
def blocked_everywhere(monkeypatch):
    """Every shape takes the blocked path, with panels of 3 columns (many of them)."""
    monkeypatch.setattr(initializers, "_BLOCKED_MIN_WORK", 0)
    monkeypatch.setattr(initializers, "_PANEL", 3)


def flat_q(w):
    """The (max, min) matrix with orthonormal columns that a weight of shape w came from."""
    m2 = w.reshape(-1, w.shape[-1])
    return m2 if m2.shape[0] >= m2.shape[1] else m2.T


# (shape, dtype): tall and wide, square, a panel count that does not divide n, 3-D
SHAPES = [((7, 40), "float32"), ((40, 7), "float32"), ((24, 24), "float32"), ((50, 23), "float64"),
          ((3, 4, 17), "float32"), ((1, 9), "float32")]


@pytest.mark.parametrize("shape,dtype", SHAPES, ids=lambda v: str(v))
def test_blocked_q_is_kerass_q_of_the_same_draws(shape, dtype, seed, blocked_everywhere):
    """Same seed, same normal matrix: the blocked Q is the sign-corrected Householder Q
    to the working precision, and orthonormal to it."""
    w = initializers.Orthogonal(gain=1.5, seed=seed)(shape, dtype)
    assert w.shape == shape and w.dtype == dtype
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = np.random.default_rng(seed).standard_normal((max(rows, cols), min(rows, cols)))
    want = 1.5 * keras_formula(a)
    got = flat_q(w).astype(np.float64)
    eps = np.finfo(dtype).eps
    # the map a -> q is well conditioned for these shapes: a few hundred eps at most
    np.testing.assert_allclose(got, want, rtol=0, atol=300 * eps * 1.5, err_msg=f"seed={seed}")
    n = got.shape[1]
    np.testing.assert_allclose(got.T @ got / 2.25, np.eye(n), rtol=0, atol=20 * eps, err_msg=f"seed={seed}")


def test_large_lstm_recurrent_kernel_takes_the_blocked_path(seed, monkeypatch):
    """LSTM(1024)'s (1024, 4096) recurrent kernel (m n^2 = 2^32) takes the blocked path
    with its default panels; its rows are orthonormal to float32 rounding. (That the
    blocked Q is Keras's Q of the same draws is checked on small shapes above: the
    float64 QR of this one would take most of the test's time.)"""
    calls = []
    real = initializers._blocked_orthonormal
    monkeypatch.setattr(initializers, "_blocked_orthonormal", lambda *a: calls.append(a[1:3]) or real(*a))
    w = initializers.Orthogonal(seed=seed)((1024, 4096))
    assert calls == [(4096, 1024)]
    w64 = w.astype(np.float64)
    gram = w64[::4] @ w64.T  # every 4th row against all: a quarter of the work
    assert np.abs(gram - np.eye(1024)[::4]).max() < 4 * np.finfo(np.float32).eps, f"seed={seed}"


def test_blocked_and_plain_paths_draw_the_same_numbers(seed, blocked_everywhere):
    """The blocked path draws its normal matrix in row blocks: the stream is left where
    one standard_normal((m, n)) call leaves it, so later weights do not change."""
    set_random_seed(seed)
    initializers.Orthogonal()((300, 7))
    after_blocked = initializers.RandomNormal()((5,))
    set_random_seed(seed)
    from fusedlstm import utils
    utils._global_rng().standard_normal((300, 7))
    assert np.array_equal(initializers.RandomNormal()((5,)), after_blocked)


def test_same_seed_same_weights_on_both_paths(seed, monkeypatch):
    for blocked in (False, True):
        monkeypatch.setattr(initializers, "_BLOCKED_MIN_WORK", 0 if blocked else 2**62)
        a = initializers.Orthogonal(seed=seed)((30, 120))
        b = initializers.Orthogonal(seed=seed)((30, 120))
        assert a.tobytes() == b.tobytes()
        set_random_seed(seed)
        c = initializers.Orthogonal()((30, 120))
        set_random_seed(seed)
        assert c.tobytes() == initializers.Orthogonal()((30, 120)).tobytes()


def test_ill_conditioned_panels_fall_back_to_householder(seed, monkeypatch):
    """A panel whose Gram matrix is singular in float64 (repeated columns) takes the
    Householder panel QR: still the sign-corrected Q, with positive R diagonal."""
    p = np.random.default_rng(seed).standard_normal((50, 4))
    p[:, 3] = p[:, 1]
    q = initializers._panel_q(p)
    want = keras_formula(p)
    np.testing.assert_allclose(q[:, :3], want[:, :3], atol=1e-12)


def test_progress_is_shown_for_slow_constructions(capsys, monkeypatch, seed):
    monkeypatch.setattr(initializers, "_BLOCKED_MIN_WORK", 0)
    monkeypatch.setattr(initializers, "_PROGRESS_WORK", 1000)
    initializers.Orthogonal(seed=seed)((20, 40))
    assert "orthogonal initializer (40 x 20)" in capsys.readouterr().err
    monkeypatch.setattr(initializers, "_PROGRESS_WORK", 2**62)
    initializers.Orthogonal(seed=seed)((20, 40))
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------
# Against real Keras: the same distribution (not the same draws: other RNGs)
# ---------------------------------------------------------------------------

def ks_statistic(x, y):
    """Two-sample Kolmogorov-Smirnov D = max |F_x - F_y|."""
    x, y = np.sort(x), np.sort(y)
    grid = np.concatenate([x, y])
    return np.abs(np.searchsorted(x, grid, "right") / len(x) - np.searchsorted(y, grid, "right") / len(y)).max()


def ks_limit(n1, n2, alpha=1e-3):
    """D above which equal distributions are rejected at level alpha (asymptotic)."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n1 + n2) / (n1 * n2))


@pytest.mark.keras
@pytest.mark.filterwarnings(ps.KERAS_WARNINGS)
@pytest.mark.parametrize("shape", [(6, 24), (24, 6), (12, 12)])
def test_distribution_matches_keras(shape, seed, blocked_everywhere):
    """400 matrices from each: the scaled entries, the diagonal (where a missing or
    wrong sign correction shows: Householder alone makes q[0, 0] < 0) and one
    entry product (a joint property) have the same distribution."""
    require("torch", "compare")
    keras = require("keras", "compare")
    n_mats = 400
    rows, cols = shape
    m = max(rows, cols)

    def stats(mats):
        qs = np.stack([flat_q(np.asarray(w, np.float64)) for w in mats]) * math.sqrt(m)
        return {"entries": qs[:, :, :].ravel()[::7], "q00": qs[:, 0, 0], "q11": qs[:, 1, 1],
                "q00*q11": qs[:, 0, 0] * qs[:, 1, 1]}

    ours = stats(initializers.Orthogonal(seed=seed + k)(shape) for k in range(n_mats))
    theirs = stats(keras.ops.convert_to_numpy(keras.initializers.Orthogonal(seed=(seed + k) % 2**31)(shape))
                   for k in range(n_mats))
    for name in ours:
        d, lim = ks_statistic(ours[name], theirs[name]), ks_limit(len(ours[name]), len(theirs[name]))
        assert d < lim, f"{name}: KS D = {d:.3f} >= {lim:.3f} (seed={seed})"
    assert np.all(ours["q00"] > 0) == np.all(theirs["q00"] > 0)
