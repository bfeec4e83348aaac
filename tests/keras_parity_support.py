"""Run one model in Keras 3 (torch backend) and in fusedlstm from the same weights; compare.

A case is a builder `build(lib) -> model` written once against a namespace `lib`
with `layers`, `Sequential`, `Model`, `Input`, `optimizers` — Keras's or ours —
so both libraries get the very same architecture. `lib.layers` names every layer
it creates ('lstm_0', 'dense_1', ... in creation order), so weights are copied
layer by layer by name, never by position in two differently ordered lists.

Gradients are observed the same way on both sides: an optimizer whose update is
replaced by a recorder sees exactly what one train_on_batch computes (Keras-torch:
`loss.backward()` in TorchTrainer.train_step; ours: the flat gradient the engine
hands to `apply_flat`, read back per variable through `Variable.grad`), and the
weights stay unchanged.

Tolerances (float32 on both sides, different summation orders):
  predictions, losses:    max |keras - ours| <= 1e-5 (losses relative to max(1, |loss|))
  gradients:              max |keras - ours| <= 1e-5 * max(1, max |keras grad|) per array
  20 training steps:      every loss and the final weights within 1e-4 relative
"""

import os
import re
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

PRED_TOL = 1e-5
LOSS_TOL = 1e-5
GRAD_TOL = 1e-5
TRAIN_TOL = 1e-4

# Keras 3.15's torch backend calls np.array on its variables, whose __array__ predates
# NumPy 2's copy= keyword; the DeprecationWarning comes from inside Keras.
KERAS_WARNINGS = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


def _snake(name):
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


class NamedLayers:
    """`lib.layers` whose constructors name layers '<class>_<n>' in creation order."""

    def __init__(self, module):
        self._module = module
        self._count = 0

    def __getattr__(self, cls_name):
        factory = getattr(self._module, cls_name)
        if cls_name in ("Input",) or not isinstance(factory, type):
            return factory

        def make(*args, **kwargs):
            if "name" not in kwargs:
                kwargs["name"] = f"{_snake(cls_name)}_{self._count}"
                self._count += 1
            return factory(*args, **kwargs)

        return make


def keras_lib(keras):
    return SimpleNamespace(name="keras", layers=NamedLayers(keras.layers), Sequential=keras.Sequential,
                           Model=keras.Model, Input=keras.Input, optimizers=keras.optimizers, raw=keras)


def ours_lib():
    import fusedlstm.layers
    import fusedlstm.models
    import fusedlstm.optimizers

    return SimpleNamespace(name="fusedlstm", layers=NamedLayers(fusedlstm.layers),
                           Sequential=fusedlstm.models.Sequential, Model=fusedlstm.models.Model,
                           Input=fusedlstm.layers.Input, optimizers=fusedlstm.optimizers, raw=fusedlstm)


def randomize(model, rng, scale=0.5):
    """Uniform(-scale, scale) weights: gates leave their linear range, biases are not zero."""
    for layer in model.layers:
        arrays = layer.get_weights()
        if arrays:
            layer.set_weights([rng.uniform(-scale, scale, size=a.shape).astype(np.float32) for a in arrays])


def copy_weights(kmodel, ours):
    for layer in kmodel.layers:
        arrays = layer.get_weights()
        if arrays:
            ours.get_layer(layer.name).set_weights(arrays)


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)))) if np.size(p) else 0.0
               for p, q in zip(as_list(a), as_list(b)))


# RMSprop at Keras's default 1e-3: at 1e-2 its update lr·g/sqrt(s + 1e-7) turns some
# trajectories unstable, where Keras against itself with one weight moved by one ulp drifts
# apart 2.6x per step (docs/keras-parity.md); at 1e-3 the same runs stay within 1e-6.
LEARNING_RATES = {"adam": 1e-2, "sgd": 1e-2, "rmsprop": 1e-3}


def make_optimizer(lib, kind, lr=None):
    lr = LEARNING_RATES[kind] if lr is None else lr
    if kind == "adam":
        return lib.optimizers.Adam(learning_rate=lr)
    if kind == "sgd":
        return lib.optimizers.SGD(learning_rate=lr, momentum=0.9)
    if kind == "rmsprop":
        return lib.optimizers.RMSprop(learning_rate=lr)
    raise ValueError(kind)


def trainable_pairs(kmodel, ours):
    """[(keras variable, our Variable, label)] for every trainable weight, matched by layer name."""
    out = []
    for layer in kmodel.layers:
        kvars = list(layer.trainable_weights)
        if not kvars:
            continue
        ovars = list(ours.get_layer(layer.name).trainable_weights)
        assert len(kvars) == len(ovars), f"layer {layer.name}: {len(kvars)} vs {len(ovars)} trainable weights"
        for k, o in zip(kvars, ovars):
            assert tuple(k.shape) == tuple(o.shape), f"{layer.name}: {k.shape} vs {o.shape}"
            out.append((k, o, f"{layer.name}/{k.name}"))
    return out


