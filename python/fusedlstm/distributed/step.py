"""The arithmetic of one data-parallel step: shards, loss normalisers, the packed tail.

Keras reduces a loss as Σ values·w / N, where N is the number of loss elements
(batch × time) or, with a mask, the number of unmasked ones (losses.py). A rank
that sees only its shard has N_r, not N; so it scales its gradient (computed with
1/N_r, exactly as a single process would on that shard) back up by N_r, giving the
unnormalised sum, and puts N_r behind it in the same buffer. After one SUM
Allreduce every rank divides by N = Σ N_r: the single-process gradient of the
global batch, whatever the shard sizes and masks.

With several loss outputs each has its own N, and one divisor fits them all only
when every N_r is the shard's sample count times a constant, that is when no loss
output is masked (mode "batch"); a masked multi-output model is refused. Losses
with reduction='sum' are not normalised at all (mode "sum": plain sum).

The tail behind the gradients holds, as float32:
    [scale, S_1..S_K, N_1..N_K, Δa_1 .. Δa_M, digest d, d² ×3]
S_k the output's unnormalised loss sum, N_k its normaliser, Δa the increments of
the M metric accumulators (Metric.state(): sums only), and three 7-bit
digits of a checksum of the global batch and step number with their squares: if
Σd = n·d_r and Σd² = n·d_r² on a rank then every rank had d_r (Σ(d - d_r)² = 0),
so all ranks detect together that they were fed different batches.

`pack_shard` fills this rank's tail from its shard's StepResult; after the
Allreduce, `combine` turns the summed tail into the global batch's losses and
metric sums, recorded through the trainer's step interface (models/step.py).
"""

import struct
import zlib

import numpy as np

from .. import losses as _losses
from ..models import StepResult

__all__ = ["shard_bounds", "loss_mode", "Layout", "normalisers", "batch_digits", "digits_agree", "pack_shard",
           "combine"]

N_DIGITS = 3
DIGIT_BITS = 7
# n·127² must stay an exact float32 integer (< 2**24) for the digit check.
MAX_CHECKED_RANKS = 1000


def shard_bounds(batch, rank, size):
    """Rank `rank`'s contiguous slice [a, b) of a global batch (sizes differ by at most 1)."""
    return (rank * batch) // size, ((rank + 1) * batch) // size


def loss_mode(model):
    """How the shards' gradients combine: 'single', 'batch' or 'sum' (see the module doc)."""
    specs = [s for s in model.compiled_losses if s is not None]
    reductions = {s.loss.reduction for s in specs}
    if reductions == {"sum"}:
        return "sum"
    if "sum" in reductions:
        raise NotImplementedError(
            "MPIStrategy: a model whose losses mix reduction='sum' with averaged reductions "
            f"({sorted(reductions)}) cannot be split across ranks exactly; use one kind.")
    return "single" if len(specs) == 1 else "batch"


class Layout:
    """Offsets of the tail slots for a model with K loss outputs and M metric accumulator
    floats (model.metric_state()'s length: sums, which add across ranks)."""

    def __init__(self, n_losses, n_metrics):
        self.K, self.M = n_losses, n_metrics
        self.S = 1  # slot 0 is the scale (the count the gradient sum is divided by)
        self.N = self.S + n_losses
        self.m = self.N + n_losses
        self.d = self.m + n_metrics
        self.size = self.d + 2 * N_DIGITS


