"""Arguments and output lengths shared by the 1-D convolution, pooling and padding layers.

Keras spells a 1-D size as an int or a 1-tuple (`kernel_size=3` or `(3,)`; its
configs hold the tuple), padding names case-insensitively, and `data_format` as
'channels_last' (batch, steps, channels) or 'channels_first' (batch, channels,
steps). The layers compute in channels_last; channels_first inputs are transposed
on the way in and out (one copy each way).

Output length of a window of `span` steps moved by `stride` (Keras's
compute_conv_output_shape / compute_pooling_output_shape):

    valid:          (L - span) // stride + 1
    same, causal:   ceil(L / stride)

'same' pads (ceil(L/stride) - 1)·stride + span - L steps (at least 0), the smaller
half on the left (TensorFlow's and Keras's split).
"""

import numbers

import numpy as np

__all__ = ["standardize_tuple", "standardize_padding", "standardize_data_format", "output_length",
           "same_padding", "to_channels_last", "from_channels_last", "check_ndim"]


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def standardize_tuple(value, n, name, allow_zero=False):
    """An int or an n-sequence of ints as an n-tuple; each must be positive (or >= 0)."""
    if _is_int(value):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(_is_int(v) for v in value):
        values = tuple(int(v) for v in value)
    else:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected an integer or a tuple of {n} "
            f"integer(s), got {value!r}.")
    if any(v < 0 or (v == 0 and not allow_zero) for v in values):
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected "
            f"{'non-negative' if allow_zero else 'positive'} integer(s), got {value!r}.")
    return values


def standardize_padding(padding, allow_causal=False):
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    p = padding.lower() if isinstance(padding, str) else padding
    if p not in allowed:
        raise ValueError(
            f"Received an invalid value for argument `padding`, expected one of {allowed} "
            f"(case-insensitive), got {padding!r}.")
    return p


def standardize_data_format(data_format):
    """None means 'channels_last' (Keras's default image_data_format)."""
    df = "channels_last" if data_format is None else data_format
    df = df.lower() if isinstance(df, str) else df
    if df not in ("channels_last", "channels_first"):
        raise ValueError(
            "Received an invalid value for argument `data_format`, expected 'channels_last' or "
            f"'channels_first', got {data_format!r}.")
    return df


def output_length(length, span, stride, padding):
    """Output steps for `length` input steps (None stays None); may be <= 0 for 'valid'."""
    if length is None:
        return None
    if padding == "valid":
        return (length - span) // stride + 1
    return -(-length // stride)


def same_padding(length, span, stride):
    """(left, right) zero steps 'same' adds around `length` steps."""
    out = -(-length // stride)
    total = max(0, (out - 1) * stride + span - length)
    return total // 2, total - total // 2


def to_channels_last(x, data_format):
    return x if data_format == "channels_last" else np.ascontiguousarray(np.swapaxes(x, 1, 2))


def from_channels_last(y, data_format):
    return y if data_format == "channels_last" else np.ascontiguousarray(np.swapaxes(y, 1, 2))


def check_ndim(layer, shape, ndim=None, min_ndim=None):
    """Keras's InputSpec rank check, with its message."""
    n = len(shape)
    if ndim is not None and n != ndim:
        raise ValueError(
            f"Input 0 of layer '{layer.name}' is incompatible with the layer: expected ndim={ndim}, found "
            f"ndim={n}. Full shape received: {tuple(shape)}")
    if min_ndim is not None and n < min_ndim:
        raise ValueError(
            f"Input 0 of layer '{layer.name}' is incompatible with the layer: expected min_ndim={min_ndim}, "
            f"found ndim={n}. Full shape received: {tuple(shape)}")
