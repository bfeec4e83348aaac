"""Keras file formats: what real Keras 3.15.1 writes we read, what we write Keras loads.

File level (no engine): a Keras model writes .keras/.weights.h5/.h5; our readers
must give exactly its get_weights() per layer; our writers must produce files
keras.models.load_model / load_weights accept and that predict bit-identically.
Keras 2 files cannot be produced here (no TF/Keras 2 installed), so they are
written by hand in Keras 2's layout (`_write_keras2_h5`, following
tensorflow/python/keras/saving/hdf5_format.py), and where Keras 3 can read them
it does, which checks the hand-written layout.
"""

import json
import os
import secrets
import sys
import zipfile

import numpy as np
import pytest

from conftest import require

os.environ.setdefault("KERAS_BACKEND", "torch")

# Keras 3.15's torch backend converts its variables with np.array(x) on an object whose
# __array__ predates NumPy 2's copy= keyword: a warning from inside Keras, not from us.
pytestmark = [pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    # Keras warns when a layer without mask support (GlobalMaxPooling1D) drops a mask.
    pytest.mark.filterwarnings("ignore:Layer '.*' \\(of type .*\\) was passed an input with a mask")]


@pytest.fixture(scope="module")
def keras():
    require("h5py", "h5")
    require("torch", "compare")
    return require("keras", "compare")


@pytest.fixture(scope="module")
def h5py():
    return require("h5py", "h5")


@pytest.fixture(scope="module")
def kio():
    from fusedlstm.io import keras_legacy_h5, keras_v3, model_config, weight_layout
    return type("kio", (), dict(v3=keras_v3, legacy=keras_legacy_h5, mc=model_config, wl=weight_layout))


# ---------------------------------------------------------------------------------------------
# Keras-built models, one per structural case the layout code must handle
# ---------------------------------------------------------------------------------------------

def _sequential_mixed(keras, rng):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((5, 3)),
        L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum"),
        L.LSTM(6, return_sequences=True, go_backwards=True, use_bias=False),
        L.TimeDistributed(L.Dense(3)),
        L.Flatten(),
        L.Dense(2, activation="softmax"),
    ])
    return m, rng.normal(size=(4, 5, 3)).astype(np.float32)


def _sequential_embedding(keras, rng):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        L.Embedding(11, 5, mask_zero=True),
        L.LSTM(3),
        L.RepeatVector(4),
        L.Dropout(0.1),
        L.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid"),
        L.Dense(2),
    ])
    x = rng.integers(0, 11, size=(4, 6)).astype(np.int32)
    x[:, :2] = 0
    return m, x


def _functional_seq2seq(keras, rng):
    L = keras.layers
    enc_in, dec_in = keras.Input((None, 7)), keras.Input((None, 9))
    _, h, c = L.LSTM(8, return_state=True)(enc_in)
    dec = L.LSTM(8, return_sequences=True)(dec_in, initial_state=[h, c])
    out = L.TimeDistributed(L.Dense(9, activation="softmax"))(dec)
    m = keras.Model([enc_in, dec_in], out)
    return m, [rng.normal(size=(2, 4, 7)).astype(np.float32), rng.normal(size=(2, 3, 9)).astype(np.float32)]


def _functional_branches(keras, rng):
    # Two LSTMs at the same depth: which one Keras calls 'lstm' and which 'lstm_1' in a
    # weights file follows its graph walk, not the order the layers were created in.
    L = keras.layers
    a, b = keras.Input((4, 3)), keras.Input((4, 3))
    la = L.LSTM(5, return_sequences=True)(a)
    lb = L.LSTM(5, return_sequences=True)(b)
    cat = L.Concatenate()([lb, la])
    added = L.Add()([la, lb])
    o1 = L.Dense(2)(L.LSTM(3)(cat))
    o2 = L.Dense(2)(L.Flatten()(added))
    m = keras.Model([a, b], [o1, o2])
    return m, [rng.normal(size=(2, 4, 3)).astype(np.float32), rng.normal(size=(2, 4, 3)).astype(np.float32)]


def _sequential_reshape(keras, rng):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((6, 4)),
        L.SpatialDropout1D(0.2),
        L.LSTM(3, return_sequences=True),
        L.Reshape((3, -1)),
        L.Activation("tanh"),
        L.LSTM(2),
    ])
    return m, rng.normal(size=(4, 6, 4)).astype(np.float32)


def _sequential_masking(keras, rng):
    L = keras.layers
    m = keras.Sequential([keras.Input((5, 3)), L.Masking(), L.LSTM(4, return_sequences=True), L.LSTM(2)])
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    x[1, :2] = 0.0  # masked steps
    x[2, 3:] = 0.0
    return m, x


def _sequential_normalization(keras, rng):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((9, 3)),
        L.BatchNormalization(momentum=0.9),
        L.LayerNormalization(epsilon=1e-2),
        L.LeakyReLU(0.1),
        L.PReLU(shared_axes=[1]),
        L.ReLU(max_value=1.5, threshold=0.1, negative_slope=0.2),
        L.ELU(alpha=0.7),
        L.GaussianNoise(0.1),
        L.GaussianDropout(0.2),
        L.AlphaDropout(0.1),
        L.LSTM(4, return_sequences=True),
        L.TimeDistributed(L.BatchNormalization(center=False)),
        L.Softmax(),
        L.LayerNormalization(axis=[1, 2], scale=False),
        L.Flatten(),
        L.Dense(2),
    ])
    return m, rng.normal(size=(4, 9, 3)).astype(np.float32)


def _sequential_pooling(keras, rng):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((9, 3)),
        L.ZeroPadding1D((1, 2)),
        L.Cropping1D((2, 1)),
        L.UpSampling1D(2),
        L.MaxPooling1D(3, strides=2, padding="same"),
        L.AveragePooling1D(2),
        L.LSTM(5, return_sequences=True),
        L.MaxPool1D(2, data_format="channels_first"),
        L.Permute((2, 1)),
        L.GlobalMaxPooling1D(keepdims=True),
        L.GlobalAvgPool1D(),
        L.Dense(2),
    ])
    return m, rng.normal(size=(4, 9, 3)).astype(np.float32)


