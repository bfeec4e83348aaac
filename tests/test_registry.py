"""One registry of classes by name (fusedlstm.registry), Keras's serialization names in
fusedlstm.saving, and get(identifier) in every module that resolves names."""

import numpy as np
import pytest

from fusedlstm import activations, initializers, losses, metrics, optimizers, registry, saving
from fusedlstm.layers import LSTM, Bidirectional, Dense, Embedding, Input, TimeDistributed, deserialize, serialize
from fusedlstm.models import Model, Sequential, load_model
from fusedlstm.utils import set_random_seed


def test_every_kind_resolves_its_classes_by_name():
    assert registry.lookup("layers", "LSTM") is LSTM
    assert registry.lookup("models", "Sequential") is Sequential
    assert registry.lookup("models", "Functional") is Model and registry.lookup("models", "Model") is Model
    assert registry.lookup("losses", "mse") is losses.MeanSquaredError
    assert registry.lookup("metrics", "MeanSquaredError") is metrics.MeanSquaredError  # same name, other kind
    assert registry.lookup("optimizers", "adam") is optimizers.Adam
    assert registry.lookup("initializers", "glorot_uniform") is initializers.GlorotUniform
    assert registry.lookup("activations", "swish") is activations.silu
    assert registry.lookup("layers", "ConvLSTM1D") is None
    assert "LSTM" in registry.names("layers") and "Sequential" not in registry.names("layers")


def test_registered_names_are_what_configs_store():
    assert registry.registered_name(LSTM(2)) == "LSTM"
    assert registry.registered_name(optimizers.Adam()) == "Adam"
    assert registry.registered_name(activations.tanh) == "tanh"
    d = Dense(3)
    assert serialize(d) == {"class_name": "Dense", "config": d.get_config()}
    assert saving.serialize_keras_object([activations.relu, None, 2]) == ["relu", None, 2]
    with pytest.raises(ValueError, match="already taken"):
        registry.register("layers", name="LSTM")(type("Other", (), {}))


@pytest.mark.parametrize("module, identifier, cls", [
    (losses, {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True, "name": "xe"}},
     losses.CategoricalCrossentropy),
    (optimizers, {"class_name": "SGD", "config": {"learning_rate": 0.5, "momentum": 0.9}}, optimizers.SGD),
    (initializers, {"class_name": "Orthogonal", "config": {"gain": 2.0}}, initializers.Orthogonal),
])
def test_get_takes_a_config_dict(module, identifier, cls):
    obj = module.get(identifier)
    assert type(obj) is cls
    assert module.serialize(obj)["class_name"] == identifier["class_name"]
    again = module.get(module.serialize(obj))
    assert again.get_config() == obj.get_config()


def test_metrics_and_activations_take_config_dicts():
    m = metrics.get({"class_name": "SparseCategoricalAccuracy", "config": {"name": "acc2"}}, (4,), (4, 3))
    assert type(m) is metrics.SparseCategoricalAccuracy and m.name == "acc2"
    assert activations.get({"module": "keras.activations", "class_name": "function", "config": "tanh"}) is activations.tanh


@pytest.mark.parametrize("call, exc, match", [
    (lambda: losses.get({"class_name": "Dice", "config": {}}), NotImplementedError, "Loss class 'Dice'"),
    (lambda: optimizers.get({"class_name": "Adafactor", "config": {}}), NotImplementedError,
     "Optimizer class 'Adafactor'"),
    (lambda: metrics.get({"class_name": "PearsonCorrelation", "config": {}}, (2,), (2, 1)), NotImplementedError,
     "Metric class 'PearsonCorrelation'"),
    (lambda: deserialize({"class_name": "Lambda", "config": {}}), NotImplementedError, "Layer class 'Lambda'"),
    (lambda: saving.deserialize_keras_object({"class_name": "Nope", "config": {}}, kind="layers"),
     NotImplementedError, "Layer class 'Nope'"),
])
def test_unknown_classes_are_refused_by_name(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_keras_names_register_and_find_user_objects():
    @saving.register_keras_serializable(package="tests_registry")
    class Scaled(initializers.Initializer):
        def __init__(self, k=1.0):
            super().__init__()
            self.k = k

        def get_config(self):
            return {"k": self.k}

        def __call__(self, shape, dtype="float32"):
            return np.full(shape, self.k, dtype)

    assert saving.get_registered_name(Scaled) == "tests_registry>Scaled"
    assert saving.get_registered_object("tests_registry>Scaled") is Scaled
    cfg = saving.serialize_keras_object(Scaled(3.0))
    assert cfg == {"class_name": "tests_registry>Scaled", "config": {"k": 3.0}}
    back = saving.deserialize_keras_object(cfg)
    assert type(back) is Scaled and back.k == 3.0
    layer = Dense(2, kernel_initializer=initializers.get(cfg))
    layer.build((None, 3))
    assert np.all(layer.kernel.value == 3.0)


def test_wrappers_rebuild_their_layers_through_the_registry():
    td = TimeDistributed(Dense(4, activation="softmax"), name="td")
    bi = Bidirectional(LSTM(3, return_sequences=True), merge_mode="sum", name="bi")
    for layer in (td, bi):
        again = deserialize(serialize(layer))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_models_describe_themselves_and_rebuild_from_the_description(rng):
    set_random_seed(4)
    ids = Input((6,), dtype="int32")
    h, c = LSTM(5, return_state=True)(Embedding(9, 4, mask_zero=True)(ids))[1:]
    out = Dense(3)(LSTM(5)(Embedding(9, 4)(ids), initial_state=[h, c]))
    model = Model(ids, out)
    again = Model.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    again.set_weights(model.get_weights())
    x = rng.integers(0, 9, (4, 6))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    seq = Sequential([Input((7, 2)), LSTM(4), Dense(1)])
    seq_again = Sequential.from_config(seq.get_config())
    assert seq_again.get_config() == seq.get_config()


def test_compile_config_round_trips_loss_and_metric_objects(tmp_path, rng):
    """A Loss object inside a per-output list, and a metric object, survive save and load."""
    inp = Input((4, 3))
    h = LSTM(5)(inp)
    m = Model(inp, [Dense(3, activation="softmax")(h), Dense(1)(h)])
    m.compile("adam", loss=["sparse_categorical_crossentropy", losses.MeanAbsoluteError(name="l1")],
              loss_weights=[1.0, 0.25], metrics=[[metrics.SparseCategoricalAccuracy(name="hit")], ["mae"]])
    x = rng.standard_normal((8, 4, 3)).astype("float32")
    y = [rng.integers(0, 3, 8), rng.standard_normal((8, 1)).astype("float32")]
    m.train_on_batch(x, y)
    cc = m.get_compile_config()
    assert cc["loss"][1] == {"class_name": "MeanAbsoluteError", "config": {"name": "l1", "reduction": "sum_over_batch_size"}}
    assert cc["metrics"][0][0]["class_name"] == "SparseCategoricalAccuracy"
    path = tmp_path / "m.fusedlstm"
    m.save(path)
    back = load_model(path)
    assert back.get_compile_config() == cc
    assert back.train_on_batch(x, y, return_dict=True).keys() == m.train_on_batch(x, y, return_dict=True).keys()


def test_a_layer_that_cannot_be_built_is_named():
    cfg = {"name": "s", "layers": [{"class_name": "Dense", "config": {"name": "head", "units": 0}}],
           "batch_input_shape": [None, 3], "input_dtype": "float32"}
    with pytest.raises(ValueError, match=r"layer 'head' \(Dense\): .*`units`.*got 0"):
        Sequential.from_config(cfg)
