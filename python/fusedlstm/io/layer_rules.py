"""Which Keras layers and settings the interchange code understands, layer by layer.

A Keras layer config is a dict of constructor arguments. For each layer class we
support, `RULES` sorts its keys into four kinds:

* args     — settings we carry over (with Keras's default when the key is absent);
             regularizers and constraints among them (`penalties`) are checked to be
             classes we have and written in Keras's serialized form;
* fixed    — settings we accept only at one value (quantization, LoRA: features
             fusedlstm does not have, so a file using them is refused rather than
             silently loaded into a different model);
* ignored  — settings that no longer matter once the weights are loaded
             (initializers, `unroll`, `implementation`, seeds);
* nested   — arguments holding a wrapped layer's config (Bidirectional,
             TimeDistributed).

Any other key with a non-null value is refused, naming the layer and the key:
a setting we do not recognise could change what the model computes.

Activations must be built-in names (strings). A Keras config can name a Python
function or a Lambda; we never import or run code from a file, so those are refused.
"""

import re
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple

from .. import constraints as _constraints
from .. import regularizers as _regularizers

__all__ = [
    "REQUIRED", "Rule", "RULES", "ALIASES", "LSTM_ACTIVATIONS", "RECURRENT", "CELLS", "UnsupportedModelError",
    "recurrent_core",
    "layer_arguments", "layer_policy", "keras_layer_config", "snake_case",
]


# Layers fusedlstm has, but not in Keras's files: why, and what to do instead.
NOT_IN_KERAS_FILES = {
    "TextVectorization": (
        "TextVectorization is not read from or written to Keras's file formats yet (Keras keeps its vocabulary "
        "in the file's assets); save the model in fusedlstm's format (.fusedlstm), which holds the vocabulary "
        "in the layer's config."),
}


class UnsupportedModelError(ValueError):
    """A Keras model/config uses a layer or setting fusedlstm cannot represent."""


REQUIRED = object()  # marker: the config must hold this key


class Rule(NamedTuple):
    args: Mapping[str, Any]
    fixed: Mapping[str, Any] = {}
    ignored: Tuple[str, ...] = ()
    nested: Tuple[str, ...] = ()
    activations: Tuple[str, ...] = ()
    not_written: Tuple[str, ...] = ()  # keys this Keras 3 constructor does not take
    renamed: Mapping[str, str] = {}  # older spellings of an argument (Keras 2 LeakyReLU's alpha)

    @property
    def penalties(self) -> Tuple[str, ...]:
        """The args holding a regularizer or constraint config."""
        return tuple(k for k in self.args if k.endswith(("_regularizer", "_constraint")))


_REGULARIZED = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "bias_constraint")
_NONE = dict.fromkeys
_RNN_ARGS = {"return_sequences": False, "return_state": False, "go_backwards": False, "stateful": False,
             "dropout": 0.0, "recurrent_dropout": 0.0, "zero_output_for_mask": False,
             **_NONE(_REGULARIZED + ("recurrent_regularizer", "recurrent_constraint"))}
_RNN_IGNORED = ("kernel_initializer", "recurrent_initializer", "bias_initializer", "unroll", "seed")
_CELL_ARGS = {"dropout": 0.0, "recurrent_dropout": 0.0,
              **_NONE(_REGULARIZED[:2] + _REGULARIZED[3:] + ("recurrent_regularizer", "recurrent_constraint"))}

