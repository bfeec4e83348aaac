"""The functional Model: a graph of layer calls compiled into a flat execution plan.

`Model(inputs, outputs)` walks the symbolic graph once (graph.py) and runs it as a
loop over the plan's steps; training is the Trainer's (training.py). The model owns
its description: `get_config()` lists the layers (their own configs) and every call
between them, `from_config()` rebuilds the graph by calling the layers again; our
file format (fusedlstm.saving) and the Keras translation (fusedlstm.io) both use it.
"""

import numbers

import numpy as np

from ..layers.base import Context, KerasTensor, Layer, shape_str, unique_name
from ..layers.core import InputLayer
from ..layers.serialization import deserialize_named, serialize
from ..registry import register
from ..validation import check_finite
from ..variables import ParamStore, generation
from .graph import Caches, build_plan, flatten, nodes_in_call_order
from .summary import print_summary
from .training import Trainer


@register("models", aliases=("Model",))
class Functional(Trainer, Layer):
    """keras.Model built from symbolic inputs and outputs (the functional API).

    >>> from fusedlstm.layers import Input, LSTM, Dense
    >>> inp = Input((None, 3)); out = Dense(2)(LSTM(4)(inp))
    >>> Model(inp, out).predict(np.zeros((1, 5, 3), "float32"), verbose=0).shape
    (1, 2)
    """

    # Sequential sets it: its summary is always the plain three-column table.
    _is_stack = False

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if inputs is None or outputs is None:
            raise NotImplementedError(
                "fusedlstm supports the functional API (Model(inputs, outputs)) and Sequential; "
                "subclassed models with a custom call() are not supported.")
        Layer.__init__(self, name=name or unique_name("functional"), trainable=trainable, **kwargs)
        Trainer.__init__(self)
        self._init_graph(inputs, outputs)

    # --- graph ------------------------------------------------------------------------------

    def _init_graph(self, inputs, outputs):
        if isinstance(inputs, dict) or isinstance(outputs, dict):
            raise NotImplementedError("Dict inputs/outputs are not supported; pass lists of tensors.")
        self._inputs_list = isinstance(inputs, (list, tuple))
        self._outputs_list = isinstance(outputs, (list, tuple))
        ins, outs = flatten(inputs), flatten(outputs)
        for t in ins + outs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model '{self.name}': inputs and outputs must be symbolic tensors from Input()/layers, got {type(t).__name__}.")
        for t in ins:
            if not isinstance(t._keras_history[0], InputLayer):
                raise ValueError(f"Model '{self.name}': every input must come from keras Input(); {t} does not.")
        self.inputs, self.outputs = ins, outs
        self._plan = build_plan(ins, outs, self.name)
        # The model computes in float64 only when all its weights are float64 (tests).
        dts = {str(v.value.dtype) for st in self._plan.steps for layer in st.layers for v in layer.weights}
        if dts == {"float64"}:
            self.dtype_policy = "float64"
        elif self.dtype != "float32":
            self.dtype_policy = "float32"
        layers = [t._keras_history[0] for t in ins]
        seen = {id(layer) for layer in layers}
        for st in self._plan_layer_order(ins, outs):
            if id(st) not in seen:
                seen.add(id(st))
                layers.append(st)
        self._layers = layers
        self.output_names = [t._keras_history[0].name for t in outs]
        self.input_names = [t._keras_history[0].name for t in ins]
        self._input_takes_ids = [self._feeds_ids(t) for t in ins]
        self.built = True
        self._store = None
        self._store_gen = -1

    def _plan_layer_order(self, ins, outs):
        return [node.layer for node in nodes_in_call_order(outs) if not isinstance(node.layer, InputLayer)]

    def _feeds_ids(self, t):
        if t.dtype == "string":
            return "string"  # text for a TextVectorization layer: kept as given
        if np.issubdtype(np.dtype(t.dtype), np.integer):
            return True
        for st in self._plan.steps:
            if self._plan.input_slots[self.inputs.index(t)] == st.ins[0] and getattr(st.layers[0], "_takes_ids", False):
                return True
        return False

    @property
    def layers(self):
        return list(self._layers)

    def _sublayers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def get_layer(self, name=None, index=None):
        if index is not None:
            if name is not None:
                raise ValueError("Provide only a layer name or a layer index, not both.")
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has {len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    @property
    def weights(self):
        out, seen = [], set()
        for layer in self._sublayers():
            for v in layer.weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        out, seen = [], set()
        for layer in self._sublayers():
            for v in layer.trainable_weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def input_shape(self):
        s = [t.shape for t in self.inputs]
        return s if self._inputs_list else s[0]

    @property
    def output_shape(self):
        s = [t.shape for t in self.outputs]
        return s if self._outputs_list else s[0]

    @property
    def input(self):
        return list(self.inputs) if self._inputs_list else self.inputs[0]

    @property
    def output(self):
        return list(self.outputs) if self._outputs_list else self.outputs[0]

    def reset_states(self):
        for layer in self._sublayers():
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    reset_state = reset_states

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        print_summary(self, line_length=line_length, print_fn=print_fn, show_trainable=show_trainable,
                      stack=self._is_stack)

    # --- as a layer inside another model ---------------------------------------------------

    def _flatten_call(self, inputs, initial_state):
        if initial_state is not None:
            raise NotImplementedError("A Model does not take `initial_state`.")
        flat = flatten(inputs)
        if len(flat) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s), got {len(flat)}.")
        return flat, 0

    def _build_from_shapes(self, shapes):
        self.built = True

    def _output_shapes(self, shapes):
        return [t.shape for t in self.outputs]

    def _output_dtypes(self, dtypes):
        return [t.dtype for t in self.outputs]

    def _n_outputs(self):
        return len(self.outputs)

    def _pack_outputs(self, outs):
        return list(outs) if self._outputs_list else outs[0]

    def _call_eager(self, flat, training, mask):
        xs = self._standardize_inputs(flat if self._inputs_list or len(flat) > 1 else flat[0])
        ctx = Context(training=bool(training), want_grads=False)
        vals, masks, _ = self._run_forward(xs, bool(training), ctx)
        return self._pack_outputs([vals[s] for s in self._plan.output_slots])

    def _fwd(self, inputs, masks, training, ctx):
        vals, ms, caches = self._run_forward(inputs, training, ctx, in_masks=masks)
        p = self._plan
        return [vals[s] for s in p.output_slots], [ms[s] for s in p.output_slots], caches

    def _bwd(self, cache, douts, need, ctx):
        p = self._plan
        p.prepare_grads(need)
        grads = [None] * p.n_slots
        for s, d in zip(p.output_slots, douts):
            if d is not None:
                grads[s] = d if grads[s] is None else grads[s] + d
        self._run_backward(p.steps, cache, grads, ctx)
        return [grads[s] if n else None for s, n in zip(p.input_slots, need)]

    # --- execution ---------------------------------------------------------------------------

    def _standardize_inputs(self, x):
        """Model inputs as a list of arrays: floats cast to the model dtype, ids kept as ints."""
        n = len(self.inputs)
        if isinstance(x, dict):
            missing = [k for k in self.input_names if k not in x]
            if missing:
                raise ValueError(f"Model '{self.name}': missing input(s) {missing} in the dict; expected keys {self.input_names}.")
            xs = [x[k] for k in self.input_names]
        elif isinstance(x, (list, tuple)) and not (n == 1 and _looks_like_data(x)):
            xs = list(x)
        else:
            xs = [x]
        if len(xs) != n:
            raise ValueError(
                f"Model '{self.name}' expects {n} input(s) ({self.input_names}), but it received "
                f"{len(xs)} input array(s).")
        out = []
        for k, (a, t, ids) in enumerate(zip(xs, self.inputs, self._input_takes_ids)):
            if isinstance(a, KerasTensor):
                raise TypeError(f"Model '{self.name}' was given a symbolic tensor for input {k}; pass arrays (or call the model inside a functional graph).")
            if ids == "string":
                out.append(self._string_input(k, a, t.shape))
                continue
            a = np.asarray(a)
            if a.dtype == object or a.dtype.kind not in "biuf":
                raise TypeError(f"Input {k} of model '{self.name}' must be a numeric array, got dtype {a.dtype}.")
            want = t.shape
            if a.ndim != len(want):
                raise ValueError(
                    f"Input {k} of model '{self.name}' is incompatible with the model: expected "
                    f"shape {shape_str(want)} (ndim={len(want)}), found shape {a.shape} (ndim={a.ndim}).")
            # Fixed feature sizes must match; the time axis may vary unless it is the last one.
            checked = [len(want) - 1] if not ids and len(want) >= 2 else []
            for ax in checked:
                if want[ax] is not None and a.shape[ax] != want[ax]:
                    raise ValueError(
                        f"Input {k} of model '{self.name}' is incompatible with the model: expected "
                        f"shape {shape_str(want)}, found shape {a.shape}.")
            check_finite(a, f"Input {k} (`x`) of model '{self.name}'")
            if not ids and a.dtype != self._dtype_name():
                a = a.astype(self._dtype_name())
            out.append(a)
        B = {a.shape[0] for a in out}
        if len(B) > 1:
            raise ValueError(f"Model '{self.name}': all inputs must have the same number of samples, got {[a.shape[0] for a in out]}.")
        return out

    def _string_input(self, k, a, want):
        """A string input (Input(dtype="string")) as an object array of str, shape checked."""
        a = np.asarray(a)
        if a.dtype.kind not in "USO":
            raise TypeError(f"Input {k} of model '{self.name}' is a string input; got an array of dtype {a.dtype}.")
        if a.ndim != len(want) or (len(want) == 2 and want[1] is not None and a.shape[1] != want[1]):
            raise ValueError(
                f"Input {k} of model '{self.name}' is incompatible with the model: expected strings of shape "
                f"{shape_str(want)}, found shape {a.shape}.")
        return a

    def _check_ids(self, xs):
        """Validate whole token-id inputs once (fit/evaluate/predict on arrays): an out-of-range
        id is then reported at its position in the data, not in a shuffled batch."""
        for k, (a, takes_ids) in enumerate(zip(xs, self._input_takes_ids)):
            if not takes_ids:
                continue
            slot = self._plan.input_slots[k]
            for st in self._plan.steps:
                if st.ins and st.ins[0] == slot and hasattr(st.layers[0], "ids"):
                    st.layers[0].ids(a)

    def _dtype_name(self):
        return self.dtype

    def _run_forward(self, inputs, training, ctx, steps=None, in_masks=None):
        p = self._plan
        vals = [None] * p.n_slots
        masks = [None] * p.n_slots
        for k, (s, a) in enumerate(zip(p.input_slots, inputs)):
            vals[s] = a
            if in_masks is not None:
                masks[s] = in_masks[k]
        steps = p.steps if steps is None else steps
        caches = Caches(len(steps))
        for k, st in enumerate(steps):
            tr = training if st.training is None else bool(st.training)
            outs, oms, cache = st.op._fwd([vals[i] for i in st.ins], [masks[i] for i in st.ins], tr, ctx)
            for i, o, m in zip(st.outs, outs, oms):
                vals[i] = o
                masks[i] = m
            caches[k] = cache
            if st.act is not None and ctx.penalty is not None:
                _activity_penalty(st.act, k, outs, ctx, caches)
        return vals, masks, caches

    @staticmethod
    def _run_backward(steps, caches, grads, ctx):
        extra = getattr(caches, "extra", None)
        for k in range(len(steps) - 1, -1, -1):
            st = steps[k]
            if not st.active:
                continue
            douts = [grads[i] for i in st.outs]
            if extra is not None and k in extra:
                douts = [e if d is None else (d if e is None else d + e) for d, e in zip(douts, extra[k])]
            if all(d is None for d in douts):
                continue
            dins = st.op._bwd(caches[k], douts, st.need, ctx)
            for i, d in zip(st.ins, dins):
                if d is None:
                    continue
                g = grads[i]
                grads[i] = d if g is None else g + d

    def _ensure_store(self):
        """The flat parameter store, (re)claimed when another model or a trainable flag moved it."""
        if self._store_gen == generation() and self._store is not None:
            return self._store
        variables = self.trainable_weights
        st = self._store
        if st is None or [id(v) for v in st.variables] != [id(v) for v in variables] or not st.holds_all():
            dtypes = {v.value.dtype for v in variables}
            if len(dtypes) > 1:
                raise NotImplementedError(f"Model '{self.name}' mixes weight dtypes {sorted(map(str, dtypes))}; use one dtype.")
            st = ParamStore(variables, dtypes.pop() if dtypes else np.float32)
            self._store = st
        ids = {id(v) for v in variables}
        for v in self.weights:
            if id(v) not in ids:
                v.grad = None
        self._store_gen = generation()
        return st

    # --- description ---------------------------------------------------------------------------

    def get_config(self):
        """Layers plus the node list in plan order; a tensor is [layer name, node index, output index].

        The node index counts this model's calls of that layer (a shared layer's calls in other
        models are not ours). This is the `config` of our '.fusedlstm' files.
        """
        node_index = {}  # id(node) -> (layer name, index among this model's nodes of that layer)
        counts = {}
        entries = []

        def ref(t):
            layer, node, i = t._keras_history
            return [layer.name, node_index[id(node)][1], i]

        layer_cfgs, seen = [], set()
        for t in self.inputs:
            layer = t._keras_history[0]
            node_index[id(t._keras_history[1])] = (layer.name, 0)
            counts[layer.name] = 1
            seen.add(id(layer))
            layer_cfgs.append(serialize(layer))
        for node in nodes_in_call_order(self.outputs):
            layer = node.layer
            if isinstance(layer, InputLayer):
                continue
            if id(layer) not in seen:
                seen.add(id(layer))
                layer_cfgs.append(serialize(layer))
            k = counts.get(layer.name, 0)
            counts[layer.name] = k + 1
            entries.append({"layer": layer.name, "inputs": [ref(t) for t in node.inputs],
                            "n_state": node.n_state, "training": node.training})
            node_index[id(node)] = (layer.name, k)
        return {
            "name": self.name,
            "layers": layer_cfgs,
            "nodes": entries,
            "inputs": [ref(t) for t in self.inputs],
            "outputs": [ref(t) for t in self.outputs],
            "inputs_list": self._inputs_list,
            "outputs_list": self._outputs_list,
        }

    @classmethod
    def from_config(cls, config):
        """A new model from get_config()'s form: the layers rebuilt by class name
        (fusedlstm.registry), then called on each other as the node list says."""
        by_name = {}
        for c in config["layers"]:
            layer = deserialize_named(c)
            if layer.name in by_name:
                raise ValueError(f"Model config has two layers named {layer.name!r}.")
            by_name[layer.name] = layer
        produced = {}  # (layer name, node index) -> list of output tensors
        for name, layer in by_name.items():
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = [layer.output]

        def tensor(r):
            if not (isinstance(r, (list, tuple)) and len(r) >= 3 and isinstance(r[0], str)
                    and all(isinstance(i, int) and not isinstance(i, bool) for i in r[1:3])):
                raise ValueError(f"Model config has a malformed tensor reference {r!r}: expected "
                                 "[layer name, node index, tensor index].")
            key = (r[0], r[1])
            if key not in produced:
                raise ValueError(f"Model config refers to the missing tensor {r}.")
            if not 0 <= r[2] < len(produced[key]):
                raise ValueError(f"Model config refers to tensor {r[2]} of {r[0]!r} node {r[1]}, which has "
                                 f"{len(produced[key])} output(s).")
            return produced[key][r[2]]

        counts = {}
        for e in config["nodes"]:
            layer = by_name.get(e["layer"])
            if layer is None:
                raise ValueError(f"Model config has a node for unknown layer {e['layer']!r}.")
            ins = [tensor(r) for r in e["inputs"]]
            n_state = int(e.get("n_state", 0))
            kw = {}
            if e.get("training") is not None:
                kw["training"] = e["training"]
            if n_state:
                out = layer(ins[0], initial_state=ins[1:], **kw)
            else:
                out = layer(ins if len(ins) > 1 else ins[0], **kw)
            outs = out if isinstance(out, list) else [out]
            k = counts.get(layer.name, 0)
            counts[layer.name] = k + 1
            produced[(layer.name, k)] = outs
        inputs = [tensor(r) for r in config["inputs"]]
        outputs = [tensor(r) for r in config["outputs"]]
        return cls(inputs if config.get("inputs_list", True) else inputs[0],
                   outputs if config.get("outputs_list", True) else outputs[0], name=config.get("name"))


def _activity_penalty(reg, k, outs, ctx, caches):
    """Keras's activity regularization of one step's outputs: penalty(out) / batch size
    added to ctx.penalty, and (training) its gradient kept for the backward pass."""
    grads = []
    for o in outs:
        if o is None or np.ndim(o) == 0 or o.dtype.kind != "f":
            grads.append(None)
            continue
        B = o.shape[0]
        if B == 0:
            grads.append(None)
            continue
        ctx.penalty += reg(o) / B
        grads.append((reg.gradient(o) / B).astype(o.dtype, copy=False) if ctx.want_grads else None)
    if ctx.want_grads:
        if caches.extra is None:
            caches.extra = {}
        caches.extra[k] = grads


def _looks_like_data(x):
    """A list that is one input's data (nested numbers), not a list of input arrays."""
    return len(x) > 0 and isinstance(x[0], (numbers.Number, list, tuple)) and not isinstance(x[0], np.ndarray)


Model = Functional