def _functional_masked_pooling(keras, rng):
    L = keras.layers
    ids = keras.Input((7,), dtype="int32")
    h = L.Embedding(11, 5, mask_zero=True)(ids)
    h = L.BatchNormalization()(h)
    seq = L.LSTM(4, return_sequences=True)(h)
    avg = L.GlobalAveragePooling1D()(seq)
    mx = L.GlobalMaxPooling1D()(L.TimeDistributed(L.PReLU())(seq))
    frames = L.Reshape((7, 4, 1))(seq)
    pooled = L.TimeDistributed(L.MaxPooling1D(2, padding="same"))(frames)
    out = L.Dense(3, activation="softmax")(L.Concatenate()([avg, mx, L.Flatten()(pooled)]))
    x = rng.integers(0, 11, size=(4, 7)).astype(np.int32)
    x[1, :3] = 0
    x[2, 5:] = 0
    return keras.Model(ids, out), x


def _functional_masking(keras, rng):
    L = keras.layers
    x = keras.Input((6, 3))
    seq = L.LSTM(4, return_sequences=True)(L.LayerNormalization()(L.Masking(mask_value=0.5)(x)))
    out = L.Dense(2)(L.GlobalAveragePooling1D()(seq))
    data = rng.normal(size=(4, 6, 3)).astype(np.float32)
    data[1, :2] = 0.5  # masked steps
    data[3, 4:] = 0.5
    return keras.Model(x, out), data


def _sequential_conv(keras, rng):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((12, 4)),
        L.Conv1D(6, 3, padding="same", activation="relu"),
        L.Conv1D(6, 2, padding="causal", dilation_rate=2, groups=3, use_bias=False),
        L.MaxPooling1D(2),
        L.Conv1D(4, 3, strides=2, data_format="channels_first"),
        L.LSTM(5),
        L.Dense(2),
    ])
    return m, rng.normal(size=(4, 12, 4)).astype(np.float32)


def _functional_cnn_lstm(keras, rng):
    L = keras.layers
    ids = keras.Input((10,), dtype="int32")
    h = L.Embedding(11, 5)(ids)
    conv = L.Conv1D(4, 3, activation="tanh")(h)
    seq = L.LSTM(4, return_sequences=True)(L.MaxPooling1D(2)(conv))
    out = L.Dense(3, activation="softmax")(L.Concatenate()([L.GlobalMaxPooling1D()(conv), L.Flatten()(seq)]))
    return keras.Model(ids, out), rng.integers(0, 11, size=(4, 10)).astype(np.int32)


MODELS = {"sequential-conv": _sequential_conv, "functional-cnn-lstm": _functional_cnn_lstm,
          "sequential-normalization": _sequential_normalization, "functional-masking": _functional_masking, "sequential-pooling": _sequential_pooling,
          "functional-masked-pooling": _functional_masked_pooling,
          "sequential-mixed": _sequential_mixed, "sequential-masking": _sequential_masking, "sequential-reshape": _sequential_reshape, "sequential-embedding": _sequential_embedding,
          "functional-seq2seq": _functional_seq2seq, "functional-branches": _functional_branches}


def _randomize(model, rng):
    for w in model.weights:
        value = rng.normal(size=w.shape).astype(np.float32) * 0.5
        if "moving_variance" in w.path:
            value = np.abs(value) + 0.5  # a variance
        w.assign(value)


def _same(a, b):
    if isinstance(a, list):
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    return np.array_equal(a, b)


@pytest.fixture(scope="module", params=sorted(MODELS))
def keras_case(request, keras, tmp_path_factory):
    """A Keras model with random weights, its prediction, and the three files Keras writes for it.

    Module-scoped (Keras is slow to build and save), so it draws its own seed the way the
    `seed` fixture does; the seed is part of the case name every assertion message shows.
    """
    seed = int(os.environ.get("FUSEDLSTM_TEST_SEED", secrets.randbits(32)))
    rng = np.random.default_rng(seed)
    model, x = MODELS[request.param](keras, rng)
    _randomize(model, rng)
    folder = tmp_path_factory.mktemp(request.param)
    paths = {"keras": folder / "m.keras", "weights": folder / "m.weights.h5", "h5": folder / "m.h5"}
    model.save(paths["keras"])
    model.save_weights(paths["weights"])
    model.save(paths["h5"])
    return f"{request.param} (FUSEDLSTM_TEST_SEED={seed})", model, x, model.predict(x, verbose=0), paths


def test_read_keras_written_files(keras_case, kio):
    """Every reader returns Keras's own get_weights() for every layer, bit for bit."""
    name, model, _, _, paths = keras_case
    archive = kio.v3.read_keras_archive(paths["keras"])
    node = archive.model
    assert [n.name for n in kio.wl.keras_layer_order(node)] == [layer.name for layer in model.layers]
    readings = {
        ".keras": archive.weights,
        ".weights.h5": kio.v3.load_keras3_weights_file(paths["weights"], node).weights,
        ".h5 (config)": kio.legacy.read_legacy_h5(paths["h5"]).weights,
        ".h5 (into model)": kio.legacy.read_legacy_h5(paths["h5"], node).weights,
    }
    for what, weights in readings.items():
        for layer in model.layers:
            expected = layer.get_weights()
            got = weights.get(layer.name, [])
            assert len(got) == len(expected), f"{name} {what}: layer {layer.name} has {len(got)} arrays"
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e, err_msg=f"{name} {what}: layer {layer.name}")