RULES: Dict[str, Rule] = {
    "LSTM": Rule(
        args={"units": REQUIRED, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
              **_RNN_ARGS},
        fixed={"time_major": False},
        ignored=_RNN_IGNORED + ("unit_forget_bias", "implementation"),
        activations=("activation", "recurrent_activation"),
    ),
    "GRU": Rule(
        args={"units": REQUIRED, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
              "reset_after": True, **_RNN_ARGS},
        fixed={"time_major": False},
        ignored=_RNN_IGNORED + ("implementation",),
        activations=("activation", "recurrent_activation"),
    ),
    "SimpleRNN": Rule(
        args={"units": REQUIRED, "activation": "tanh", "use_bias": True, **_RNN_ARGS},
        fixed={"time_major": False},
        ignored=_RNN_IGNORED,
        activations=("activation",),
    ),
    # RNN(cell): the cell holds the kernel's arguments, RNN the sequence options (layers/rnn.py).
    "RNN": Rule(
        args={"cell": REQUIRED, "return_sequences": False, "return_state": False, "go_backwards": False,
              "stateful": False, "zero_output_for_mask": False, "activity_regularizer": None},
        ignored=("unroll",),
        nested=("cell",),
    ),
    "LSTMCell": Rule(
        args={"units": REQUIRED, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
              **_CELL_ARGS},
        ignored=_RNN_IGNORED[:3] + ("seed", "unit_forget_bias", "implementation"),
        activations=("activation", "recurrent_activation"),
    ),
    "GRUCell": Rule(
        args={"units": REQUIRED, "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
              "reset_after": True, **_CELL_ARGS},
        ignored=_RNN_IGNORED[:3] + ("seed", "implementation"),
        activations=("activation", "recurrent_activation"),
    ),
    "SimpleRNNCell": Rule(
        args={"units": REQUIRED, "activation": "tanh", "use_bias": True, **_CELL_ARGS},
        ignored=_RNN_IGNORED[:3] + ("seed",),
        activations=("activation",),
    ),
    "Dense": Rule(
        args={"units": REQUIRED, "activation": "linear", "use_bias": True, **_NONE(_REGULARIZED)},
        fixed={"quantization_config": None, "lora_rank": None},
        ignored=("kernel_initializer", "bias_initializer", "lora_alpha"),
        activations=("activation",),
    ),
    "Embedding": Rule(
        args={"input_dim": REQUIRED, "output_dim": REQUIRED, "mask_zero": False,
              **_NONE(("embeddings_regularizer", "activity_regularizer", "embeddings_constraint"))},
        fixed={"sparse": False, "quantization_config": None, "lora_rank": None},
        ignored=("embeddings_initializer", "input_length", "lora_alpha"),
    ),
    "Bidirectional": Rule(args={"layer": REQUIRED, "backward_layer": None, "merge_mode": "concat"},
                          fixed={"weights": None}, nested=("layer", "backward_layer")),
    "TimeDistributed": Rule(args={"layer": REQUIRED}, nested=("layer",)),
    "RepeatVector": Rule(args={"n": REQUIRED}),
    "Dropout": Rule(args={"rate": REQUIRED}, fixed={"noise_shape": None}, ignored=("seed",)),
    "SpatialDropout1D": Rule(args={"rate": REQUIRED}, fixed={"noise_shape": None}, ignored=("seed",),
                             not_written=("trainable", "noise_shape")),
    "Reshape": Rule(args={"target_shape": REQUIRED}),
    "Masking": Rule(args={"mask_value": 0.0}),
    "Activation": Rule(args={"activation": REQUIRED}, activations=("activation",)),
    "Flatten": Rule(args={}, ignored=("data_format",)),
    "Concatenate": Rule(args={"axis": -1}),
    "Add": Rule(args={}),
    "Subtract": Rule(args={}),
    "Multiply": Rule(args={}),
    "Average": Rule(args={}),
    # --- convolution, pooling, reshaping (layers/conv.py, pooling.py, reshaping.py) ---
    "Conv1D": Rule(
        args={"filters": REQUIRED, "kernel_size": REQUIRED, "strides": 1, "padding": "valid",
              "data_format": "channels_last", "dilation_rate": 1, "groups": 1, "activation": "linear",
              "use_bias": True, **_NONE(_REGULARIZED)},
        fixed={"lora_rank": None},
        ignored=("kernel_initializer", "bias_initializer", "lora_alpha"),
        activations=("activation",),
    ),
    "MaxPooling1D": Rule(args={"pool_size": 2, "strides": None, "padding": "valid", "data_format": "channels_last"}),
    "AveragePooling1D": Rule(args={"pool_size": REQUIRED, "strides": None, "padding": "valid",
                                   "data_format": "channels_last"}),
    "GlobalMaxPooling1D": Rule(args={"data_format": "channels_last", "keepdims": False}),
    "GlobalAveragePooling1D": Rule(args={"data_format": "channels_last", "keepdims": False}),
    "UpSampling1D": Rule(args={"size": 2}),
    "ZeroPadding1D": Rule(args={"padding": 1, "data_format": "channels_last"}),
    "Cropping1D": Rule(args={"cropping": (1, 1)}),
    "Permute": Rule(args={"dims": REQUIRED}),
    # --- normalization (layers/normalization.py) ---
    "LayerNormalization": Rule(
        args={"axis": -1, "epsilon": 1e-3, "center": True, "scale": True, "rms_scaling": False},
        fixed={k: None for k in ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint")},
        ignored=("beta_initializer", "gamma_initializer")),
    "BatchNormalization": Rule(
        args={"axis": -1, "momentum": 0.99, "epsilon": 1e-3, "center": True, "scale": True},
        fixed={**{k: None for k in ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                                    "renorm_clipping", "virtual_batch_size", "adjustment")},
               "renorm": False, "synchronized": False},
        # `fused` (Keras 2) chose an implementation, not a result.
        ignored=("beta_initializer", "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                 "renorm_momentum", "fused")),
    # --- activation and noise layers (layers/advanced_activations.py, noise.py) ---
    "LeakyReLU": Rule(args={"negative_slope": 0.3}, renamed={"alpha": "negative_slope"}),
    "PReLU": Rule(args={"shared_axes": None}, fixed={"alpha_regularizer": None, "alpha_constraint": None},
                  ignored=("alpha_initializer",)),
    "ReLU": Rule(args={"max_value": None, "negative_slope": 0.0, "threshold": 0.0}),
    "ELU": Rule(args={"alpha": 1.0}),
    "Softmax": Rule(args={"axis": -1}),
    "GaussianNoise": Rule(args={"stddev": REQUIRED}, ignored=("seed",)),
    "GaussianDropout": Rule(args={"rate": REQUIRED}, ignored=("seed",)),
    "AlphaDropout": Rule(args={"rate": REQUIRED, "noise_shape": None}, ignored=("seed",)),
}

# Other names Keras accepts for a class (keras.layers.MaxPool1D is MaxPooling1D); configs are read
# under the canonical name, the one Keras 3 writes.
ALIASES: Dict[str, str] = {
    "MaxPool1D": "MaxPooling1D", "AvgPool1D": "AveragePooling1D", "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D", "Convolution1D": "Conv1D",
}

# What the recurrent kernels compute (csrc, see _core.pyi); 'hard_sigmoid_k2' is Keras 2's clip(0.2x+0.5, 0, 1).
LSTM_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "hard_sigmoid_k2", "relu", "linear")
# The recurrent layers (one fused kernel each) and how many states each carries.
RECURRENT = {"LSTM": 2, "GRU": 1, "SimpleRNN": 1}
# The cells RNN(cell) runs, and the fused layer each one is.
CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}


