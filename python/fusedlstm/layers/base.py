"""Layer base class, weights, symbolic tensors and the forward/backward protocol.

A layer here is two things at once:

* the Keras-facing object: constructor arguments with Keras 3 names, `build`,
  `compute_output_shape`, `get_weights`/`set_weights`, `get_config`, and
  `__call__` on symbolic `KerasTensor`s (functional API) or on NumPy arrays
  (eager: one inference forward);
* an engine step with `_fwd(inputs, masks, training, ctx)` and
  `_bwd(cache, douts, need, ctx)` over whole arrays, which the models chain in a
  precomputed plan. All heavy work inside them is one C++ kernel call (LSTM,
  GEMM) or one vectorised NumPy pass; nothing loops over time steps in Python.

Weights are `Variable`s (fusedlstm.variables) whose `.value` is a NumPy array. A
model that trains rebinds every trainable variable to a view into one flat float
buffer (and `.grad` to a view into one flat gradient buffer) so the optimizer
updates all weights in one kernel call; the layer itself never caches the arrays,
it reads `var.value` on each call, which is what lets several models share a layer.
"""

import itertools
import re
import threading

import numpy as np

from .. import constraints as _constraints
from .. import dtype_policies as _policies
from .. import initializers as _inits
from .. import regularizers as _regularizers
from .. import untrusted, utils
from ..validation import check_finite, check_numeric
from ..variables import Variable, bump_generation, note_write

__all__ = ["Layer", "Variable", "KerasTensor", "Node", "clear_session"]

_uid_lock = threading.Lock()
_uids = {}


def to_snake_case(name):
    """Keras's layer-name rule: LSTM -> lstm, TimeDistributed -> time_distributed."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """'lstm', then 'lstm_1', 'lstm_2'... per base name, as Keras names layers."""
    with _uid_lock:
        n = _uids.get(base, 0)
        _uids[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def clear_session():
    """Reset the automatic layer/model names (keras.backend.clear_session)."""
    with _uid_lock:
        _uids.clear()


class KerasTensor:
    """A symbolic tensor of the functional API: a shape (None = unknown) and a dtype."""

    __slots__ = ("shape", "dtype", "_keras_history", "name")

    def __init__(self, shape, dtype="float32", history=None, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self._keras_history = history  # (layer, node, index)
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "A symbolic KerasTensor has no value: it only describes a model's graph. Build a "
            "Model(inputs, outputs) and call predict() on data instead.")

    def _unsupported(self, *args):
        raise NotImplementedError(
            "Arithmetic on symbolic tensors is not supported by fusedlstm; use layers "
            "(e.g. Add, Concatenate) to combine tensors.")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _unsupported
    __getitem__ = _unsupported


class Node:
    """One call of a layer on symbolic tensors: the graph's edge list."""

    __slots__ = ("layer", "inputs", "outputs", "training", "n_state")

    def __init__(self, layer, inputs, outputs, training=None, n_state=0):
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self.training = training
        self.n_state = n_state


class Context:
    """Per-call state of the engine: training flag, gradient stamp, the weight-gradient
    sink and the random stream dropout draws from.

    Each step writes a variable's gradient with add_grad/grad_out: the first write in a
    step (stamp) overwrites, later ones (a layer used twice) accumulate. A fresh Context
    is made per call, so concurrent predict() calls never share one.

    `rng`: the Generator that layers without their own `seed=` draw dropout masks from
    in this call; None means the library's stream (fusedlstm.utils). A data-parallel
    step passes each rank's own stream here.

    `penalty`: the sum of the activity regularizers' penalties of this call, when the
    caller asks for it (a float to add to; None: not computed).
    """

    __slots__ = ("training", "want_grads", "stamp", "rng", "penalty")
    # next() on itertools.count is atomic under the GIL: unique stamps without a lock.
    _stamps = itertools.count(1)

    def __init__(self, training=False, want_grads=False, rng=None, penalty=None):
        self.training = training
        self.want_grads = want_grads
        self.stamp = next(Context._stamps)
        self.rng = rng
        # The activity penalties of this call, summed (None: not computed, as in predict).
        self.penalty = penalty

    def generator(self, own=None):
        """The Generator a layer draws from: its own (`seed=`), this call's, or the library's."""
        if own is not None:
            return own
        return self.rng if self.rng is not None else utils._global_rng()

    def add_grad(self, var, g):
        dst = var.grad
        if dst is None:
            return
        if var._gstamp == self.stamp:
            np.add(dst, g, out=dst)
        else:
            np.copyto(dst, g)
            var._gstamp = self.stamp

    def grad_out(self, var):
        """(buffer, accumulate) for kernels that write a gradient in place, or (None, False)."""
        dst = var.grad
        if dst is None:
            return None, False
        acc = var._gstamp == self.stamp
        var._gstamp = self.stamp
        return dst, acc