def test_keras_loads_what_we_write(keras, keras_case, kio, h5py, tmp_path):
    """Files we write from the parsed model load in Keras and predict exactly as the original."""
    name, model, x, ref, paths = keras_case
    archive = kio.v3.read_keras_archive(paths["keras"])
    node, weights = archive.model, archive.weights
    kio.v3.write_keras_archive(tmp_path / "ours.keras", node, weights)
    kio.v3.save_keras3_weights_file(tmp_path / "ours.weights.h5", node, weights)
    kio.legacy.write_legacy_h5(tmp_path / "ours.h5", node, weights, include_config=True)
    kio.legacy.write_legacy_h5(tmp_path / "ours_weights_only.h5", node, weights, include_config=False)
    loaded = {
        "load_model(.keras)": keras.models.load_model(tmp_path / "ours.keras"),
        "load_model(.h5)": keras.models.load_model(tmp_path / "ours.h5", compile=False),
    }
    for suffix in ("ours.weights.h5", "ours_weights_only.h5"):
        clone = keras.models.clone_model(model)
        clone.load_weights(tmp_path / suffix)
        loaded[f"load_weights({suffix})"] = clone
    for what, m in loaded.items():
        assert _same(m.predict(x, verbose=0), ref), f"{name}: {what} predicts differently"
    # the layout matches Keras's own file group for group
    def tree(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: out.__setitem__(n, (getattr(o, "shape", None), dict(o.attrs))))
        return out
    assert tree(tmp_path / "ours.weights.h5") == tree(paths["weights"])


# ---------------------------------------------------------------------------------------------
# Keras 2 files, written in Keras 2's layout
# ---------------------------------------------------------------------------------------------

def _init(name):
    return {"class_name": name, "config": {"seed": None}}


def _k2_lstm(name, units, *, cudnn=False, batch_input_shape=None, **kw):
    cfg = {"name": name, "trainable": True, "return_sequences": False, "return_state": False,
           "go_backwards": False, "stateful": False, "units": units, "kernel_initializer": _init("VarianceScaling"),
           "recurrent_initializer": _init("Orthogonal"), "bias_initializer": {"class_name": "Zeros", "config": {}},
           "unit_forget_bias": True, "kernel_regularizer": None, "recurrent_regularizer": None,
           "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
           "recurrent_constraint": None, "bias_constraint": None}
    if not cudnn:
        cfg.update(activation="tanh", recurrent_activation="hard_sigmoid", use_bias=True, dropout=0.0,
                   recurrent_dropout=0.0, implementation=1, unroll=False)
    if batch_input_shape is not None:
        cfg.update(batch_input_shape=list(batch_input_shape), dtype="float32")
    cfg.update(kw)
    return {"class_name": "CuDNNLSTM" if cudnn else "LSTM", "config": cfg}