def recurrent_core(class_name: str, args: Mapping[str, Any]):
    """(fused layer class name, its arguments) of a recurrent layer config — LSTM/GRU/SimpleRNN as
    they are, RNN(cell) with its cell's arguments merged in — or None for any other layer."""
    if class_name in RECURRENT:
        return class_name, args
    if class_name == "RNN":
        cell = args["cell"]
        merged = {k: v for k, v in args.items() if k != "cell"}
        merged.update(cell.args)
        return CELLS[cell.class_name], merged
    return None

# Keys every layer config may hold that are not constructor semantics.
_COMMON = ("name", "trainable", "dtype", "batch_input_shape", "batch_shape", "input_shape", "build_config")

# The dtype policies a Keras file's layer may carry: None (none written: the global policy),
# float32, and Keras's CPU mixed precision (float32 weights, bfloat16 GEMM operands here).
_POLICY_NAMES = ("float32", None, "mixed_bfloat16")


def snake_case(name: str) -> str:
    """Keras's class-name-to-path rule (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _dtype_name(dtype) -> Optional[str]:
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy / Keras 2 Policy
        inner = dtype.get("config", {})
        return inner.get("name") if isinstance(inner, dict) else None
    return dtype


def layer_policy(config: Mapping[str, Any], where: str) -> Optional[str]:
    """The dtype policy name of a Keras layer config (None when it has none), checked."""
    dtype = _dtype_name(config.get("dtype"))
    if dtype in _POLICY_NAMES:
        return dtype
    if dtype in ("mixed_float16", "float16", "bfloat16"):
        raise UnsupportedModelError(
            f"{where}: dtype {dtype!r} is not supported; fusedlstm's mixed precision is 'mixed_bfloat16' "
            "(the CPU policy: float32 weights, bfloat16 matrix products).")
    raise UnsupportedModelError(f"{where}: dtype {dtype!r} is not supported; fusedlstm computes in float32 "
                                "(or under 'mixed_bfloat16').")


def layer_arguments(class_name: str, config: Mapping[str, Any], where: str, *, legacy_hard_sigmoid: bool,
                    parse_nested) -> Dict[str, Any]:
    """Constructor arguments for `class_name` from a Keras layer config, every default filled in.

    where: how to name the layer in errors (e.g. "layer 'lstm_1' (LSTM)").
    legacy_hard_sigmoid: the config was written by Keras < 3, whose 'hard_sigmoid'
        is clip(0.2x+0.5, 0, 1): it becomes our 'hard_sigmoid_k2'.
    parse_nested: called on a nested layer config, returns its parsed form.
    """
    rule = RULES.get(class_name)
    if rule is None and class_name in NOT_IN_KERAS_FILES:
        raise UnsupportedModelError(f"{where}: {NOT_IN_KERAS_FILES[class_name]}")
    if rule is None:
        supported = ", ".join(sorted(RULES))
        raise UnsupportedModelError(f"{where}: fusedlstm has no {class_name} layer (supported: {supported}).")
    if not isinstance(config, Mapping):
        raise UnsupportedModelError(f"{where}: expected a dict config, got {type(config).__name__}.")
    layer_policy(config, where)
    if rule.renamed:
        config = dict(config)
        for old, new in rule.renamed.items():
            if old in config:
                value = config.pop(old)
                config.setdefault(new, value)
    for key, value in config.items():
        if key in rule.args or key in rule.ignored or key in _COMMON:
            continue
        if key in rule.fixed:
            if value != rule.fixed[key] and not (rule.fixed[key] is None and value in ({}, [])):
                raise UnsupportedModelError(
                    f"{where}: {key}={value!r} is not supported (fusedlstm only has {key}={rule.fixed[key]!r}).")
            continue
        if value is None:
            continue
        raise UnsupportedModelError(f"{where}: unknown setting {key}={value!r}; refusing to load a model whose "
                                    "meaning we cannot check.")
    args = {}
    for key, default in rule.args.items():
        if key not in config:
            if default is REQUIRED:
                raise UnsupportedModelError(f"{where}: the config has no {key!r}.")
            args[key] = default
            continue
        value = config[key]
        if key in rule.activations:
            value = _activation(value, key, where, legacy_hard_sigmoid)
            if (class_name in RECURRENT or class_name in CELLS) and value not in LSTM_ACTIVATIONS:
                raise UnsupportedModelError(f"{where}: {key}={value!r} is not supported by the {class_name} kernel "
                                            f"(expected one of {', '.join(LSTM_ACTIVATIONS)}).")
        elif key in rule.nested and value is not None:
            value = parse_nested(value)
        elif key in rule.penalties:
            value = _penalty(value, key, where)
        args[key] = value
    return args


def _penalty(value, key: str, where: str):
    """A regularizer/constraint config from a file (Keras 3's {"module", "class_name",
    "config", ...}, Keras 2's {"class_name", "config"}, or ours) as our {"class_name",
    "config"}, after checking that it names a class we have and fits its arguments."""
    if value is None or value in ({}, []):
        return None
    module = _regularizers if key.endswith("_regularizer") else _constraints
    if isinstance(value, str):
        value = {"class_name": value, "config": {}}
    if not isinstance(value, Mapping) or not isinstance(value.get("class_name"), str):
        raise UnsupportedModelError(f"{where}: {key}={value!r} is not a regularizer/constraint config.")
    if value.get("registered_name") not in (None, value["class_name"]):
        raise UnsupportedModelError(
            f"{where}: {key} is the custom object {value['registered_name']!r}; fusedlstm never imports or runs "
            "code from a model file.")
    try:
        obj = module.get({"class_name": value["class_name"], "config": value.get("config") or {}}, key)
    except (NotImplementedError, ValueError, TypeError) as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None
    return module.serialize(obj)


def _keras_penalty(value, key: str):
    """Our {"class_name", "config"} of a regularizer/constraint in Keras 3's serialized form."""
    if value is None:
        return None
    module = "keras.regularizers" if key.endswith("_regularizer") else "keras.constraints"
    return {"module": module, "class_name": value["class_name"], "config": dict(value.get("config") or {}),
            "registered_name": None}


