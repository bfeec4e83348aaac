"""The benchmark configurations (one table) and the FLOP counts of their gate GEMMs.

Every configuration is a small Keras model that all frameworks build layer for
layer alike:

    head "last":     [Embedding] -> LSTM(H) -> Dense(C, softmax)
    head "sequence": [Embedding] -> LSTM(H, return_sequences) -> TimeDistributed(Dense(C, softmax))
    head "seq2seq":  LSTM(H) -> RepeatVector(S) -> LSTM(H, return_sequences)
                     -> TimeDistributed(Dense(C, softmax))

With `conv` = (F, K, P) a Conv1D(F, K, relu) -> MaxPooling1D(P) sits between the input (or
Embedding) and the LSTM: the CNN-LSTM of Keras's imdb_cnn_lstm example.

With `cell` = "gru" every LSTM(H) above is a GRU(H) (Keras 3's default
reset_after=True, two biases: the form of PyTorch's nn.GRU and cuDNN's), same
shapes otherwise: the gru_* rows are their LSTM rows' twins.

Inputs: "onehot" (float one-hot rows of random ids, so fusedlstm's one-hot
detection is what runs, as it would for a user), "ids" (int ids into an
Embedding(V, D)), "dense" (N(0, 1) floats). One-hot configs train with
categorical cross-entropy on one-hot targets, the others with sparse
cross-entropy on int targets.
"""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

GATES = {"lstm": 4, "gru": 3}


@dataclass(frozen=True)
class Config:
    name: str
    batch: int          # B
    steps: int          # T (the encoder's T for seq2seq)
    inputs: str         # "onehot" | "ids" | "dense"
    features: int       # one-hot width, vocabulary V, or dense width I
    units: int          # H
    classes: int        # C of the softmax
    head: str           # "last" | "sequence" | "seq2seq"
    embed_dim: Optional[int] = None   # D, for inputs == "ids"
    out_steps: int = 0                # S, for head == "seq2seq"
    # Train-step ratio vs PyTorch the issue asks for: (target, stretch).
    target: Optional[Tuple[float, float]] = None
    # Executed GEMM GFLOP/s as a fraction of numpy's sgemm the issue asks for.
    sgemm_target: Optional[float] = None
    # (filters, kernel_size, pool_size) of a Conv1D(relu) + MaxPooling1D before the LSTM.
    conv: Optional[Tuple[int, int, int]] = None
    cell: str = "lstm"  # "lstm" | "gru": the recurrent layer(s)

    @property
    def gates(self) -> int:
        """g of the (I, g·H) kernel: LSTM's i, f, c, o or GRU's z, r, h."""
        return GATES[self.cell]

    @property
    def loss(self) -> str:
        return "categorical" if self.inputs == "onehot" else "sparse"

    @property
    def input_width(self) -> int:
        """What the first layer after the input (or Embedding) reads per step."""
        return self.embed_dim if self.inputs == "ids" else self.features

    @property
    def lstm_input_width(self) -> int:
        return self.conv[0] if self.conv else self.input_width

    @property
    def conv_steps(self) -> int:
        """Steps out of the Conv1D ('valid')."""
        return self.steps - self.conv[1] + 1

    @property
    def lstm_steps(self) -> int:
        return self.conv_steps // self.conv[2] if self.conv else self.steps

    def describe(self) -> str:
        t = f"{self.steps}->{self.out_steps}" if self.head == "seq2seq" else str(self.steps)
        src = {"onehot": f"{self.features} one-hot", "ids": f"Embedding({self.features},{self.embed_dim})",
               "dense": f"{self.features} dense"}[self.inputs]
        conv = f" Conv1D({self.conv[0]},{self.conv[1]})+MaxPool({self.conv[2]})" if self.conv else ""
        cell = " GRU" if self.cell == "gru" else ""
        return f"B={self.batch} T={t} in={src}{conv}{cell} H={self.units}"


CONFIGS: List[Config] = [
    Config("echo", 1, 50, "onehot", 100, 25, 100, "last", target=(10.0, 15.0)),
    Config("echo_batched", 32, 50, "onehot", 100, 25, 100, "last", target=(4.0, 8.0)),
    Config("seq2seq", 21, 5, "onehot", 100, 150, 100, "seq2seq", out_steps=2, target=(3.0, 5.0)),
    Config("chars", 128, 40, "ids", 27, 64, 27, "last", embed_dim=64, target=(2.0, 3.0)),
    Config("chars_seq", 128, 40, "ids", 27, 256, 27, "sequence", embed_dim=64, target=(1.5, 1.75)),
    Config("large", 64, 100, "dense", 512, 512, 10, "last", target=(1.0, 1.1), sgemm_target=0.8),
    Config("xlarge", 32, 200, "dense", 1024, 1024, 10, "last", target=(1.0, 1.05), sgemm_target=0.8),
    # keras-io's imdb_cnn_lstm: maxlen 100, Embedding(20000, 128), Conv1D(64, 5), MaxPooling1D(4),
    # LSTM(70), batch 30 (its Dropout left out, and its Dense(1, sigmoid) a 2-way softmax, as the
    # other rows' heads).
    Config("cnn_lstm", 30, 100, "ids", 20000, 70, 2, "last", embed_dim=128, conv=(64, 5, 4), target=(1.5, 2.0)),
    # The GRU rows (issue #24): the LSTM rows' shapes with GRU(H), the LSTM rows' targets.
    Config("gru_echo", 1, 50, "onehot", 100, 25, 100, "last", cell="gru", target=(10.0, 15.0)),
    Config("gru_chars", 128, 40, "ids", 27, 64, 27, "last", embed_dim=64, cell="gru", target=(2.0, 3.0)),
    Config("gru_chars_seq", 128, 40, "ids", 27, 256, 27, "sequence", embed_dim=64, cell="gru", target=(1.5, 1.75)),
    Config("gru_large", 64, 100, "dense", 512, 512, 10, "last", cell="gru", target=(1.0, 1.1), sgemm_target=0.8),
]

