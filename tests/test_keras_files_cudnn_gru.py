"""Keras 2 CuDNNGRU files load as GRU(reset_after=True) and compute what cuDNN's GRU computed.

No Keras 2 or GPU here: the files are written by hand in Keras 2's layout (as
tests/test_keras_files.py does for CuDNNLSTM) from random weights in CuDNNGRU's
storage, and the loaded model's predictions are compared with an independent
float64 NumPy transcription of cuDNN's GRU equations applied to those stored arrays,
read the way CuDNNGRU handed them to cuDNN (keras/layers/cudnn_recurrent.py):

    each gate's (I, H) kernel block, flattened row-major, is cuDNN's (H, I) matrix W;
    each (H, H) recurrent block, likewise, is its R; the (6H,) bias is the input
    biases b_W (z, r, h) then the recurrent biases b_R (z, r, h);
    r = sigmoid(W_r x + b_Wr + R_r h + b_Rr)
    z = sigmoid(W_z x + b_Wz + R_z h + b_Rz)
    n = tanh(W_h x + b_Wh + r * (R_h h + b_Rh))
    h' = (1 - z) * n + z * h
"""

import numpy as np
import pytest

from conftest import require
from test_keras_files import _init, _k2_dense, _write_keras2_h5

TOL = 1e-5


@pytest.fixture(scope="module")
def h5py():
    return require("h5py", "h5")


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def cudnn_gru(x, kernel, recurrent, bias, go_backwards=False):
    """cuDNN's GRU over (B, T, I) in float64, from CuDNNGRU's stored arrays; returns every h, (B, T, H)."""
    kernel, recurrent, bias = (np.asarray(a, np.float64) for a in (kernel, recurrent, bias))
    I, H = kernel.shape[0], recurrent.shape[0]
    W = {g: kernel[:, k * H:(k + 1) * H].reshape(-1).reshape(H, I) for k, g in enumerate("zrh")}
    R = {g: recurrent[:, k * H:(k + 1) * H].reshape(-1).reshape(H, H) for k, g in enumerate("zrh")}
    bW = {g: bias[k * H:(k + 1) * H] for k, g in enumerate("zrh")}
    bR = {g: bias[(3 + k) * H:(4 + k) * H] for k, g in enumerate("zrh")}
    B, T, _ = x.shape
    h = np.zeros((B, H))
    out = np.zeros((B, T, H))
    steps = range(T - 1, -1, -1) if go_backwards else range(T)
    for t in steps:
        xt = x[:, t].astype(np.float64)
        r = _sigmoid(xt @ W["r"].T + bW["r"] + h @ R["r"].T + bR["r"])
        z = _sigmoid(xt @ W["z"].T + bW["z"] + h @ R["z"].T + bR["z"])
        n = np.tanh(xt @ W["h"].T + bW["h"] + r * (h @ R["h"].T + bR["h"]))
        h = (1 - z) * n + z * h
        out[:, t] = h
    return out


def _k2_cudnn_gru(name, units, *, batch_input_shape=None, return_sequences=False):
    cfg = {"name": name, "trainable": True, "return_sequences": return_sequences, "return_state": False,
           "go_backwards": False, "stateful": False, "units": units, "kernel_initializer": _init("VarianceScaling"),
           "recurrent_initializer": _init("Orthogonal"), "bias_initializer": {"class_name": "Zeros", "config": {}},
           "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
           "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
           "bias_constraint": None}
    if batch_input_shape is not None:
        cfg.update(batch_input_shape=list(batch_input_shape), dtype="float32")
    return {"class_name": "CuDNNGRU", "config": cfg}


def _stored(rng, I, H):
    """Random arrays in CuDNNGRU's storage: kernel (I, 3H), recurrent_kernel (H, 3H), bias (6H,)."""
    return [rng.uniform(-0.8, 0.8, size=s).astype(np.float32) for s in ((I, 3 * H), (H, 3 * H), (6 * H,))]


def _model_file(h5py, path, layers, weights):
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": layers},
              "keras_version": "2.2.4", "backend": "tensorflow"}
    _write_keras2_h5(h5py, path, weights, model_config=config)


def _named(prefix, arrays):
    return [(f"{prefix}/{n}:0", a) for n, a in zip(("kernel", "recurrent_kernel", "bias"), arrays)]