def normalisers(model, preds, pmasks, mode, ys=None, sws=None):
    """Per loss output, this shard's N (float): what the Keras reduction divided by.

    The same divisor losses.reduction_weights uses: values have the prediction's shape
    less its last axis; a mask (the output's, and the loss's own: ignore_class) counts
    its unmasked values; 'mean_with_sample_weight' sums the weights; without either
    every value counts.
    """
    out = []
    for k, spec in enumerate(model.compiled_losses):
        if spec is None:
            continue
        if mode == "sum":
            out.append(1.0)
            continue
        vshape = preds[k].shape[:-1]
        mask = _losses.mask_for_values(pmasks[k], vshape)
        if ys is not None and ys[k] is not None and getattr(spec.loss, "ignore_class", None) is not None:
            mask = _losses.combine_masks(mask, spec.loss.values_mask(spec.loss.prepare_targets(ys[k], preds[k].shape)))
        sw = None
        if spec.loss.reduction == "mean_with_sample_weight" and sws is not None:
            sw = sws[k] if len(sws) > 1 else sws[0]
        if mode == "batch" and (mask is not None or sw is not None):
            raise NotImplementedError(
                f"MPIStrategy: output '{spec.name}' of a model with several losses is masked (or its loss "
                "divides by the sample weights); each output would need its own count in the gradient sum. "
                "Train it in one process, or give it a single loss output.")
        out.append(_losses.reduction_divisor(vshape, sw, mask, spec.loss.reduction))
    return out


def _digest(arrays, step, batch):
    h = zlib.crc32(struct.pack("<qq", step, batch))
    for a in arrays:
        if a is None:
            continue
        a = np.asarray(a)
        h = zlib.crc32(f"{a.shape}{a.dtype.str}".encode(), h)
        if a.size:
            # The first 64 KiB: enough to tell batches apart without reading big ones.
            rows = max(1, 65536 // max(1, a[:1].nbytes)) if a.ndim else 1
            h = zlib.crc32(np.ascontiguousarray(a[:rows] if a.ndim else a).tobytes(), h)
    return h


def batch_digits(arrays, step, batch, out):
    """Write the digest digits and their squares of (arrays, step) into `out` (2·N_DIGITS)."""
    h = _digest(arrays, step, batch)
    for i in range(N_DIGITS):
        d = (h >> (DIGIT_BITS * i)) & ((1 << DIGIT_BITS) - 1)
        out[2 * i] = d
        out[2 * i + 1] = d * d
    return out


def digits_agree(summed, own, size):
    """True when every rank packed `own` (see the module doc); unchecked past 1000 ranks."""
    if size > MAX_CHECKED_RANKS:
        return True
    return bool(np.array_equal(summed.astype(np.float64), own.astype(np.float64) * size))


def pack_shard(model, lay, tail, mode, result, ys, sws, batch):
    """This shard's loss sums, normalisers and metric increments into `tail`; returns the
    scale its gradient must be multiplied by (its normaliser: see the module doc)."""
    norms = normalisers(model, result.predictions, result.masks, mode, ys, sws)
    k = 0
    for spec, value in zip(model.compiled_losses, result.output_losses):
        if spec is None:
            continue
        tail[lay.S + k] = value * norms[k] if mode != "sum" else value
        tail[lay.N + k] = norms[k]
        k += 1
    if lay.M:
        before = model.metric_state()
        model.update_metrics(ys, result.predictions, result.masks, sws)
        tail[lay.m:lay.d] = (model.metric_state() - before)
        model.set_metric_state(before)
    if mode == "single":
        return norms[0]
    return float(batch) if mode == "batch" else 1.0


def combine(model, lay, tail, mode, batch, penalty=0.0):
    """After the Allreduce: the global batch's losses (plus `penalty`, the weight
    regularizers' term, the same on every rank) into the loss trackers and the summed
    metric increments into the metrics; returns the global total loss."""
    total, per_out, k = penalty, [], 0
    for spec in model.compiled_losses:
        if spec is None:
            per_out.append(None)
            continue
        s, n = float(tail[lay.S + k]), float(tail[lay.N + k])
        value = s if mode == "sum" else (s / n if n > 0 else 0.0)
        per_out.append(value)
        total += (1.0 if spec.weight is None else spec.weight) * value
        k += 1
    model.record_step(batch, StepResult(total, per_out, None, None, None, penalty))
    if lay.M:
        model.set_metric_state(model.metric_state() + tail[lay.m:lay.d].astype(np.float64))
    return total
