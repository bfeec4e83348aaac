"""TimeDistributed and Bidirectional.

TimeDistributed folds time into the batch: (B, T, ...) is run through the inner
layer as (B·T, ...) rows, so TimeDistributed(Dense) is one GEMM, not T of them.

Bidirectional holds two recurrent layers (LSTM, GRU or SimpleRNN) rebuilt from the wrapped layer's config (as Keras
does: 'forward_<name>' and 'backward_<name>' with go_backwards=True) and runs each
as one kernel call. With return_sequences the backward outputs are flipped back to
input order before merging, and masked steps output zeros (Keras forces
zero_output_for_mask = return_sequences on both halves).
"""

import numpy as np

from ..registry import register
from .base import Layer
from .recurrent import FusedRecurrent
from .serialization import deserialize, serialize


@register("layers")
class TimeDistributed(Layer):
    """Applies `layer` to every time step of a (batch, time, ...) input."""

    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                "Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. "
                f"Received: {layer}")
        super().__init__(**kwargs)
        self.layer = layer

    def _sublayers(self):
        return [self.layer]

    def _check_input_shapes(self, shapes):
        if len(shapes[0]) < 3:
            raise ValueError(
                f"`TimeDistributed` Layer should be passed an `input_shape` with at least 3 "
                f"dimensions, received: {tuple(shapes[0])}")
        self.layer._check_input_shapes([(None,) + tuple(shapes[0][2:])])

    def build(self, input_shape):
        self.layer._build_from_shapes([(None,) + tuple(input_shape[2:])])
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def _per_step(self):
        # Keras 3 calls the inner layer once per time step; for a layer whose training
        # statistics span its batch (BatchNormalization) that means statistics per step
        # and one moving-average update per step, which folding time into the batch
        # would change. Every other layer sees the same numbers either way.
        return getattr(self.layer, "_batch_statistics", False)

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        B, T = x.shape[:2]
        if self._per_step():
            mask = masks[0]
            ys, caches = [], []
            for t in range(T):
                outs, _, c = self.layer._fwd([np.ascontiguousarray(x[:, t])],
                                             [None if mask is None else mask[:, t]], training, ctx)
                ys.append(outs[0])
                caches.append(c)
            return [np.stack(ys, axis=1)], [masks[0]], (caches, x.shape)
        outs, _, cache = self.layer._fwd([x.reshape((B * T,) + x.shape[2:])], [None], training, ctx)
        y = outs[0]
        return [y.reshape((B, T) + y.shape[1:])], [masks[0]], (cache, x.shape)

    def _bwd(self, cache, douts, need, ctx):
        inner_cache, xshape = cache
        dy = douts[0]
        if dy is None:
            return [None]
        B, T = xshape[:2]
        if self._per_step():
            dxs = [self.layer._bwd(c, [np.ascontiguousarray(dy[:, t])], need, ctx)[0]
                   for t, c in enumerate(inner_cache)]
            return [None if dxs[0] is None else np.stack(dxs, axis=1)]
        dx = self.layer._bwd(inner_cache, [dy.reshape((B * T,) + dy.shape[2:])], need, ctx)[0]
        return [None if dx is None else dx.reshape(xshape)]

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = serialize(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        return cls(**config)


_MERGES = ("concat", "sum", "mul", "ave", None)


@register("layers")
class Bidirectional(Layer):
    """Runs a recurrent layer forwards and backwards over the input and merges the two outputs.

    Args:
        layer: an LSTM, GRU, SimpleRNN or RNN(LSTMCell/GRUCell/SimpleRNNCell) (its config is copied; the
            instance itself is not run).
        merge_mode: 'concat' (default), 'sum', 'mul', 'ave' or None (a list of both).
        backward_layer: optional layer of the same class with go_backwards=True for the backward half.
        weights: optional initial weights, forward layer's then backward layer's.
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                "Please initialize `Bidirectional` layer with a `keras.layers.Layer` instance (argument "
                f"`layer`, expected an LSTM, GRU or SimpleRNN). Received: {layer!r}")
        if not isinstance(layer, FusedRecurrent):
            raise NotImplementedError(
                f"Bidirectional: only LSTM, GRU and SimpleRNN layers are supported, got {type(layer).__name__}.")
        rnn_cls = type(layer)
        if backward_layer is not None and type(backward_layer) is not rnn_cls:
            raise NotImplementedError(
                f"Bidirectional: `backward_layer` must be a {rnn_cls.__name__} like `layer`, got "
                f"{type(backward_layer).__name__}.")
        if merge_mode not in _MERGES:
            raise ValueError(
                f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                '{"sum", "mul", "ave", "concat", None}')
        super().__init__(**kwargs)
        cfg = layer.get_config()
        cfg.pop("batch_input_shape", None)
        fcfg = dict(cfg, name="forward_" + _strip(layer.name, "forward_"))
        self.forward_layer = rnn_cls.from_config(fcfg)
        if backward_layer is None:
            bcfg = dict(cfg, name="backward_" + _strip(layer.name, "backward_"),
                        go_backwards=not cfg["go_backwards"])
            self.backward_layer = rnn_cls.from_config(bcfg)
        else:
            self.backward_layer = backward_layer
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` value. "
                f"Received: forward_layer.go_backwards {f.go_backwards}, "
                f"backward_layer.go_backwards={b.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            if getattr(f, a) != getattr(b, a):
                raise ValueError(
                    "Forward layer and backward layer are expected to have the same value for "
                    f'attribute "{a}", got "{getattr(f, a)}" for forward layer and '
                    f'"{getattr(b, a)}" for backward layer')
        if f.activity_regularizer is not None or b.activity_regularizer is not None:
            # Keras penalises each direction's own outputs; the fused pair never exposes them.
            raise NotImplementedError(
                f"Bidirectional: an activity_regularizer on the wrapped {type(layer).__name__} is not supported by "
                "fusedlstm; "
                "pass activity_regularizer= to Bidirectional itself (it then applies to the merged output).")
        f.zero_output_for_mask = f.return_sequences
        b.zero_output_for_mask = b.return_sequences
        if layer._batch_input_shape is not None and self._batch_input_shape is None:
            self._batch_input_shape = layer._batch_input_shape
        self.merge_mode = merge_mode
        self.return_sequences = f.return_sequences
        self.return_state = f.return_state
        self.stateful = f.stateful
        if weights is not None:
            self._initial_weights = weights

    def _sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def _check_input_shapes(self, shapes):
        self.forward_layer._check_input_shapes([shapes[0]])
        n = 2 * self.forward_layer._n_states
        if len(shapes) not in (1, 1 + n):
            raise ValueError(f"Bidirectional '{self.name}': initial_state must have {n} tensors "
                             f"({self._state_description()}), got {len(shapes) - 1}.")

    def build(self, input_shape):
        self.forward_layer._build_from_shapes([input_shape])
        self.backward_layer._build_from_shapes([input_shape])
        self.built = True

    def _flatten_call(self, inputs, initial_state):
        if isinstance(inputs, (list, tuple)):
            raise NotImplementedError("Bidirectional: pass initial states with `initial_state=`.")
        if initial_state is None:
            return [inputs], 0
        n = 2 * self.forward_layer._n_states
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != n:
            raise ValueError(f"Bidirectional '{self.name}' expects initial_state with {n} tensors "
                             f"[{self._state_description()}].")
        return [inputs] + list(initial_state), n

    def _state_description(self):
        names = self.forward_layer._state_names
        return ", ".join([f"{s}_fwd" for s in names] + [f"{s}_bwd" for s in names])

    def compute_output_shape(self, input_shape):
        out = self.forward_layer.compute_output_shape(input_shape)
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (out[-1] * 2,)
        return out

    def _output_shapes(self, shapes):
        y = self.forward_layer.compute_output_shape(shapes[0])
        state = (shapes[0][0], self.forward_layer.units)
        outs = [y, y] if self.merge_mode is None else [self.compute_output_shape(shapes[0])]
        if self.return_state:
            outs += [state] * (2 * self.forward_layer._n_states)
        return outs

    def _n_outputs(self):
        return (2 if self.merge_mode is None else 1) + (2 * self.forward_layer._n_states if self.return_state else 0)

    def reset_states(self, states=None):
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
        else:
            n = self.forward_layer._n_states
            self.forward_layer.reset_states(states[:n])
            self.backward_layer.reset_states(states[n:])

    reset_state = reset_states

    # --- engine ----------------------------------------------------------------------

    def _merge(self, yf, yb):
        if self.return_sequences:
            yb = yb[:, ::-1]
        m = self.merge_mode
        if m == "concat":
            return [np.concatenate([yf, yb], axis=-1)]
        if m == "sum":
            return [yf + yb]
        if m == "ave":
            return [(yf + yb) / 2]
        if m == "mul":
            return [yf * yb]
        return [yf, np.ascontiguousarray(yb)]

    def _split(self, douts, yf, yb):
        """Gradients of the merged output(s) -> (dyf, dyb) in each layer's own order."""
        m = self.merge_mode
        H = self.forward_layer.units
        if m is None:
            dyf, dyb = douts[0], douts[1]
        else:
            d = douts[0]
            if d is None:
                dyf = dyb = None
            elif m == "concat":
                dyf, dyb = d[..., :H], d[..., H:]
            elif m == "sum":
                dyf = dyb = d
            elif m == "ave":
                dyf = dyb = d / 2
            else:
                yb_in = yb[:, ::-1] if self.return_sequences else yb
                dyf, dyb = d * yb_in, d * yf
        if dyb is not None and self.return_sequences:
            dyb = dyb[:, ::-1]
        f = None if dyf is None else np.ascontiguousarray(dyf)
        b = None if dyb is None else np.ascontiguousarray(dyb)
        return f, b

    def _run_both(self, xf, Wf, xb, Wb, inputs, mask, training, ctx):
        fl, bl = self.forward_layer, self.backward_layer
        n = fl._n_states
        has_state = len(inputs) == 1 + 2 * n
        sf = [inputs[0]] + list(inputs[1:1 + n]) if has_state else [inputs[0]]
        sb = [inputs[0]] + list(inputs[1 + n:]) if has_state else [inputs[0]]
        of, _, cf = fl._run(xf, Wf, sf, mask, training, ctx)
        ob, _, cb = bl._run(xb, Wb, sb, mask, training, ctx)
        outs = self._merge(of[0], ob[0])
        n_y = len(outs)
        if self.return_state:
            outs += of[1:] + ob[1:]
        out_mask = mask if self.return_sequences else None
        masks = [out_mask] * n_y + [None] * (len(outs) - n_y)
        keep = (of[0], ob[0]) if self.merge_mode == "mul" else (None, None)
        return outs, masks, (cf, cb, keep, has_state)

    def _bwd_both(self, cache, douts, need_dx, ctx, kernel_grad=False):
        cf, cb, (yf, yb), has_state = cache
        n_y = 2 if self.merge_mode is None else 1
        dyf, dyb = self._split(douts, yf, yb)
        fl, bl = self.forward_layer, self.backward_layer
        n = fl._n_states
        st = douts[n_y:] if self.return_state else [None] * (2 * n)
        dxf, dsf, dWf = fl._run_backward(cf, [dyf] + list(st[:n]), need_dx, ctx, kernel_grad)
        dxb, dsb, dWb = bl._run_backward(cb, [dyb] + list(st[n:]), need_dx, ctx, kernel_grad)
        dx = None
        if dxf is not None and dxb is not None:
            dx = dxf + dxb
        extra = list(dsf) + list(dsb) if has_state else []
        return dx, dWf, dWb, extra

    def _fwd(self, inputs, masks, training, ctx):
        x = inputs[0]
        if x.ndim != 3:
            raise ValueError(f"Layer '{self.name}' expects 3-D input (batch, timesteps, features), got shape {x.shape}.")
        return self._run_both(x, self.forward_layer.kernel.value, x, self.backward_layer.kernel.value,
                              inputs, masks[0], training, ctx)

    def _bwd(self, cache, douts, need, ctx):
        dx, _, _, extra = self._bwd_both(cache, douts, bool(need[0]), ctx, kernel_grad=True)
        return [dx] + extra

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = serialize(self.forward_layer)
        cfg["layer"]["config"]["name"] = _strip(self.forward_layer.name, "forward_")
        cfg["merge_mode"] = self.merge_mode
        cfg["backward_layer"] = serialize(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name