def _check_none(layer_cls, **kw):
    """Keras arguments we accept only at their default (None): anything else is refused."""
    for k, v in kw.items():
        if v is not None:
            raise NotImplementedError(
                f"{layer_cls}: argument `{k}`={v!r} is not supported by fusedlstm (only None).")


def _layer_policy(dtype):
    """The DTypePolicy of a layer given `dtype` (None: the global policy). Something that is
    no dtype at all is a TypeError naming the argument (Keras: ValueError from the policy);
    a dtype we have no kernels for is NotImplementedError, from DTypePolicy."""
    try:
        return _policies.get(dtype)
    except (TypeError, ValueError):
        raise TypeError(
            "Received an invalid value for argument `dtype`, expected 'float32', 'mixed_bfloat16', "
            f"'float64' or a DTypePolicy, got {dtype!r}.") from None


def assign_weights(params, weights, owner, label):
    """set_weights for a layer or a model: check the count, every shape and dtype, then
    assign, so a bad list changes nothing. `owner` ("layer 'lstm'") and the Variable
    attribute `label` ('name' or 'path') name things in the messages."""
    if isinstance(weights, (str, bytes, np.ndarray)) or not hasattr(weights, "__iter__"):
        raise TypeError(
            f"Received an invalid value for argument `weights`, expected a list of arrays (one per "
            f"weight of {owner}), got {type(weights).__name__}.")
    weights = list(weights)
    if len(weights) != len(params):
        raise ValueError(
            f"You called `set_weights(weights)` on {owner} with a weight list of length "
            f"{len(weights)}, but the {owner.split()[0]} was expecting {len(params)} weights "
            f"({[getattr(v, label) for v in params]}).")
    arrays = []
    for p, w in zip(params, weights):
        a = np.asarray(w)
        name = getattr(p, label)
        if a.shape != p.shape:
            raise ValueError(f"{owner[0].upper() + owner[1:]}: weight '{name}' has shape {p.shape}; the "
                             f"value given has shape {a.shape}.")
        check_numeric(a, f"{owner[0].upper() + owner[1:]}: the value for weight '{name}'")
        arrays.append(a)
    for p, a in zip(params, arrays):
        p._write(a)