def _activation(value, key: str, where: str, legacy_hard_sigmoid: bool) -> str:
    if value is None:
        return "linear"
    if isinstance(value, Mapping):
        # Keras 3 writes built-ins as strings; a dict is a function or an object that would need code.
        name = value.get("config") if value.get("class_name") == "function" else None
        raise UnsupportedModelError(
            f"{where}: {key} is a custom function{f' ({name!r})' if name else ''}, not a built-in activation "
            "name; fusedlstm never imports or runs code from a model file.")
    if not isinstance(value, str):
        raise UnsupportedModelError(f"{where}: {key}={value!r} is not an activation name.")
    if legacy_hard_sigmoid and value == "hard_sigmoid":
        return "hard_sigmoid_k2"
    return value


# ---------------------------------------------------------------------------------------------
# Writing: Keras 3 layer configs from our arguments.
#
# Keras only needs the semantic keys (missing ones take constructor defaults), but we write
# the keys Keras itself writes, initializers included, so tools that read configs see the
# usual shape of a Keras file.
# ---------------------------------------------------------------------------------------------

# Keys we check on reading that Keras 3's constructors do not take (Keras 2 only, or written only when set).
_NOT_KERAS3_ARGS = ("time_major", "weights", "lora_rank", "sparse", "virtual_batch_size", "adjustment")