# --quick: the same models at sizes that run in milliseconds (CI smoke run).
_QUICK: Dict[str, dict] = {
    "echo": dict(steps=20),
    "echo_batched": dict(batch=8, steps=20),
    "seq2seq": dict(batch=6),
    "chars": dict(batch=16, steps=12),
    "chars_seq": dict(batch=16, steps=12, units=32),
    "large": dict(batch=8, steps=12, features=48, units=48),
    "xlarge": dict(batch=4, steps=12, features=64, units=64),
    "cnn_lstm": dict(batch=8, steps=24, features=500, embed_dim=16, units=16, conv=(8, 5, 4)),
}
_QUICK.update({f"gru_{n}": _QUICK[n] for n in ("echo", "chars", "chars_seq", "large")})


def get_configs(names: Optional[List[str]] = None, quick: bool = False) -> List[Config]:
    known = {c.name: c for c in CONFIGS}
    if names is None:
        names = list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; expected names from {list(known)}")
    return [replace(known[n], **_QUICK[n]) if quick else known[n] for n in names]


# ---------------------------------------------------------------------------
# FLOP counts of the recurrent gate GEMMs (multiply-add = 2 FLOP); g = 4 gates for
# an LSTM, 3 for a GRU (whose reset-after form multiplies h·U whole, like an LSTM).
#
# Nominal: what a dense implementation performs — per recurrent layer a forward of
# 2·B·T·(I+H)·gH, a training step 3x that (forward, dX/dh, dW/dU).
# Executed: what fusedlstm computes. On the one-hot and Embedding id paths the
# input GEMM is a row lookup into a (V, gH) table (for one-hot the table is the
# kernel itself; for an Embedding it is E·W, 2·V·D·gH, built once per call, and
# its backward is dE = dT·Wᵀ and dW = Eᵀ·dT, 2 x 2·V·D·gH). RepeatVector -> LSTM
# is fused the same way: every step reads the same input, so the table is
# h_enc·W with one row per sample (V = B, D = H). The first layer's backward
# skips dX (nothing upstream needs it).
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LstmLayer:
    batch: int
    steps: int
    inputs: str       # "onehot" | "ids" | "repeat" | "dense" (what this layer's x is)
    width: int        # I (for "ids" the embedding width D)
    units: int
    vocab: int = 0    # table rows: V for "ids", B for "repeat"
    first: bool = True
    gates: int = 4    # g: 4 for an LSTM, 3 for a GRU


def lstm_layers(cfg: Config) -> List[LstmLayer]:
    if cfg.conv:  # the LSTM reads the pooled convolution's dense rows
        return [LstmLayer(cfg.batch, cfg.lstm_steps, "dense", cfg.lstm_input_width, cfg.units, first=False,
                          gates=cfg.gates)]
    enc = LstmLayer(cfg.batch, cfg.steps, cfg.inputs, cfg.lstm_input_width, cfg.units,
                    vocab=cfg.features if cfg.inputs == "ids" else 0, gates=cfg.gates)
    if cfg.head != "seq2seq":
        return [enc]
    return [enc, LstmLayer(cfg.batch, cfg.out_steps, "repeat", cfg.units, cfg.units, vocab=cfg.batch, first=False,
                           gates=cfg.gates)]


def conv_flops(cfg: Config) -> float:
    """Forward GEMM work of the Conv1D: 2·B·L_out·K·C·F (its backward is twice that: dW and dX)."""
    if not cfg.conv:
        return 0.0
    F, K, _ = cfg.conv
    return 2.0 * cfg.batch * cfg.conv_steps * K * cfg.input_width * F


def nominal_flops(cfg: Config) -> Dict[str, float]:
    fwd = sum(2.0 * L.batch * L.steps * (L.width + L.units) * L.gates * L.units for L in lstm_layers(cfg))
    fwd += conv_flops(cfg)
    return {"infer": fwd, "train": 3.0 * fwd}


def executed_flops(cfg: Config) -> Dict[str, float]:
    fwd = bwd = 0.0
    for L in lstm_layers(cfg):
        g = L.gates * L.units
        rec = 2.0 * L.batch * L.steps * L.units * g
        fwd += rec
        bwd += 2 * rec  # dU = Hᵀ·dZ and dh_{t-1} = dZ·Uᵀ
        if L.inputs == "onehot":
            continue  # the kernel is the table; lookups and scatter-adds are not GEMM work
        if L.inputs == "dense":
            inp = 2.0 * L.batch * L.steps * L.width * g
            fwd += inp
            bwd += inp + (0.0 if L.first else inp)  # dW; dX only when a layer below needs it
        else:  # "ids", "repeat": a (V, 4H) table = rows · W
            table = 2.0 * L.vocab * L.width * g
            fwd += table
            bwd += 2 * table  # d(rows) and dW
    conv = conv_flops(cfg)
    return {"infer": fwd + conv, "train": fwd + bwd + 3 * conv}