def keras_gradients(kmodel, x, y, sample_weight=None):
    """(loss, {variable path: gradient}) of one Keras train_on_batch, weights left unchanged."""
    seen = {}

    def record(grads, variables):
        for g, v in zip(grads, variables):
            seen[v.path] = np.zeros(v.shape, np.float32) if g is None else g.detach().cpu().numpy().copy()

    kmodel.optimizer.apply = record
    loss = kmodel.train_on_batch(x, y, sample_weight=sample_weight)
    del kmodel.optimizer.apply
    return float(as_list(loss)[0]), seen


def our_gradients(model, x, y, sample_weight=None):
    """(loss, {id(variable): gradient}) of one of our train_on_batch, weights left unchanged."""
    opt = model.optimizer
    opt.apply_flat = lambda w, g, segments=(): None
    model._apply_constraints = lambda store: None  # Keras's recorder skips them too (they follow apply)
    try:
        loss = model.train_on_batch(x, y, sample_weight=sample_weight)
    finally:
        del opt.apply_flat
        del model._apply_constraints
    return float(as_list(loss)[0]), {id(v): np.array(v.grad, copy=True) for v in model.trainable_weights}


class Pair:
    """A Keras model and ours built by the same builder, with identical weights."""

    def __init__(self, keras, build, rng, scale=0.5):
        self.keras_lib, self.ours_lib = keras_lib(keras), ours_lib()
        self.k = build(self.keras_lib)
        self.o = build(self.ours_lib)
        randomize(self.k, rng, scale)
        copy_weights(self.k, self.o)

    def compile(self, loss, optimizer="adam", lr=None, **kw):
        self.k.compile(optimizer=make_optimizer(self.keras_lib, optimizer, lr), loss=loss, **kw)
        self.o.compile(optimizer=make_optimizer(self.ours_lib, optimizer, lr), loss=loss, **kw)
        return self


def check_predictions(pair, x, what, batch_size=None):
    pk = pair.k.predict(x, verbose=0, batch_size=batch_size)
    po = pair.o.predict(x, verbose=0, batch_size=batch_size)
    assert [np.shape(a) for a in as_list(pk)] == [np.shape(a) for a in as_list(po)], what
    err = max_diff(pk, po)
    assert err <= PRED_TOL, f"{what}: predictions differ by {err:.3g} (> {PRED_TOL})"
    return err


def check_loss_and_gradients(pair, x, y, what, sample_weight=None):
    lk, gk = keras_gradients(pair.k, x, y, sample_weight)
    lo, go = our_gradients(pair.o, x, y, sample_weight)
    loss_err = abs(lk - lo) / max(1.0, abs(lk))
    assert loss_err <= LOSS_TOL, f"{what}: loss keras {lk!r} vs ours {lo!r} (rel {loss_err:.3g})"
    worst = 0.0
    for kv, ov, label in trainable_pairs(pair.k, pair.o):
        a, b = gk[kv.path], go[id(ov)]
        scale = max(1.0, float(np.max(np.abs(a))))
        err = float(np.max(np.abs(a - b))) / scale
        assert err <= GRAD_TOL, f"{what}: gradient of {label} differs by {err:.3g} relative (> {GRAD_TOL})"
        worst = max(worst, err)
    return loss_err, worst


def train_steps(pair, x, y, steps=20, sample_weight=None):
    """Loss curves of `steps` train_on_batch calls on both models, and the final weight error."""
    lk, lo = [], []
    for _ in range(steps):
        lk.append(float(as_list(pair.k.train_on_batch(x, y, sample_weight=sample_weight))[0]))
        lo.append(float(as_list(pair.o.train_on_batch(x, y, sample_weight=sample_weight))[0]))
    lk, lo = np.array(lk), np.array(lo)
    loss_err = float(np.max(np.abs(lk - lo) / np.maximum(np.abs(lk), 1e-3)))
    w_err = 0.0
    for layer in pair.k.layers:
        if not layer.weights:  # Input layers: auto-named from counters the two libraries keep apart
            continue
        for a, b in zip(layer.get_weights(), pair.o.get_layer(layer.name).get_weights()):
            w_err = max(w_err, float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-3)))
    return lk, lo, loss_err, w_err


# ---------------------------------------------------------------------------------------------
# Files both ways: Keras writes / we read, we write / Keras reads
# ---------------------------------------------------------------------------------------------

def keras_file_into_ours(km, make, path):
    """Save the Keras model `km` to `path` (by its suffix) and read it back as ours. A weights-only
    file goes into `make()`'s architecture converted by from_keras, so the file carries the weights."""
    import fusedlstm
    from fusedlstm.io import from_keras

    if str(path).endswith(".weights.h5"):
        km.save_weights(path)
        ours = from_keras(make())  # same architecture, other weights
        ours.load_weights(path)
        return ours
    km.save(path)
    return fusedlstm.models.load_model(path)


def our_file_into_keras(keras, ours, make, path, rng):
    """Give `ours` fresh weights, save it to `path` (by its suffix) and read it back in Keras
    (weights-only files into `make()`'s architecture)."""
    for layer in ours.layers:  # new weights on our side, so the file is what carries them
        arrays = layer.get_weights()
        if arrays:
            layer.set_weights([rng.uniform(-0.5, 0.5, a.shape).astype(np.float32) for a in arrays])
    if str(path).endswith(".weights.h5"):
        ours.save_weights(path)
        back = make()
        back.load_weights(path)
        return back
    ours.save(path)
    return keras.models.load_model(path, compile=False)
