"""Train one configuration and record every step: run under mpirun (--mode mpi) or alone.

Writes <out>/<config>-rank<r>.npz (or -single.npz) with the loss logged after every
step, the flat weights after every step, the epoch history (validation included),
evaluate() and predict().
"""

import numpy as np

from common import build, flat_weights, out_file, parser, strategy
from fusedlstm import callbacks


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses, self.weights = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])
        self.weights.append(flat_weights(self.model))


def main():
    args = parser().parse_args()
    dist = strategy(args)
    model, fit_kw, (x, y, xe, ye) = build(args.config, args.seed, dist)
    rec = Recorder()
    hist = model.fit(x, y, verbose=0, callbacks=[rec], **fit_kw)
    if dist is None or dist.is_root:
        # evaluate() is local: rank 0 alone may call it (a collective one would hang here).
        model.evaluate(xe, ye, batch_size=5, verbose=0)
    ev = model.evaluate(xe, ye, batch_size=3, verbose=0, return_dict=True)
    pred = model.predict(xe, batch_size=4, verbose=0)
    pred = pred if isinstance(pred, list) else [pred]
    keys = sorted(hist.history)
    np.savez(out_file(args, dist, args.config),
             losses=np.array(rec.losses), weights=np.stack(rec.weights),
             history_keys=np.array(keys), history=_flat([hist.history[k] for k in keys]),
             eval_keys=np.array(sorted(ev)), eval=_flat([ev[k] for k in sorted(ev)]),
             **{f"pred{i}": p for i, p in enumerate(pred)})


def _flat(values):
    """Logged values (floats, or arrays for metrics such as Precision at several thresholds) as one vector."""
    return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in values])


if __name__ == "__main__":
    main()