_DTYPE_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                 "registered_name": None}


def _initializer(class_name: str, config: Optional[dict] = None) -> dict:
    return {"module": "keras.initializers", "class_name": class_name, "config": config or {},
            "registered_name": None}


_GLOROT = {"seed": None}
_INITIALIZERS = {
    "LSTM": {"kernel_initializer": ("GlorotUniform", _GLOROT),
             "recurrent_initializer": ("Orthogonal", {"seed": None, "gain": 1.0}),
             "bias_initializer": ("Zeros", {})},
    "Dense": {"kernel_initializer": ("GlorotUniform", _GLOROT), "bias_initializer": ("Zeros", {})},
    "Conv1D": {"kernel_initializer": ("GlorotUniform", _GLOROT), "bias_initializer": ("Zeros", {})},
    "Embedding": {"embeddings_initializer": ("RandomUniform", {"seed": None, "minval": -0.05, "maxval": 0.05})},
    "LayerNormalization": {"beta_initializer": ("Zeros", {}), "gamma_initializer": ("Ones", {})},
    "BatchNormalization": {"beta_initializer": ("Zeros", {}), "gamma_initializer": ("Ones", {}),
                           "moving_mean_initializer": ("Zeros", {}), "moving_variance_initializer": ("Ones", {})},
    "PReLU": {"alpha_initializer": ("Zeros", {})},
}
for _cls in ("GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell"):
    _INITIALIZERS[_cls] = _INITIALIZERS["LSTM"]


def keras_layer_config(class_name: str, name: str, args: Mapping[str, Any], trainable: bool, serialize_nested,
                       where: str, dtype: Optional[str] = "float32") -> dict:
    """The Keras 3 serialized form {"module", "class_name", "config", "registered_name"} of one layer;
    dtype: its policy name (None: float32)."""
    rule = RULES[class_name]
    policy = dict(_DTYPE_POLICY, config={"name": dtype or "float32"})
    config: Dict[str, Any] = {"name": name, "trainable": bool(trainable), "dtype": policy}
    for key in rule.args:
        value = args[key] if key in args else rule.args[key]
        if value is REQUIRED:
            raise ValueError(f"{where}: missing argument {key!r}.")
        if key in rule.activations and value == "hard_sigmoid_k2":
            raise UnsupportedModelError(
                f"{where}: {key}='hard_sigmoid_k2' (Keras 2's clip(0.2x+0.5, 0, 1)) has no equivalent in Keras 3, "
                "whose 'hard_sigmoid' is relu6(x+3)/6: a Keras file would compute something else. Save in "
                "fusedlstm's own format, or switch the layer to 'hard_sigmoid' or 'sigmoid' and retrain.")
        if key in rule.nested:
            value = None if value is None else serialize_nested(value)
        elif key in rule.penalties:
            value = _keras_penalty(value, key)
        config[key] = value
    for key, (init_cls, init_cfg) in _INITIALIZERS.get(class_name, {}).items():
        config[key] = _initializer(init_cls, dict(init_cfg))
    for key, value in rule.fixed.items():
        if key in _NOT_KERAS3_ARGS:
            continue
        config[key] = value
    for key in rule.not_written:
        config.pop(key, None)
    if class_name in ("LSTM", "LSTMCell"):
        config.update(unit_forget_bias=True)
    if class_name in RECURRENT or class_name == "RNN":
        config.update(unroll=False)
    if class_name in RECURRENT or class_name in CELLS:
        config.update(seed=None)
    if class_name in ("GaussianNoise", "GaussianDropout", "AlphaDropout"):
        config["seed"] = None
    if class_name == "BatchNormalization":
        config["renorm_momentum"] = 0.99
    return {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