class Layer:
    """Base of every fusedlstm layer (keras.layers.Layer's public surface)."""

    # Whether a mask on the (first) input passes through to the output unchanged.
    supports_masking = False
    # Layers whose first input is integer token ids (Embedding): models keep ints for them.
    _takes_ids = False

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, batch_size=None, input_dim=None, input_length=None,
                 weights=None, autocast=True, activity_regularizer=None, dynamic=False, **kwargs):
        if kwargs:
            raise TypeError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Received an invalid value for argument `name`, expected a string, got {name!r}.")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._trainable = bool(trainable)
        self._dtype_policy = _layer_policy(dtype)
        # The weights' dtype (Keras 3's layer.dtype is the variable dtype; float32 under mixed_bfloat16).
        self.dtype = self._dtype_policy.variable_dtype
        self.built = False
        self._variables = []
        self._inbound_nodes = []
        self._initial_weights = weights
        # Keras 2 spellings of the first layer's input shape.
        if batch_input_shape is None and input_shape is None and input_dim is not None:
            input_shape = (input_length, input_dim) if input_length is not None or self._is_rnn() else (input_dim,)
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        else:
            self._batch_input_shape = None
        self._batch_size_hint = batch_size
        # Penalty on the layer's outputs, added to the training loss divided by the batch size.
        self.activity_regularizer = _regularizers.get(activity_regularizer, "activity_regularizer")
        self._option_args = []

    def _weight_options(self, **options):
        """Declare the layer's per-weight regularizer and constraint arguments (Keras names,
        `<weight>_regularizer` / `<weight>_constraint`): each is resolved (by name, config
        or object), kept as an attribute of that name, written by get_config when set, and
        handed to add_weight(regularizer=, constraint=) by the layer for its weight.

            self._weight_options(kernel_regularizer=kernel_regularizer, kernel_constraint=...)
            ...
            self.add_weight("kernel", shape, init, regularizer=self.kernel_regularizer,
                            constraint=self.kernel_constraint)
        """
        for arg, value in options.items():
            if arg.endswith("_regularizer"):
                obj = _regularizers.get(value, arg)
            elif arg.endswith("_constraint"):
                obj = _constraints.get(value, arg)
            else:
                raise ValueError(f"_weight_options takes *_regularizer and *_constraint arguments, got {arg!r}.")
            setattr(self, arg, obj)
            if arg not in self._option_args:
                self._option_args.append(arg)

    def _is_rnn(self):
        return False

    # --- dtype policy -------------------------------------------------------------------

    @property
    def dtype_policy(self):
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value):
        policy = _layer_policy(value)
        if self.built and policy.variable_dtype != self.dtype:
            raise ValueError(
                f"Layer '{self.name}' is built with {self.dtype} weights; its dtype policy cannot change to "
                f"{policy.name!r}, whose variables are {policy.variable_dtype}.")
        if self.built and policy.name != self._dtype_policy.name:
            # Another compute precision gives other numbers from the same weights: what is
            # kept from them (packings, tables, a Stream's kernel) is stale, as after a write.
            note_write()
        self._dtype_policy = policy
        self.dtype = policy.variable_dtype

    @property
    def compute_dtype(self):
        """'bfloat16' under mixed_bfloat16: the layers with a bfloat16 kernel round their GEMM
        operands to it (their outputs are float32 arrays; see fusedlstm.dtype_policies)."""
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self):
        return self.dtype

    @property
    def _precision(self):
        """The `precision=` of this layer's _core GEMM calls."""
        return _policies.kernel_precision(self._dtype_policy)

    # --- weights --------------------------------------------------------------------

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self._sublayers():
            layer.trainable = value
        # Models re-check their flat parameter store and gradient plan on the next step.
        bump_generation()

    def _sublayers(self):
        return []

    def add_weight(self, name, shape, initializer="zeros", trainable=True, dtype=None, regularizer=None,
                   constraint=None):
        """A new weight (keras.layers.Layer.add_weight): `regularizer` adds its penalty to the
        training loss, `constraint` is applied after every optimizer update."""
        # A plain function (LSTM's unit_forget_bias initializer) is called as is.
        plain_fn = callable(initializer) and not isinstance(initializer, _inits.Initializer)
        init = initializer if plain_fn else _inits.get(initializer)
        # A model built from a file's config may not allocate more than the file holds.
        untrusted.charge_weight(tuple(shape), np.dtype(dtype or self.dtype).itemsize, f"{self.name}/{name}")
        value = np.ascontiguousarray(init(tuple(shape), dtype or self.dtype), dtype=dtype or self.dtype)
        if value.shape != tuple(shape):
            raise ValueError(f"Initializer for {self.name}/{name} returned shape {value.shape}, expected {tuple(shape)}.")
        var = Variable(name, value, trainable=trainable, path=f"{self.name}/{name}",
                       regularizer=_regularizers.get(regularizer, f"{name}_regularizer"),
                       constraint=_constraints.get(constraint, f"{name}_constraint"))
        self._variables.append(var)
        return var

    @property
    def weights(self):
        out = list(self._variables)
        for layer in self._sublayers():
            out.extend(layer.weights)
        return out

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        out = [v for v in self._variables if v.trainable]
        for layer in self._sublayers():
            out.extend(layer.trainable_weights)
        return out

    @property
    def non_trainable_weights(self):
        ids = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in ids]

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    @property
    def losses(self):
        """The penalties of the regularizers on this layer's trainable weights, as floats
        (keras's `layer.losses`, less the activity penalties of a last call)."""
        return [v.regularizer(v.value) for v in self.trainable_weights if v.regularizer is not None]

    def get_weights(self):
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights):
        assign_weights(self.weights, weights, f"layer '{self.name}'", "name")

    def count_params(self):
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                "built. You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(v.value.size for v in self.weights))

    # --- building --------------------------------------------------------------------

    def build(self, input_shape):
        self.built = True

    def _build_from_shapes(self, shapes):
        """Build from the shapes of every call input (the first is the main input)."""
        if not self.built:
            self.build(shapes[0])
            self.built = True
            if self._initial_weights is not None:
                w, self._initial_weights = self._initial_weights, None
                self.set_weights(w)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _output_shapes(self, shapes):
        out = self.compute_output_shape(shapes[0])
        return [tuple(out)]

    def _output_dtypes(self, dtypes):
        return [self.dtype] * self._n_outputs()

    def _n_outputs(self):
        return 1

    def _check_input_shapes(self, shapes):
        """Raise ValueError for an input this layer cannot take (rank, fixed sizes)."""

    # --- calling -----------------------------------------------------------------------

    def _flatten_call(self, inputs, initial_state):
        """The flat list of tensors one call consumes, in _fwd order, and the state count."""
        if initial_state is not None:
            raise NotImplementedError(f"{type(self).__name__} does not take `initial_state`.")
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError(
                    f"Layer '{self.name}' expects 1 input, but it received {len(inputs)} input tensors.")
            inputs = inputs[0]
        return [inputs], 0

    def _pack_outputs(self, outs):
        return outs[0] if len(outs) == 1 else list(outs)

    def __call__(self, *args, **kwargs):
        if args:
            inputs, rest = args[0], args[1:]
            if rest:
                raise TypeError(f"{type(self).__name__}.__call__ takes one positional argument (inputs), got {len(args)}.")
        elif "inputs" in kwargs:
            inputs = kwargs.pop("inputs")
        else:
            raise TypeError(f"{type(self).__name__}.__call__ is missing the `inputs` argument.")
        initial_state = kwargs.pop("initial_state", None)
        training = kwargs.pop("training", None)
        mask = kwargs.pop("mask", None)
        if kwargs:
            raise NotImplementedError(
                f"{type(self).__name__}.__call__ does not support the argument(s) {sorted(kwargs)}.")
        flat, n_state = self._flatten_call(inputs, initial_state)
        symbolic = [isinstance(t, KerasTensor) for t in flat]
        if any(symbolic):
            if not all(symbolic):
                raise TypeError(
                    f"Layer '{self.name}' was called with a mix of symbolic tensors and arrays; "
                    "in the functional API every input must come from keras Input/layers.")
            if mask is not None:
                raise NotImplementedError("Passing `mask=` explicitly in the functional API is not supported; masks propagate from Embedding(mask_zero=True)/Masking.")
            return self._call_symbolic(flat, n_state, training)
        return self._call_eager(flat, training, mask)

    def _call_symbolic(self, flat, n_state, training):
        shapes = [t.shape for t in flat]
        self._check_input_shapes(shapes)
        self._build_from_shapes(shapes)
        out_shapes = self._output_shapes(shapes)
        out_dtypes = self._output_dtypes([t.dtype for t in flat])
        node = Node(self, list(flat), None, training, n_state)
        outs = [KerasTensor(s, d, history=(self, node, i), name=f"{self.name}_{len(self._inbound_nodes)}_{i}")
                for i, (s, d) in enumerate(zip(out_shapes, out_dtypes))]
        node.outputs = outs
        self._inbound_nodes.append(node)
        return self._pack_outputs(outs)

    def _prepare_eager(self, arr, i):
        a = np.asarray(arr)
        what = f"Input {i} (`inputs`) of layer '{self.name}'"
        check_numeric(a, what)
        if i == 0 and self._takes_ids:
            return a
        check_finite(a, what)
        if a.dtype != self.dtype:
            a = a.astype(self.dtype)
        return a

    def _call_eager(self, flat, training, mask):
        arrs = [self._prepare_eager(a, i) for i, a in enumerate(flat)]
        shapes = [(None,) + a.shape[1:] for a in arrs]
        self._check_input_shapes([a.shape for a in arrs])
        self._build_from_shapes(shapes)
        masks = [None] * len(arrs)
        if mask is not None:
            masks[0] = np.asarray(mask).astype(bool)
        ctx = Context(training=bool(training), want_grads=False)
        outs, _, _ = self._fwd(arrs, masks, bool(training), ctx)
        return self._pack_outputs(outs)

    # --- engine protocol ----------------------------------------------------------------

    def _fwd(self, inputs, masks, training, ctx):
        """Forward over whole arrays: (outputs, output masks, cache for _bwd)."""
        raise NotImplementedError

    def _bwd(self, cache, douts, need, ctx):
        """Backward: douts parallel to outputs (None = zero); returns input grads (None where
        `need` is False or the input is not differentiable)."""
        raise NotImplementedError

    def _out_mask(self, masks):
        return masks[0] if self.supports_masking else None

    # --- config -------------------------------------------------------------------------

    def get_config(self):
        # The policy's name (our format); the Keras writers turn it into Keras's DTypePolicy dict.
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self._dtype_policy.name}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        if self.activity_regularizer is not None:
            cfg["activity_regularizer"] = _regularizers.serialize(self.activity_regularizer)
        for arg in self._option_args:
            obj = getattr(self, arg)
            if obj is not None:
                module = _regularizers if arg.endswith("_regularizer") else _constraints
                cfg[arg] = module.serialize(obj)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    # Keras exposes these for the functional API.
    @property
    def input(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called and thus has no defined input.")
        ins = self._inbound_nodes[0].inputs
        return ins[0] if len(ins) == 1 else ins

    @property
    def output(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called and thus has no defined output.")
        outs = self._inbound_nodes[0].outputs
        return outs[0] if len(outs) == 1 else outs


def shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
