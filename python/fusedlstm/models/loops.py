"""fit / evaluate / predict: the loops over batches, and checking the data they get.

Reported numbers follow Keras 3: the epoch 'loss' is the batch losses' mean
weighted by batch size; metrics accumulate over the epoch (metrics.py);
'val_*' come from evaluate() on the validation data after each epoch;
train_on_batch/test_on_batch return that one batch's values (Keras 3 resets the
metrics first).

Each batch goes to the model's strategy (strategy.py) for its step; fit keeps its
position (epoch, batches done, the epoch's random state) in a FitProgress
(training_state.py) so that a checkpoint can resume it exactly.
"""

import contextlib
import numbers
import warnings

import numpy as np

from .. import interrupt as _interrupt
from ..callbacks import CallbackList
from ..layers.base import KerasTensor
from ..py_dataset import PyDataset
from ..validation import check_finite, check_numeric
from . import data as _data
from .py_dataset_data import PyDatasetData, unpack_batch
from .training_state import FitProgress

__all__ = ["LoopMixin"]


class LoopMixin:
    """The loops over data (fit, evaluate, predict) and the checks of what they are given."""

    def _prepare_batch(self, x, y, sw, need_y=True):
        xs = self._standardize_inputs(x)
        n_out = len(self.outputs)
        ys = None
        if y is not None:
            ys = self._split_targets(y)
            if len(ys) != n_out:
                raise ValueError(
                    f"Model '{self.name}' has {n_out} output(s) ({self.output_names}), but {len(ys)} "
                    "target array(s) were given.")
            ys = _checked_targets(ys)
        elif need_y:
            raise ValueError(f"Model '{self.name}': `y` (the targets) is required to compute the loss.")
        sws = None
        if sw is not None:
            sws = _checked_sample_weights(_data.as_list(sw))
            if len(sws) not in (1, n_out):
                raise ValueError(f"sample_weight must be one array or one per output ({n_out}), got {len(sws)}.")
        return xs, ys, sws

    def _batch_arrays(self, data, xb, yb, swb, what):
        """A batch from a generator or PyDataset checked as arrays would be; errors name the batch."""
        if isinstance(data, _data.ArrayData):
            return xb, yb, swb
        with _naming_batch(data):
            xs, ys, sws = self._prepare_batch(xb, yb, swb, need_y=False)
            if ys is None:
                raise ValueError(f"{what}: the batch has no targets `y` (expected `(x, y)` or `(x, y, sample_weight)`).")
            n = xs[0].shape[0]
            for name, arrs in (("y", ys), ("sample_weight", sws)):
                for k, a in enumerate(arrs or []):
                    if a is not None and a.ndim and a.shape[0] != n:
                        raise ValueError(f"x has {n} samples but {name}" + (f"[{k}]" if len(arrs) > 1 else "")
                                         + f" has {a.shape[0]} (shape {a.shape}); a batch's arrays must agree.")
            self._check_all_targets(ys)
            class_weight = getattr(data, "class_weight", None)
            if class_weight is not None:
                if sws is not None:
                    raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
                sws = self._apply_class_weight(ys, None, class_weight)
        return xs, ys, sws

    def _batch_inputs(self, data, xb):
        with _naming_batch(data):
            return self._standardize_inputs(xb)

    def _split_targets(self, y):
        """Targets as one entry per output: a dict by output name, a list per output, or one array."""
        if isinstance(y, dict):
            return [y.get(k) for k in self.output_names]
        if len(self.outputs) > 1:
            if not isinstance(y, (list, tuple)):
                raise ValueError(f"Model '{self.name}' has {len(self.outputs)} outputs; pass `y` as a list (or dict by output name) of target arrays.")
            return list(y)
        if isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
            return [y[0]]
        return [y]

    def __call__(self, *args, **kwargs):
        # model(x) on arrays is one inference forward (keras returns a tensor; we return arrays).
        if args and not _is_symbolic(args[0]) and "initial_state" not in kwargs:
            self._maybe_build_from_data(args[0])
        return super().__call__(*args, **kwargs)

    def _maybe_build_from_data(self, x):
        pass

    def _build_for(self, x):
        if not getattr(self, "built", True):
            x = _first_inputs(x)
        self._maybe_build_from_data(x)

    def _apply_class_weight(self, ys, sws, class_weight):
        if class_weight is None:
            return sws
        if sws is not None:
            raise ValueError("You cannot `class_weight` and `sample_weight` at the same time.")
        if len(self.outputs) > 1:
            raise ValueError("`class_weight` is only supported for Models with a single output.")
        return [_data.class_weight_to_sample_weights(ys[0], class_weight)]

    # --- fit / evaluate / predict --------------------------------------------------------------

    def _make_data(self, x, y, sample_weight, batch_size, shuffle, steps, what, batch_size_arg="batch_size"):
        _data.check_steps(steps, _STEPS_ARG.get(what, "steps"))
        kind = "PyDataset" if _is_py_dataset(x) else "generator" if _data.is_generator_like(x) else None
        if kind is not None:
            for arg, v, holds in (("y", y, "the targets"), ("sample_weight", sample_weight, "the sample weights")):
                if v is not None:
                    raise ValueError(f"When providing `x` as a {kind}, `{arg}` should not be passed. Instead, "
                                     f"{holds} should be included as part of the {kind} ({what}).")
            if batch_size is not None:
                # Keras 3 ignores it without a word (a Keras program passing it must still run); say so once.
                warnings.warn(
                    f"`{batch_size_arg}={batch_size!r}` has no effect with `x` given as a {kind} ({what}): the "
                    f"{kind} makes the batches itself.", UserWarning, stacklevel=3)
            if kind == "PyDataset":
                return PyDatasetData(x, steps, shuffle, what)
            return _data.GeneratorData(x, steps)
        if x is None:
            raise ValueError(f"{what}: `x` is required.")
        xs = self._standardize_inputs(x)
        if xs[0].shape[0] == 0:
            raise ValueError(
                f"Received an invalid value for argument `x`, expected at least one sample, got an array of "
                f"shape {xs[0].shape} ({what}).")
        self._check_ids(xs)
        ys = None
        if y is not None:
            ys = _checked_targets(self._split_targets(y))
            self._check_all_targets(ys)
        sws = None
        if sample_weight is not None:
            sws = _checked_sample_weights(sample_weight if isinstance(sample_weight, (list, tuple)) and len(self.outputs) > 1 else [sample_weight])
        return _data.ArrayData(xs, ys, sws, _data.check_batch_size(batch_size), shuffle, steps)

    def _check_all_targets(self, ys):
        """Check whole target arrays against the losses before the first step, so a bad label
        is reported at its position in the data and no step has been applied yet."""
        if not self._loss_specs or len(ys) != len(self.outputs):
            return
        for spec, y, out in zip(self._loss_specs, ys, self.outputs):
            if spec is None or y is None or y.ndim == 0:
                continue
            shape = tuple(y.shape[i] if d is None and i < y.ndim else d for i, d in enumerate(out.shape))
            spec.loss.prepare_targets(y, (y.shape[0],) + shape[1:])

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, max_queue_size=10, workers=1,
            use_multiprocessing=False, nb_epoch=None):
        """Train for `epochs` epochs; returns the History (Keras 3 semantics and defaults)."""
        if nb_epoch is not None:
            epochs = nb_epoch
        for arg, v in (("epochs", epochs), ("initial_epoch", initial_epoch), ("validation_freq", validation_freq)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < (1 if arg == "validation_freq" else 0):
                raise ValueError(f"Received an invalid value for argument `{arg}`, expected a {'positive' if arg == 'validation_freq' else 'non-negative'} integer, got {v!r}.")
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real):
            raise TypeError(
                "Received an invalid value for argument `validation_split`, expected a float between 0 and 1, "
                f"got {validation_split!r}.")
        if validation_batch_size is not None:
            _data.check_batch_size(validation_batch_size, "validation_batch_size")
        self._build_for(x)
        self._assert_compiled("fit")
        verbose = _verbosity(verbose)
        if y is None and not (_is_py_dataset(x) or _data.is_generator_like(x)):
            raise ValueError("fit: `y` (the targets) is required when `x` is an array.")
        if validation_split and validation_data is None:
            if _is_py_dataset(x) or _data.is_generator_like(x):
                raise ValueError("`validation_split` is only supported for arrays, not generators or PyDatasets: "
                                 "pass `validation_data` instead.")
            xs = self._standardize_inputs(x)
            ylist = self._split_targets(y) if y is not None else []
            swl = _data.as_list(sample_weight)
            arrays = xs + [np.asarray(t) for t in ylist] + ([np.asarray(s) for s in swl] if swl else [])
            tr, va = _data.validation_split(arrays, validation_split)
            nx, ny = len(xs), len(ylist)
            x, y = tr[:nx], (tr[nx:nx + ny] if ny > 1 else tr[nx])
            validation_data = (va[:nx], va[nx:nx + ny] if ny > 1 else va[nx]) + ((va[nx + ny:] if len(swl) > 1 else va[nx + ny],) if swl else ())
            if swl:
                sample_weight = tr[nx + ny:] if len(swl) > 1 else tr[nx + ny]
            if nx == 1:
                x = x[0]
                validation_data = (validation_data[0][0],) + validation_data[1:]
        if class_weight is not None and _data.is_generator_like(x) and not _is_py_dataset(x):
            raise ValueError("Argument `class_weight` is not supported for Python generator inputs. Received: "
                             f"class_weight={class_weight}")
        if class_weight is not None and not _is_py_dataset(x):
            sample_weight = self._apply_class_weight([np.asarray(y)], _data.as_list(sample_weight), class_weight)[0]
        train = self._make_data(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, "fit")
        if class_weight is not None and isinstance(train, PyDatasetData):
            _data.class_weight_to_sample_weights(np.zeros(0, np.int64), class_weight)  # checks the dict now
            train.class_weight = class_weight
        val = None
        if validation_data is not None:
            val = self._validation(validation_data, validation_batch_size, batch_size, validation_steps)
        train.reset()
        verbose, callbacks = self._strategy().begin_fit(self, train, val, callbacks, verbose, epochs, initial_epoch)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=train.steps)
        progress = FitProgress(self, train, initial_epoch)
        with _interrupt.deferred_sigint() as guard:
            self._fit_progress, self._sigint_guard = progress, guard
            self._skip_nonfinite = any(getattr(c, "skips_nonfinite_updates", False) for c in cbs.callbacks)
            try:
                return self._run_epochs(train, val, cbs, progress, guard, initial_epoch, epochs, validation_freq)
            finally:
                self._fit_progress = self._sigint_guard = None
                self._skip_nonfinite = False

    def _run_epochs(self, train, val, cbs, progress, guard, initial_epoch, epochs, validation_freq):
        self.stop_training = False
        cbs.on_train_begin()
        epoch_logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            batches, start = progress.epoch_batches(epoch, train)
            logs = self._logs() if start else {}  # a resumed epoch continues its running means
            for step, (xb, yb, swb) in batches:
                cbs.on_train_batch_begin(step)
                xs, ys, sws = self._batch_arrays(train, xb, yb, swb, "fit")
                with guard:
                    self._train_step(xs, ys, sws)
                    progress.step_done(step)
                logs = self._logs()
                cbs.on_train_batch_end(step, logs)
                guard.check(f"after epoch {epoch + 1}, batch {step}")
                if self.stop_training:
                    break
            train.end_epoch()
            progress.end_epoch()
            if not logs:
                raise ValueError("fit: the training data is empty (no batch in an epoch).")
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_data(val, cbs)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            guard.check(f"at the end of epoch {epoch + 1}")
            if self.stop_training:
                break
        if epochs > 0 and self.optimizer.use_ema and self.optimizer.built:
            # Keras's fit ends by copying the optimizer's moving average into the weights.
            self.optimizer.finalize_variable_values(self._ensure_store().variables)
        cbs.on_train_end(epoch_logs)
        return self.history

    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True,
                      initial_epoch=0):
        """Keras 2 spelling of fit(generator, ...)."""
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data,
                        validation_steps=validation_steps, class_weight=class_weight,
                        shuffle=shuffle, initial_epoch=initial_epoch)

    def _validation(self, vd, validation_batch_size, batch_size, steps):
        if _is_py_dataset(vd) or _data.is_generator_like(vd):
            # fit's own batch_size is for x; only an explicit validation_batch_size is refused here.
            return self._make_data(vd, None, None, validation_batch_size, False, steps, "validation_data",
                                   "validation_batch_size")
        batch_size = validation_batch_size or batch_size
        if not isinstance(vd, (tuple, list)) or len(vd) not in (2, 3):
            raise ValueError(
                "When passing `validation_data`, it must contain either 2 items (x_val, y_val), or 3 "
                f"items (x_val, y_val, val_sample_weights), or alternatively it could be a dataset or a "
                f"dataset iterator. However we received `validation_data={type(vd).__name__}` of length "
                f"{len(vd) if hasattr(vd, '__len__') else '?'}.")
        return self._make_data(vd[0], vd[1], vd[2] if len(vd) == 3 else None, batch_size, False, steps, "validation_data")

    def _evaluate_data(self, data, cbs):
        self.reset_metrics()
        cbs.on_test_begin()
        data.reset()
        logs = {}
        for step, (xb, yb, swb) in enumerate(data.epoch()):
            cbs.on_test_batch_begin(step)
            xs, ys, sws = self._batch_arrays(data, xb, yb, swb, "evaluate")
            self._test_step(xs, ys, sws)
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
            if self._sigint_guard is not None:  # fit's validation: a Ctrl-C need not wait for its end
                self._sigint_guard.check(f"during validation batch {step}")
        data.end_epoch()
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics on data (returns a float, a list, or a dict with return_dict)."""
        if kwargs:
            raise TypeError(f"evaluate() got unexpected keyword argument(s): {sorted(kwargs)}")
        self._build_for(x)
        self._assert_compiled("evaluate")
        verbose = _verbosity(verbose)
        data = self._make_data(x, y, sample_weight, batch_size, False, steps, "evaluate")
        verbose, callbacks = self._strategy().begin_evaluate(self, data, callbacks, verbose)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=data.steps)
        logs = self._evaluate_data(data, cbs)
        return self._result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for every sample of x, computed in batches (default 32)."""
        self._build_for(x)
        verbose = _verbosity(verbose)
        data = self._make_data(x, None, None, batch_size, False, steps, "predict")
        verbose, callbacks = self._strategy().begin_predict(self, data, callbacks, verbose)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=data.steps)
        cbs.on_predict_begin()
        chunks = None
        for step, (xb, _, _) in enumerate(data.epoch()):
            cbs.on_predict_batch_begin(step)
            xs = xb if isinstance(data, _data.ArrayData) else self._batch_inputs(data, xb)
            outs = self._predict_batch(xs)
            if chunks is None:
                chunks = [[] for _ in outs]
            for c, o in zip(chunks, outs):
                c.append(o)
            cbs.on_predict_batch_end(step, {"outputs": outs[0] if len(outs) == 1 else outs})
        data.end_epoch()
        cbs.on_predict_end()
        if chunks is None:
            raise ValueError("predict: the input data is empty.")
        res = [c[0] if len(c) == 1 else np.concatenate(c, axis=0) for c in chunks]
        return res if self._outputs_list else res[0]

    def predict_generator(self, generator, steps=None, verbose=0, **kwargs):
        """Keras 2 spelling of predict(generator, steps=...)."""
        return self.predict(generator, steps=steps, verbose=verbose)

    def evaluate_generator(self, generator, steps=None, verbose=0, **kwargs):
        """Keras 2 spelling of evaluate(generator, steps=...)."""
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras <= 2.5: argmax of the outputs, or (p > 0.5) for a single sigmoid unit."""
        p = self.predict(x, batch_size=batch_size, verbose=verbose)
        if p.shape[-1] > 1:
            return p.argmax(axis=-1)
        return (p > 0.5).astype("int32")

    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras <= 2.5: the model outputs (probabilities for a softmax/sigmoid head)."""
        return self.predict(x, batch_size=batch_size, verbose=verbose)


