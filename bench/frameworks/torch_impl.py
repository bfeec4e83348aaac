"""PyTorch (CPU) as its users write it: nn.LSTM (or nn.GRU)(batch_first=True) + nn.Linear,
cross_entropy on logits with class-id targets, torch.optim.Adam; a step is
zero_grad / forward / backward / step, inference runs under inference_mode.
Under the bench's --precision mixed_bfloat16 the forward passes (and the loss) run
under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's one-line mixed precision;
backward and Adam run outside it, on float32 parameters, as autocast prescribes.
A CNN-LSTM row runs nn.Conv1d + relu + max_pool1d on the (batch, channels, steps)
transpose, as PyTorch code does; its weight = Keras's kernel (K, C, F) as (F, C, K).

Keras weights map as weight_ih = kernel.T, weight_hh = recurrent_kernel.T,
bias_ih = bias, bias_hh = 0 (same gate order i, f, g=c, o), Linear.weight =
kernel.T. A Keras GRU (reset_after=True, gates z, r, h; bias rows input, recurrent)
is nn.GRU's form with its gates in the order r, z, n: weight_ih = kernel.T and
weight_hh = recurrent_kernel.T with their gate blocks reordered, bias_ih = bias[0]
and bias_hh = bias[1] likewise. Adam uses Keras's defaults (lr 1e-3, eps 1e-7; torch's own eps
default is 1e-8).
"""

import time

import numpy as np

from bench.frameworks import Framework, Unavailable


class Torch(Framework):
    def setup(self, threads: int) -> None:
        try:
            import torch
        except ImportError as exc:
            raise Unavailable(f"not installed ({exc})") from exc
        torch.set_num_threads(threads)
        self.torch = torch

    def version(self) -> str:
        return self.torch.__version__

    def build(self, cfg, weights):
        return _Model(self.torch, cfg, weights, self.precision)

    def fit_epoch(self, cfg, weights, x, y, y_ids, batch_size, seed):
        """One shuffled epoch the idiomatic fast way (index tensors, no DataLoader
        collation); returns (seconds, sample-weighted mean batch loss) as Keras's
        fit reports it."""
        torch = self.torch
        m = _Model(torch, cfg, weights, self.precision)
        xt, yt = m.prepare(x, y, y_ids)
        n = xt.shape[0]
        total = 0.0
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = m.train((xt[idx], yt[idx]))
            total += loss.item() * len(idx)
        return time.perf_counter() - t0, total / n


def _module(torch, cfg):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(cfg.features, cfg.embed_dim) if cfg.inputs == "ids" else None
            self.conv = nn.Conv1d(cfg.input_width, cfg.conv[0], cfg.conv[1]) if cfg.conv else None
            rnn = nn.GRU if cfg.cell == "gru" else nn.LSTM
            self.lstm = rnn(cfg.lstm_input_width, cfg.units, batch_first=True)
            self.dec = rnn(cfg.units, cfg.units, batch_first=True) if cfg.head == "seq2seq" else None
            self.out = nn.Linear(cfg.units, cfg.classes)

        def forward(self, x):  # returns logits
            if self.emb is not None:
                x = self.emb(x)
            if self.conv is not None:
                h = torch.relu(self.conv(x.transpose(1, 2)))
                x = torch.nn.functional.max_pool1d(h, cfg.conv[2]).transpose(1, 2)
            y, _ = self.lstm(x)
            if cfg.head == "sequence":
                return self.out(y)
            last = y[:, -1]
            if cfg.head == "last":
                return self.out(last)
            y2, _ = self.dec(last.unsqueeze(1).expand(-1, cfg.out_steps, -1))
            return self.out(y2)

    return Net()


def _load(torch, net, cfg, weights):
    lstms = [net.lstm] + ([net.dec] if net.dec is not None else [])
    expected = (net.emb is not None) + 2 * (net.conv is not None) + 3 * len(lstms) + 2
    if len(weights) != expected:
        raise ValueError(f"weights: expected {expected} arrays for config {cfg.name}, got {len(weights)}")
    ws = [torch.from_numpy(np.ascontiguousarray(w, np.float32)) for w in weights]
    with torch.no_grad():
        k = 0
        if net.emb is not None:
            net.emb.weight.copy_(ws[0])
            k = 1
        if net.conv is not None:
            net.conv.weight.copy_(ws[k].permute(2, 1, 0))
            net.conv.bias.copy_(ws[k + 1])
            k += 2
        for lstm in lstms:
            W, U, b = ws[k:k + 3]
            k += 3
            if cfg.cell == "gru":
                order = torch.from_numpy(_keras_to_torch_gru(cfg.units))
                lstm.weight_ih_l0.copy_(W[:, order].T)
                lstm.weight_hh_l0.copy_(U[:, order].T)
                lstm.bias_ih_l0.copy_(b[0, order])
                lstm.bias_hh_l0.copy_(b[1, order])
                continue
            lstm.weight_ih_l0.copy_(W.T)
            lstm.weight_hh_l0.copy_(U.T)
            lstm.bias_ih_l0.copy_(b)
            lstm.bias_hh_l0.zero_()
        net.out.weight.copy_(ws[k].T)
        net.out.bias.copy_(ws[k + 1])


def _keras_to_torch_gru(units):
    """Column order taking Keras's GRU gate blocks (z, r, h) to nn.GRU's (r, z, n)."""
    z, r, h = (np.arange(units) + i * units for i in range(3))
    return np.concatenate([r, z, h])


class _Model:
    def __init__(self, torch, cfg, weights, precision="float32"):
        self.torch, self.cfg = torch, cfg
        self.net = _module(torch, cfg)
        _load(torch, self.net, cfg, weights)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        self.F = torch.nn.functional
        self.mixed = precision == "mixed_bfloat16"

    def _autocast(self):
        return self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=self.mixed)

    def prepare(self, x, y, y_ids):
        torch = self.torch
        xt = torch.from_numpy(x.astype(np.int64) if self.cfg.inputs == "ids" else x)
        return xt, torch.from_numpy(y_ids.astype(np.int64))

    def train(self, batch):
        x, t = batch
        self.opt.zero_grad()
        with self._autocast():
            logits = self.net(x)
            loss = self.F.cross_entropy(logits.reshape(-1, self.cfg.classes), t.reshape(-1))
        loss.backward()
        self.opt.step()
        return loss.detach()

    def infer(self, batch):
        with self.torch.inference_mode(), self._autocast():
            return self.torch.softmax(self.net(batch[0]), dim=-1)

    def to_numpy(self, out):
        return out.float().numpy()