def _k2_dense(name, units, activation="linear"):
    return {"class_name": "Dense", "config": {
        "name": name, "trainable": True, "units": units, "activation": activation, "use_bias": True,
        "kernel_initializer": _init("VarianceScaling"), "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None}}


def _write_keras2_h5(h5py, path, layers, *, model_config=None, version="2.2.4"):
    """layers: [(layer name, [(weight name, array), ...])] in model order, as Keras 2 saved them."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = version.encode()
        f.attrs["backend"] = b"tensorflow"
        if model_config is not None:
            f.attrs["model_config"] = json.dumps(model_config).encode()
            group = f.create_group("model_weights")
        else:
            group = f
        group.attrs["layer_names"] = [name.encode() for name, _ in layers]
        group.attrs["keras_version"] = version.encode()
        group.attrs["backend"] = b"tensorflow"
        for name, weights in sorted(layers):
            g = group.create_group(name)
            g.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for wname, value in weights:
                g.create_dataset(wname, data=value)


def _cudnn_file_weights(torch_lstm):
    """A torch LSTM's weights in the layout Keras 2's CuDNNLSTM stored.

    CuDNNLSTM passed each gate's (I, H) kernel block, flattened row-major, to cuDNN as the
    (H, I) matrix W that cuDNN (and torch: weight_ih) multiplies x by; so the stored block is
    W's row-major data viewed as (I, H). Recurrent blocks are (H, H) = weight_hh's gate blocks
    as they are. The 8H bias is cuDNN's input bias then its recurrent bias.
    """
    H = torch_lstm.hidden_size
    w_ih = torch_lstm.weight_ih_l0.detach().numpy()
    w_hh = torch_lstm.weight_hh_l0.detach().numpy()
    I = w_ih.shape[1]
    kernel = np.hstack([w_ih[g * H:(g + 1) * H].reshape(I, H) for g in range(4)])
    recurrent = np.hstack([w_hh[g * H:(g + 1) * H] for g in range(4)])
    bias = np.concatenate([torch_lstm.bias_ih_l0.detach().numpy(), torch_lstm.bias_hh_l0.detach().numpy()])
    return kernel.astype(np.float32), recurrent.astype(np.float32), bias.astype(np.float32)


def test_cudnnlstm_weights_convert_to_lstm(keras, h5py, kio, tmp_path, seed):
    torch = require("torch", "compare")
    from fusedlstm.io.torch_io import torch_lstm_weights

    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(3, 4)
    kernel, recurrent, bias = _cudnn_file_weights(lstm)
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
        _k2_lstm("cu_dnnlstm_1", 4, cudnn=True, batch_input_shape=(None, 6, 3)), _k2_dense("dense_1", 2)]},
        "keras_version": "2.2.4", "backend": "tensorflow"}
    dense = [("dense_1/kernel:0", np.ones((4, 2), np.float32)), ("dense_1/bias:0", np.zeros(2, np.float32))]
    path = tmp_path / "cudnn.h5"
    _write_keras2_h5(h5py, path, [("cu_dnnlstm_1", [("cu_dnnlstm_1/kernel:0", kernel),
                                                    ("cu_dnnlstm_1/recurrent_kernel:0", recurrent),
                                                    ("cu_dnnlstm_1/bias:0", bias)]),
                                  ("dense_1", dense)], model_config=config)
    got = kio.legacy.read_legacy_h5(path)
    node = got.model.layer("cu_dnnlstm_1")
    assert node.class_name == "LSTM"
    assert (node.args["activation"], node.args["recurrent_activation"]) == ("tanh", "sigmoid")
    assert any("CuDNNLSTM" in n for n in got.notes)
    expected = torch_lstm_weights(lstm)[0]  # kernel = weight_ih.T, bias = b_ih + b_hh
    for g, e, what in zip(got.weights["cu_dnnlstm_1"], expected, ("kernel", "recurrent_kernel", "bias")):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-7, err_msg=f"seed={seed}: {what}")
    # Keras 2's own converter goes the other way too; both directions are inverses.
    back = kio.wl.keras_to_cudnn_lstm(got.weights["cu_dnnlstm_1"])
    np.testing.assert_array_equal(back[0], kernel)
    np.testing.assert_array_equal(back[1], recurrent)


def test_keras2_hard_sigmoid_loads_as_k2(h5py, kio, tmp_path, rng):
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [
        _k2_lstm("lstm_1", 4, batch_input_shape=(None, 5, 3)), _k2_dense("dense_1", 2, "hard_sigmoid")]}}
    arrays = [("lstm_1/kernel:0", rng.normal(size=(3, 16))), ("lstm_1/recurrent_kernel:0", rng.normal(size=(4, 16))),
              ("lstm_1/bias:0", rng.normal(size=16))]
    path = tmp_path / "k2.h5"
    _write_keras2_h5(h5py, path, [("lstm_1", arrays), ("dense_1", [("dense_1/kernel:0", rng.normal(size=(4, 2))),
                                                                  ("dense_1/bias:0", rng.normal(size=2))])],
                     model_config=config, version="2.2.4")
    model = kio.legacy.read_legacy_h5(path).model
    assert model.layer("lstm_1").args["recurrent_activation"] == "hard_sigmoid_k2"
    assert model.layer("dense_1").args["activation"] == "hard_sigmoid_k2"
    assert model.layers[0].class_name == "InputLayer" and model.layers[0].batch_shape == (None, 5, 3)
    # The same name written by Keras 3 means Keras 3's function.
    with h5py.File(path, "a") as f:
        f.attrs["keras_version"] = b"3.15.1"
        f["model_weights"].attrs["keras_version"] = b"3.15.1"
    model3 = kio.legacy.read_legacy_h5(path).model
    assert model3.layer("lstm_1").args["recurrent_activation"] == "hard_sigmoid"
    # and a model holding Keras 2's function cannot be written to a Keras 3 file
    with pytest.raises(ValueError, match="hard_sigmoid_k2.*no equivalent in Keras 3"):
        kio.v3.write_keras_archive(tmp_path / "x.keras", model, {})
    assert not (tmp_path / "x.keras").exists()


@pytest.mark.parametrize("version, warns", [("2.2.4", True), ("2.1.6", True), ("2.3.0", False), ("2.15.0", False)])
def test_weights_only_from_old_keras_warn_about_sigmoid(h5py, kio, tmp_path, rng, version, warns):
    node = kio.mc.parse_model_config(
        {"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 5, 3], "name": "in"}},
            {"class_name": "LSTM", "config": {"name": "lstm", "units": 4}}]}},
        keras_version="3", source="test")
    path = tmp_path / "w.h5"
    _write_keras2_h5(h5py, path, [("lstm_1", [("lstm_1/kernel:0", rng.normal(size=(3, 16))),
                                              ("lstm_1/recurrent_kernel:0", rng.normal(size=(4, 16))),
                                              ("lstm_1/bias:0", rng.normal(size=16))])], version=version)
    if warns:
        with pytest.warns(kio.legacy.LegacyActivationWarning, match=f"Keras {version}.*hard_sigmoid_k2"):
            kio.legacy.read_legacy_h5(path, node)
    else:
        kio.legacy.read_legacy_h5(path, node)  # filterwarnings=error: any warning fails


def test_keras2_functional_seq2seq_layout(h5py, kio, tmp_path, rng):
    """tf.keras 2.x functional config: list-style inbound nodes, initial state appended to the inputs."""
    def inp(name, shape):
        return {"name": name, "class_name": "InputLayer", "inbound_nodes": [],
                "config": {"batch_input_shape": [None] + shape, "dtype": "float32", "sparse": False,
                           "ragged": False, "name": name}}

    enc = _k2_lstm("lstm", 5, return_state=True, recurrent_activation="sigmoid")
    dec = _k2_lstm("lstm_1", 5, return_sequences=True, recurrent_activation="sigmoid")
    # Dense on the 3-D sequence (Keras 3 cannot read a Keras 2 TimeDistributed's nested legacy config)
    dense = _k2_dense("dense", 4, "softmax")
    layers = [inp("input_1", [None, 3]), inp("input_2", [None, 4]),
              dict(enc, name="lstm", inbound_nodes=[[["input_1", 0, 0, {}]]]),
              dict(dec, name="lstm_1", inbound_nodes=[[["input_2", 0, 0, {}], ["lstm", 0, 1, {}], ["lstm", 0, 2, {}]]]),
              dict(dense, name="dense", inbound_nodes=[[["lstm_1", 0, 0, {}]]])]
    config = {"class_name": "Functional", "config": {
        "name": "model", "layers": layers, "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
        "output_layers": [["dense", 0, 0]]}, "keras_version": "2.15.0", "backend": "tensorflow"}

    def lstm_w(prefix, i):
        return [(f"{prefix}/lstm_cell/kernel:0", rng.normal(size=(i, 20)).astype(np.float32)),
                (f"{prefix}/lstm_cell/recurrent_kernel:0", rng.normal(size=(5, 20)).astype(np.float32)),
                (f"{prefix}/lstm_cell/bias:0", rng.normal(size=20).astype(np.float32))]

    weights = [("input_1", []), ("input_2", []), ("lstm", lstm_w("lstm", 3)), ("lstm_1", lstm_w("lstm_1", 4)),
               ("dense", [("dense/kernel:0", rng.normal(size=(5, 4)).astype(np.float32)),
                          ("dense/bias:0", rng.normal(size=4).astype(np.float32))])]
    path = tmp_path / "s2s.h5"
    _write_keras2_h5(h5py, path, weights, model_config=config, version="2.15.0")
    got = kio.legacy.read_legacy_h5(path)
    call = got.model.layer("lstm_1").calls[0]
    assert call.inputs == kio.mc.TensorRef("input_2", 0, 0)
    assert call.initial_state == [kio.mc.TensorRef("lstm", 0, 1), kio.mc.TensorRef("lstm", 0, 2)]
    # (Keras 3.15 itself cannot load this layout: its LSTM refuses the 3-tensor input list.)
    for name, arrays in weights:
        for g, (_, e) in zip(got.weights[name], arrays):
            np.testing.assert_array_equal(g, e, err_msg=name)
    assert [n.name for n in kio.wl.keras_layer_order(got.model)] == [name for name, _ in weights]


def test_keras1_lstm_weights_merge_gates(kio, rng):
    node = kio.mc.LayerNode("LSTM", "lstm", dict(units=2, use_bias=True))
    parts = {g: [rng.normal(size=(3, 2)), rng.normal(size=(2, 2)), rng.normal(size=2)] for g in "icfo"}
    keras1 = [a for g in "icfo" for a in parts[g]]  # Keras 1 order: i, c, f, o
    notes = []
    kernel, recurrent, bias = kio.wl.convert_legacy_layer_weights(node, keras1, "test", notes)
    np.testing.assert_array_equal(kernel, np.hstack([parts[g][0] for g in "ifco"]))
    np.testing.assert_array_equal(recurrent, np.hstack([parts[g][1] for g in "ifco"]))
    np.testing.assert_array_equal(bias, np.concatenate([parts[g][2] for g in "ifco"]))
    assert notes


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------

def _seq_config(*layers):
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 3], "name": "in"}}] + list(layers)}}


@pytest.mark.parametrize("layer, message", [
    ({"class_name": "Lambda", "config": {"name": "lam", "function": {"class_name": "__lambda__",
                                                                       "config": {"code": "4wEAAAAAAAAA"}}}},
     r"layer 'lam' \(Lambda\): fusedlstm has no Lambda layer"),
    ({"class_name": "ConvLSTM1D", "config": {"name": "c", "filters": 3}}, "fusedlstm has no ConvLSTM1D layer"),
    ({"class_name": "GRU", "config": {"name": "g", "units": 3, "recurrent_activation": "softmax"}},
     "recurrent_activation='softmax' is not supported by the GRU kernel"),
    ({"class_name": "SimpleRNN", "config": {"name": "s", "units": 3, "recurrent_regularizer": {
        "class_name": "Spectral", "config": {}}}}, r"layer 's' \(SimpleRNN\): Regularizer class 'Spectral'"),
    ({"class_name": "GRU", "config": {"name": "g", "units": 3, "time_major": True}}, "time_major=True"),
    ({"class_name": "Bidirectional", "config": {"name": "b", "layer": {"class_name": "GRU", "config": {
        "name": "g", "units": 3}}, "backward_layer": {"class_name": "SimpleRNN", "config": {
        "name": "s", "units": 3, "go_backwards": True}}}}, "backward_layer is a SimpleRNN, the forward layer a GRU"),
    ({"module": "my_project.layers", "class_name": "LSTM", "config": {"name": "mine", "units": 3}},
     "module 'my_project.layers'"),
    ({"class_name": "LSTM", "registered_name": "Custom>Thing", "config": {"name": "mine", "units": 3}},
     "registered custom class 'Custom>Thing'"),
    ({"class_name": "LSTM", "config": {"name": "l", "units": 3, "activation": {
        "module": "builtins", "class_name": "function", "config": "my_act", "registered_name": "function"}}},
     r"activation is a custom function \('my_act'\)"),
    ({"class_name": "LSTM", "config": {"name": "l", "units": 3, "recurrent_activation": "softmax"}},
     "recurrent_activation='softmax' is not supported by the LSTM kernel"),
    ({"class_name": "Dense", "config": {"name": "d", "units": 3, "kernel_regularizer": {
        "class_name": "Spectral", "config": {"s": 0.01}}}}, r"layer 'd' \(Dense\): Regularizer class 'Spectral'"),
    ({"class_name": "LSTM", "config": {"name": "l", "units": 3, "kernel_constraint": {
        "module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": 2},
        "registered_name": "mine>MaxNorm"}}}, r"kernel_constraint is the custom object 'mine>MaxNorm'"),
    ({"class_name": "Dense", "config": {"name": "d", "units": 3, "bias_regularizer": {
        "class_name": "L2", "config": {"l3": 0.01}}}}, r"layer 'd' \(Dense\): .*l3"),
    ({"class_name": "LSTM", "config": {"name": "l", "units": 3, "time_major": True}}, "time_major=True"),
    ({"class_name": "LSTM", "config": {"name": "l", "units": 3, "dtype": "float16"}}, "dtype 'float16'"),
    ({"class_name": "LSTM", "config": {"name": "l", "units": 3, "frobnicate": 2}}, "unknown setting frobnicate=2"),
    ({"class_name": "Sequential", "config": {"name": "inner", "layers": []}}, "a model used as a layer"),
])
def test_unsupported_configs_are_refused(kio, layer, message):
    with pytest.raises(ValueError, match=message):
        kio.mc.parse_model_config(_seq_config(layer), keras_version="3.15.1", source="m.keras")


def test_keras3_mask_operations_are_checked(keras, kio):
    """Keras 3 records a propagated mask as NotEqual/Any operations and `mask` call arguments: read
    when they are an Embedding's or Masking's mask, refused otherwise (as any other operation)."""
    L = keras.layers
    ids = keras.Input((5,), dtype="int32")
    model = keras.Model(ids, L.LSTM(3)(L.Embedding(7, 4, mask_zero=True)(ids)))
    cfg = keras.saving.serialize_keras_object(model)
    node = kio.mc.parse_model_config(cfg, keras_version="3.15.1", source="m")
    assert [n.class_name for n in node.layers] == ["InputLayer", "Embedding", "LSTM"]
    emb = next(entry for entry in cfg["config"]["layers"] if entry["class_name"] == "Embedding")
    emb["config"]["mask_zero"] = False  # the recorded mask no longer comes from the model's layers
    with pytest.raises(ValueError, match=r"layer 'lstm\w*' is given a mask computed by 'not_equal\w*' \(NotEqual\), "
                                         "which is not the mask of an Embedding"):
        kio.mc.parse_model_config(cfg, keras_version="3.15.1", source="m")
    x = keras.Input((5, 3))
    with_op = keras.Model(x, L.Dense(2)(keras.ops.abs(x)))
    with pytest.raises(ValueError, match=r"layer 'abs\w*' \(Absolute\) is a keras.ops operation in the graph"):
        kio.mc.parse_model_config(keras.saving.serialize_keras_object(with_op), keras_version="3.15.1", source="m")


def test_keras2_configs_of_the_new_layers(keras, h5py, kio, io_api, tmp_path, rng):
    """tf.keras 2 spellings: LeakyReLU(alpha=), BatchNormalization(axis=[2], fused=...),
    LayerNormalization(axis=[2]), pooling sizes as lists, GlobalAveragePooling1D without keepdims."""
    L = keras.layers
    ref = keras.Sequential([keras.Input((8, 3)), L.BatchNormalization(), L.LeakyReLU(0.1), L.LayerNormalization(),
                            L.MaxPooling1D(2), L.AveragePooling1D(2, strides=1), L.GlobalAveragePooling1D(),
                            L.Dense(2)])
    _randomize(ref, rng)
    bn, _, ln, _, _, _, dense = ref.layers
    layers = [
        {"class_name": "BatchNormalization", "config": {
            "name": "batch_normalization", "trainable": True, "batch_input_shape": [None, 8, 3], "dtype": "float32",
            "axis": [2], "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True, "fused": None,
            "beta_initializer": {"class_name": "Zeros", "config": {}}, "gamma_initializer": {"class_name": "Ones", "config": {}},
            "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
            "moving_variance_initializer": {"class_name": "Ones", "config": {}}, "beta_regularizer": None,
            "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None}},
        {"class_name": "LeakyReLU", "config": {"name": "leaky_re_lu", "trainable": True, "dtype": "float32", "alpha": 0.1}},
        {"class_name": "LayerNormalization", "config": {"name": "layer_normalization", "trainable": True,
                                                        "dtype": "float32", "axis": [2], "epsilon": 0.001,
                                                        "center": True, "scale": True}},
        {"class_name": "MaxPooling1D", "config": {"name": "max_pooling1d", "trainable": True, "dtype": "float32",
                                                  "strides": [2], "pool_size": [2], "padding": "valid",
                                                  "data_format": "channels_last"}},
        {"class_name": "AveragePooling1D", "config": {"name": "average_pooling1d", "trainable": True,
                                                      "dtype": "float32", "strides": [1], "pool_size": [2],
                                                      "padding": "valid", "data_format": "channels_last"}},
        {"class_name": "GlobalAveragePooling1D", "config": {"name": "global_average_pooling1d", "trainable": True,
                                                            "dtype": "float32", "data_format": "channels_last"}},
        _k2_dense("dense", 2)]
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    weights = [("batch_normalization", [(f"batch_normalization/{n}:0", a) for n, a in zip(names, bn.get_weights())]),
               ("leaky_re_lu", []),
               ("layer_normalization", [(f"layer_normalization/{n}:0", a) for n, a in zip(names, ln.get_weights())]),
               ("max_pooling1d", []), ("average_pooling1d", []), ("global_average_pooling1d", []),
               ("dense", [("dense/kernel:0", dense.get_weights()[0]), ("dense/bias:0", dense.get_weights()[1])])]
    path = tmp_path / "k2.h5"
    _write_keras2_h5(h5py, path, weights, model_config=config, version="2.15.0")
    ours = io_api.load_keras_file(path, compile=False)
    x = rng.normal(size=(4, 8, 3)).astype(np.float32)
    assert _max_diff(ours.predict(x, verbose=0), ref.predict(x, verbose=0)) <= PRED_TOL
    assert ours.layers[1].negative_slope == 0.1 and ours.layers[0].axis == 2


def test_subclassed_and_keras1_models_are_refused(kio):
    with pytest.raises(ValueError, match="subclassed model"):
        kio.mc.parse_model_config({"class_name": "MyModel", "config": {"units": 3}}, keras_version="3", source="x")
    with pytest.raises(ValueError, match="Keras 1"):
        kio.mc.parse_model_config(_seq_config(), keras_version="1.2.2", source="x")


def test_lambda_archive_is_refused_without_running_code(keras, kio, tmp_path):
    """A real Keras archive holding a Lambda (marshalled bytecode) is refused by name."""
    L = keras.layers
    model = keras.Sequential([keras.Input((4, 3)), L.LSTM(2), L.Lambda(lambda t: t * 2.0)])
    path = tmp_path / "lam.keras"
    model.save(path)
    with pytest.raises(ValueError, match=r"layer 'lambda\w*' \(Lambda\): fusedlstm has no Lambda layer"):
        kio.v3.read_keras_archive(path)


def test_weights_files_that_do_not_fit_are_refused(keras, kio, tmp_path):
    L = keras.layers
    saved = keras.Sequential([keras.Input((4, 3)), L.LSTM(2), L.Dense(1)])
    saved.save_weights(tmp_path / "a.weights.h5")
    saved.save(tmp_path / "a.h5")

    def node(*layers):
        return kio.mc.parse_model_config(_seq_config(*layers), keras_version="3", source="model")

    extra = node({"class_name": "LSTM", "config": {"name": "l", "units": 2, "return_sequences": True}},
                 {"class_name": "LSTM", "config": {"name": "l2", "units": 2}},
                 {"class_name": "Dense", "config": {"name": "d", "units": 1}})
    with pytest.raises(ValueError, match=r"layer 'l2' \(LSTM\): the file has no weights at 'layers/lstm_1/cell/vars'"):
        kio.v3.load_keras3_weights_file(tmp_path / "a.weights.h5", extra)
    with pytest.raises(ValueError, match="holds weights for 2 layers .* model has 3 layers with weights"):
        kio.legacy.read_legacy_h5(tmp_path / "a.h5", extra)
    fewer = node({"class_name": "LSTM", "config": {"name": "l", "units": 2}})
    with pytest.raises(ValueError, match="holds weights for layers/dense, which the model does not have"):
        kio.v3.load_keras3_weights_file(tmp_path / "a.weights.h5", fewer)
    no_bias = node({"class_name": "LSTM", "config": {"name": "l", "units": 2, "use_bias": False}},
                   {"class_name": "Dense", "config": {"name": "d", "units": 1}})
    with pytest.raises(ValueError, match=r"expected 2 arrays \(kernel, recurrent_kernel\) at 'layers/lstm/cell/vars', "
                                         "found 3"):
        kio.v3.load_keras3_weights_file(tmp_path / "a.weights.h5", no_bias)
    fits = node({"class_name": "LSTM", "config": {"name": "l", "units": 2}},
                {"class_name": "Dense", "config": {"name": "d", "units": 1}})
    kio.legacy.write_legacy_h5(tmp_path / "w.h5", fits, {"l": saved.layers[0].get_weights(),
                                                         "d": saved.layers[1].get_weights()}, include_config=False)
    with pytest.raises(ValueError, match="holds weights only .* model.load_weights"):
        kio.legacy.read_legacy_h5(tmp_path / "w.h5")


def test_external_links_are_refused(h5py, kio, tmp_path, rng):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("k", data=rng.normal(size=(3, 8)))
    path = tmp_path / "linked.weights.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("layers/lstm/cell/vars")
        g["0"] = h5py.ExternalLink(str(other), "k")
        g.create_dataset("1", data=rng.normal(size=(2, 8)))
        g.create_dataset("2", data=rng.normal(size=8))
    node = kio.mc.parse_model_config(_seq_config({"class_name": "LSTM", "config": {"name": "l", "units": 2}}),
                                     keras_version="3", source="m")
    with pytest.raises(ValueError, match="refusing an HDF5 ExternalLink"):
        kio.v3.load_keras3_weights_file(path, node)


def test_not_a_keras_file(kio, h5py, tmp_path):
    bad = tmp_path / "junk.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a Keras archive"):
        kio.v3.read_keras_archive(bad)
    z = tmp_path / "empty.keras"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match="it has no config.json"):
        kio.v3.read_keras_archive(z)


# ---------------------------------------------------------------------------------------------
# Plumbing: atomic writes, the h5py extra
# ---------------------------------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_on_failure(h5py, kio, tmp_path, monkeypatch):
    from fusedlstm.io import _files

    path = tmp_path / "m.keras"
    path.write_bytes(b"the old file")
    node = kio.mc.parse_model_config(_seq_config({"class_name": "Dense", "config": {"name": "d", "units": 1}}),
                                     keras_version="3", source="m")
    with pytest.raises(ValueError, match="expected 2 weight arrays, got 1"):
        kio.v3.write_keras_archive(path, node, {"d": [np.zeros((3, 1))]})
    assert path.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temporary left behind
    kio.v3.write_keras_archive(path, node, {"d": [np.zeros((3, 1)), np.zeros(1)]})
    assert zipfile.is_zipfile(path)
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with _files.atomic_path(tmp_path / "no" / "such.h5"):
            pass


def test_missing_h5py_names_the_extra(kio, monkeypatch):
    from fusedlstm.io import _files

    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'fusedlstm\[h5\]'"):
        _files.require_h5py()


@pytest.mark.parametrize("name, kind", [("a.keras", "keras3_archive"), ("a.weights.h5", "keras3_weights"),
                                        ("A.H5", "legacy_h5"), ("a.hdf5", "legacy_h5")])
def test_file_kind(name, kind):
    from fusedlstm.io._files import file_kind
    assert file_kind(name) == kind


def test_file_kind_refuses_other_suffixes():
    from fusedlstm.io._files import file_kind
    with pytest.raises(ValueError, match=r"expected a name ending in one of .weights.h5, .keras, .hdf5, .h5, got 'm.pt'"):
        file_kind("m.pt")


# ---------------------------------------------------------------------------------------------
# Our models: load_model / save / load_weights through the entry points fusedlstm.saving uses
# ---------------------------------------------------------------------------------------------

PRED_TOL = 1e-5


def _max_diff(a, b):
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def io_api():
    from fusedlstm import io
    return io


def test_load_keras_files_as_our_models(keras_case, io_api):
    """load_model(.keras / .h5) gives our model, predicting what Keras predicts."""
    name, model, x, ref, paths = keras_case
    for what in ("keras", "h5"):
        ours = io_api.load_keras_file(paths[what], compile=False)
        assert type(ours).__name__ == ("Sequential" if name.startswith("sequential") else "Functional"), name
        err = _max_diff(ours.predict(x, verbose=0), ref)
        assert err <= PRED_TOL, f"{name} from .{what}: max diff {err}"


def test_keras_loads_our_saved_models(keras, keras_case, io_api, tmp_path):
    """model.save('x.keras'/'x.h5'), save_weights('x.weights.h5') from our model: Keras loads and agrees."""
    name, model, x, ref, paths = keras_case
    ours = io_api.load_keras_file(paths["keras"], compile=False)
    io_api.save_keras_file(ours, tmp_path / "o.keras")
    io_api.save_keras_file(ours, tmp_path / "o.h5")
    io_api.save_keras_file(ours, tmp_path / "o.weights.h5")
    io_api.save_keras_file(ours, tmp_path / "ow.h5", weights_only=True)
    for what, m in (("o.keras", keras.models.load_model(tmp_path / "o.keras")),
                    ("o.h5", keras.models.load_model(tmp_path / "o.h5", compile=False))):
        assert _same(m.predict(x, verbose=0), ref), f"{name}: Keras on our {what}"
    for suffix in ("o.weights.h5", "ow.h5"):
        clone = keras.models.clone_model(model)
        clone.load_weights(tmp_path / suffix)
        assert _same(clone.predict(x, verbose=0), ref), f"{name}: Keras load_weights({suffix})"
    # and our own model loads the weights files back into a fresh copy of itself
    for suffix in ("o.weights.h5", "ow.h5", "o.keras"):
        fresh = io_api.load_keras_file(paths["keras"], compile=False)
        for layer in fresh.layers:
            if layer.get_weights():
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
        io_api.load_keras_file(tmp_path / suffix, fresh)
        assert _max_diff(fresh.predict(x, verbose=0), ref) <= PRED_TOL, f"{name}: our load_weights({suffix})"


def test_from_keras_and_to_keras(keras, keras_case, io_api):
    name, model, x, ref, _ = keras_case
    ours = io_api.from_keras(model)
    assert _max_diff(ours.predict(x, verbose=0), ref) <= PRED_TOL, name
    back = io_api.to_keras(ours)
    assert _same(back.predict(x, verbose=0), ref), name
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]


def test_misfit_weights_name_layer_and_shapes(keras, io_api, tmp_path):
    from fusedlstm.layers import Dense, Input, LSTM
    from fusedlstm.models import Sequential

    L = keras.layers
    keras.Sequential([keras.Input((4, 3)), L.LSTM(2), L.Dense(1)]).save_weights(tmp_path / "k.weights.h5")
    ours = Sequential([Input((4, 3)), LSTM(5, name="enc"), Dense(1, name="out")])
    before = [w.copy() for w in ours.get_weights()]
    with pytest.raises(ValueError, match=r"layer 'enc' \(LSTM\): weight 'cell/kernel' has shape \(3, 20\) in the "
                                         r"model, \(3, 8\) in the file"):
        io_api.load_keras_file(tmp_path / "k.weights.h5", ours)
    assert all(np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))  # nothing half-loaded
    with pytest.raises(ValueError, match="holds weights only"):
        io_api.load_keras_file(tmp_path / "k.weights.h5")
    with pytest.raises(ValueError, match="ending in one of"):
        io_api.load_keras_file(tmp_path / "k.pickle", ours)


def _adam_pair(keras, tmp_path, rng):
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((5, 3)), L.LSTM(4), L.Dense(3, activation="softmax")])
    kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy",
                   metrics=["accuracy"])
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    return kmodel, x, y


def test_training_resumes_from_a_keras_checkpoint(keras, io_api, tmp_path, rng, seed):
    """Keras trains 5 Adam steps and saves; we load (compiled, optimizer state restored) and
    continue exactly as Keras continues."""
    kmodel, x, y = _adam_pair(keras, tmp_path, rng)
    for _ in range(5):
        kmodel.train_on_batch(x, y)
    kmodel.save(tmp_path / "ckpt.keras")
    ours = io_api.load_keras_file(tmp_path / "ckpt.keras")
    assert ours.optimizer.iterations == 5 and type(ours.optimizer).__name__ == "Adam"
    lk = [float(kmodel.train_on_batch(x, y)[0]) for _ in range(5)]
    lo = [float(np.ravel(ours.train_on_batch(x, y))[0]) for _ in range(5)]
    np.testing.assert_allclose(lo, lk, rtol=1e-4, err_msg=f"seed={seed}")
    for a, b in zip(kmodel.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=f"seed={seed}")


def test_keras_resumes_from_our_checkpoint(keras, io_api, tmp_path, rng, seed):
    """We train 5 Adam steps and save .keras; Keras loads it (no warning: the optimizer state has
    the variables its Adam expects) and continues as we do."""
    kmodel, x, y = _adam_pair(keras, tmp_path, rng)
    ours = io_api.from_keras(kmodel)
    for _ in range(5):
        ours.train_on_batch(x, y)
    io_api.save_keras_file(ours, tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")  # filterwarnings=error: a skipped state fails
    assert int(back.optimizer.iterations.numpy()) == 5
    lo = [float(np.ravel(ours.train_on_batch(x, y))[0]) for _ in range(5)]
    lk = [float(back.train_on_batch(x, y)[0]) for _ in range(5)]
    np.testing.assert_allclose(lk, lo, rtol=1e-4, err_msg=f"seed={seed}")


def test_unsupported_compile_config_warns_and_leaves_model_uncompiled(keras, io_api, tmp_path):
    L = keras.layers
    kmodel = keras.Sequential([keras.Input((5, 3)), L.LSTM(4), L.Dense(1)])
    kmodel.compile(optimizer=keras.optimizers.Adafactor(), loss="mse")
    kmodel.save(tmp_path / "adafactor.keras")
    with pytest.warns(io_api.KerasCompatibilityWarning, match="not compiled .*Adafactor"):
        ours = io_api.load_keras_file(tmp_path / "adafactor.keras")
    assert not ours.compiled
    assert io_api.load_keras_file(tmp_path / "adafactor.keras", compile=False).compiled is False


def test_skip_mismatch_skips_only_the_misfit_layer(keras, io_api, tmp_path):
    from fusedlstm.layers import Dense, Input, LSTM
    from fusedlstm.models import Sequential

    L = keras.layers
    saved = keras.Sequential([keras.Input((4, 3)), L.LSTM(2), L.Dense(1)])
    saved.save_weights(tmp_path / "k.weights.h5")
    ours = Sequential([Input((4, 3)), LSTM(2, name="enc"), Dense(3, name="out")])
    dense_before = ours.get_layer("out").get_weights()
    with pytest.warns(io_api.KerasCompatibilityWarning,
                      match=r"skipping layer 'out'.*'kernel' has shape \(2, 3\) in the model, \(2, 1\) in the file"):
        io_api.load_keras_file(tmp_path / "k.weights.h5", ours, skip_mismatch=True)
    for a, b in zip(ours.get_layer("enc").get_weights(), saved.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ours.get_layer("out").get_weights(), dense_before):
        np.testing.assert_array_equal(a, b)