_STEPS_ARG = {"fit": "steps_per_epoch", "validation_data": "validation_steps"}


def _first_inputs(x):
    """What an unbuilt model infers its input shape from: for a PyDataset, batch 0's x
    (Keras's fit also reads batch 0 to build); anything else as given."""
    if not _is_py_dataset(x):
        return x
    n = x.num_batches if isinstance(x, PyDataset) else len(x)
    return x if n == 0 else unpack_batch(x[0], "batch 0 of the PyDataset")[0]


def _is_py_dataset(x):
    return isinstance(x, PyDataset) or (_data.is_sequence_like(x) and not hasattr(x, "shape"))


@contextlib.contextmanager
def _naming_batch(data):
    """Re-raise a ValueError/TypeError about one batch with the batch's place in front."""
    try:
        yield
    except (ValueError, TypeError) as e:
        where = data.where() if hasattr(data, "where") else None
        if where is None or str(e).startswith(where):
            raise
        raise type(e)(f"{where}: {e}") from e


def _checked_arrays(arrays, name, dtype=None):
    """One entry per output as arrays (None kept), after refusing non-numeric dtypes
    and NaN/Inf; `name` leads the error messages, `dtype` casts after the dtype check."""
    out = []
    for k, v in enumerate(arrays):
        if v is None:
            out.append(None)
            continue
        a = np.asarray(v)
        what = name + (f" (output {k})" if len(arrays) > 1 else "")
        check_numeric(a, what)
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        check_finite(a, what)
        out.append(a)
    return out


def _checked_targets(ys):
    return _checked_arrays(ys, "The targets `y`")


def _checked_sample_weights(sws):
    return _checked_arrays(sws, "`sample_weight`", np.float32)


def _verbosity(v):
    if v == "auto":
        return 1
    if v not in (0, 1, 2):
        raise ValueError(f"Received an invalid value for argument `verbose`, expected 0, 1, 2 or 'auto', got {v!r}.")
    return int(v)


def _is_symbolic(x):
    if isinstance(x, (list, tuple)):
        return any(isinstance(t, KerasTensor) for t in x)
    return isinstance(x, KerasTensor)
