"""Weights and batches for the benchmark, drawn in NumPy from a seed.

Weights follow Keras's default initialisers (glorot_uniform kernels, orthogonal
recurrent kernels, zero bias with unit_forget_bias, uniform(-0.05, 0.05)
embeddings) and come as one list in Keras's `get_weights()` order and shapes,
which every framework then loads. So all frameworks start from the same point
and no framework's luck of the draw can pose as speed.
"""

import zlib
from typing import List, Tuple

import numpy as np

from bench.configs import Config


def config_seed(cfg_name: str, seed: int) -> int:
    """A stable per-config seed, so a worker process redraws the same arrays."""
    return (zlib.crc32(cfg_name.encode()) ^ (seed * 0x9E3779B1)) & 0xFFFFFFFF


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Keras's Orthogonal(gain=1): QR of a normal matrix, signs fixed by diag(R)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.astype(np.float32)


def lstm_weights(rng: np.random.Generator, width: int, units: int) -> List[np.ndarray]:
    bias = np.zeros(4 * units, np.float32)
    bias[units:2 * units] = 1.0  # unit_forget_bias; gate order i, f, c, o
    return [glorot_uniform(rng, width, 4 * units), orthogonal(rng, units, 4 * units), bias]


def gru_weights(rng: np.random.Generator, width: int, units: int) -> List[np.ndarray]:
    """Keras GRU(reset_after=True): kernel (I, 3H), recurrent kernel (H, 3H), bias (2, 3H), gate
    order z, r, h. The bias is drawn small and non-zero (Keras's default is zeros) so that the
    outputs every framework must agree on before timing also check how each maps the input
    and the recurrent bias (nn.GRU's b_ih and b_hh, in its own gate order r, z, n)."""
    bias = rng.uniform(-0.1, 0.1, (2, 3 * units)).astype(np.float32)
    return [glorot_uniform(rng, width, 3 * units), orthogonal(rng, units, 3 * units), bias]


RNN_WEIGHTS = {"lstm": lstm_weights, "gru": gru_weights}


def dense_weights(rng: np.random.Generator, width: int, classes: int) -> List[np.ndarray]:
    return [glorot_uniform(rng, width, classes), np.zeros(classes, np.float32)]


def conv_weights(rng: np.random.Generator, kernel_size: int, channels: int, filters: int) -> List[np.ndarray]:
    """Keras's Conv1D kernel (K, C, F), glorot_uniform with fans K·C and K·F, and a zero bias."""
    limit = np.sqrt(6.0 / (kernel_size * (channels + filters)))
    kernel = rng.uniform(-limit, limit, (kernel_size, channels, filters)).astype(np.float32)
    return [kernel, np.zeros(filters, np.float32)]


def model_weights(cfg: Config, rng: np.random.Generator) -> List[np.ndarray]:
    """The model's weights in Keras order: [E], [Wc, bc], W, U, b, [W2, U2, b2], Wd, bd."""
    ws: List[np.ndarray] = []
    if cfg.inputs == "ids":
        ws.append(rng.uniform(-0.05, 0.05, (cfg.features, cfg.embed_dim)).astype(np.float32))
    if cfg.conv:
        ws += conv_weights(rng, cfg.conv[1], cfg.input_width, cfg.conv[0])
    rnn_weights = RNN_WEIGHTS[cfg.cell]
    ws += rnn_weights(rng, cfg.lstm_input_width, cfg.units)
    if cfg.head == "seq2seq":
        ws += rnn_weights(rng, cfg.units, cfg.units)
    ws += dense_weights(rng, cfg.units, cfg.classes)
    return ws


def onehot(ids: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(ids.shape + (width,), np.float32)
    np.put_along_axis(out, ids[..., None], 1.0, axis=-1)
    return out


def batch(cfg: Config, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, y_ids): x as the Keras-like models take it, y their target, and
    y_ids the same target as int class ids (what PyTorch's cross_entropy takes)."""
    B, T = cfg.batch, cfg.steps
    if cfg.inputs == "onehot":
        x = onehot(rng.integers(0, cfg.features, (B, T)), cfg.features)
    elif cfg.inputs == "ids":
        x = rng.integers(0, cfg.features, (B, T)).astype(np.int32)
    else:
        x = rng.standard_normal((B, T, cfg.features)).astype(np.float32)
    target_shape = {"last": (B,), "sequence": (B, T), "seq2seq": (B, cfg.out_steps)}[cfg.head]
    y_ids = rng.integers(0, cfg.classes, target_shape).astype(np.int64)
    y = onehot(y_ids, cfg.classes) if cfg.loss == "categorical" else y_ids.astype(np.int32)
    return x, y, y_ids