@pytest.mark.parametrize("I, H", [(3, 5), (6, 4), (4, 4)], ids=["I<H", "I>H", "I=H"])
def test_cudnngru_model_file_predicts_what_cudnn_computed(h5py, tmp_path, rng, seed, I, H):
    from fusedlstm.io import load_keras_file

    T = 7
    gru, dense = _stored(rng, I, H), [rng.normal(size=(H, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    path = tmp_path / "cudnn_gru.h5"
    _model_file(h5py, path, [_k2_cudnn_gru("cu_dnngru_1", H, batch_input_shape=(None, T, I), return_sequences=True),
                             _k2_dense("dense_1", 2)],
                [("cu_dnngru_1", _named("cu_dnngru_1", gru)),
                 ("dense_1", [("dense_1/kernel:0", dense[0]), ("dense_1/bias:0", dense[1])])])
    model = load_keras_file(path)
    layer = model.layers[0]
    assert type(layer).__name__ == "GRU" and layer.reset_after
    assert (layer.activation.__name__, layer.recurrent_activation.__name__) == ("tanh", "sigmoid")
    assert layer.get_weights()[2].shape == (2, 3 * H)
    x = rng.normal(size=(3, T, I)).astype(np.float32)
    ref = cudnn_gru(x, *gru) @ dense[0].astype(np.float64) + dense[1]
    err = np.abs(model.predict(x, verbose=0) - ref).max()
    assert err <= TOL, f"seed={seed}: max|ours - cuDNN transcription| = {err}"


def test_bidirectional_cudnngru_and_weights_only_file(h5py, tmp_path, rng, seed):
    from fusedlstm.io import load_keras_file
    from fusedlstm.layers import GRU, Bidirectional, Input
    from fusedlstm.models import Sequential

    I, H, T = 3, 4, 6
    fwd, bwd = _stored(rng, I, H), _stored(rng, I, H)
    layers = [{"class_name": "Bidirectional", "config": {
        "name": "bidirectional_1", "trainable": True, "merge_mode": "concat", "batch_input_shape": [None, T, I],
        "dtype": "float32", "layer": _k2_cudnn_gru("cu_dnngru_1", H, return_sequences=True)}}]
    weights = [("bidirectional_1", _named("bidirectional_1/forward_cu_dnngru_1", fwd)
                + _named("bidirectional_1/backward_cu_dnngru_1", bwd))]
    path = tmp_path / "bi.h5"
    _model_file(h5py, path, layers, weights)
    x = rng.normal(size=(2, T, I)).astype(np.float32)
    back = cudnn_gru(x, *bwd, go_backwards=True)  # Keras flips the backward outputs to input order
    ref = np.concatenate([cudnn_gru(x, *fwd), back], axis=-1)
    model = load_keras_file(path)
    err = np.abs(model.predict(x, verbose=0) - ref).max()
    assert err <= TOL, f"seed={seed}: {err}"
    # The same arrays as a weights-only file, into a model built in code (Keras 2's load_weights path).
    only = tmp_path / "bi_weights.h5"
    _write_keras2_h5(h5py, only, weights)
    built = Sequential([Input((T, I)), Bidirectional(GRU(H, return_sequences=True))])
    built.load_weights(only)
    np.testing.assert_allclose(built.predict(x, verbose=0), ref, rtol=0, atol=TOL, err_msg=f"seed={seed}")


def test_cudnngru_weights_into_reset_after_false_are_refused(h5py, tmp_path, rng):
    from fusedlstm.layers import GRU, Input
    from fusedlstm.models import Sequential

    path = tmp_path / "w.h5"
    _write_keras2_h5(h5py, path, [("cu_dnngru_1", _named("cu_dnngru_1", _stored(rng, 3, 4)))])
    old = Sequential([Input((5, 3)), GRU(4, reset_after=False)])
    with pytest.raises(ValueError, match=r"CuDNNGRU weights \(bias \(24,\)\), which only a GRU with "
                                         r"reset_after=True computes; the layer has reset_after=False"):
        old.load_weights(path)


def test_conversion_is_keras2s_and_inverts(rng):
    from fusedlstm.io import weight_layout as wl

    I, H = 5, 3
    stored = _stored(rng, I, H)
    kernel, recurrent, bias = wl.cudnn_to_keras_gru(stored)
    # kernel block g is cuDNN's W_g = (block's row-major data as (H, I)) transposed
    for g in range(3):
        W = stored[0][:, g * H:(g + 1) * H].reshape(-1).reshape(H, I)
        np.testing.assert_array_equal(kernel[:, g * H:(g + 1) * H], W.T)
        np.testing.assert_array_equal(recurrent[:, g * H:(g + 1) * H], stored[1][:, g * H:(g + 1) * H].T)
    np.testing.assert_array_equal(bias, stored[2].reshape(2, 3 * H))
    for a, b in zip(wl.keras_to_cudnn_gru([kernel, recurrent, bias]), stored):
        np.testing.assert_array_equal(a, b)


def test_old_keras_gru_weights_warn_about_sigmoid_but_cudnn_ones_do_not(h5py, tmp_path, rng):
    """Keras < 2.3's GRU defaulted to hard_sigmoid, as its LSTM did; cuDNN's GRU is sigmoid by construction."""
    from fusedlstm.io import LegacyActivationWarning
    from fusedlstm.layers import GRU, Input
    from fusedlstm.models import Sequential

    plain = tmp_path / "gru.h5"
    _write_keras2_h5(h5py, plain, [("gru_1", _named("gru_1", [rng.normal(size=(3, 12)), rng.normal(size=(4, 12)),
                                                              rng.normal(size=(2, 12))]))])
    model = Sequential([Input((5, 3)), GRU(4)])
    with pytest.warns(LegacyActivationWarning, match=r"LSTM and GRU default.*gru.*hard_sigmoid_k2"):
        model.load_weights(plain)
    cudnn = tmp_path / "cudnn.h5"
    _write_keras2_h5(h5py, cudnn, [("cu_dnngru_1", _named("cu_dnngru_1", _stored(rng, 3, 4)))])
    model.load_weights(cudnn)  # filterwarnings=error: a warning fails
