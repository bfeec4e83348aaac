"""Keras's progress bar, drawn with the standard library only.

    Epoch 1/10
    32/32 ━━━━━━━━━━━━━━━━━━━━ 1s 3ms/step - acc: 0.9100 - loss: 0.2900

verbose=1 redraws one line in place while the epoch runs; verbose=2 prints one
line per epoch ("32/32 - 1s - 3ms/step - acc: ... - loss: ..."). The values
shown are the logs as given: in Keras 3 (and here) the batch logs are already
the running means over the epoch, so nothing is averaged again.

Where we differ from Keras on purpose: when stdout is not a terminal (a log file,
a pipe, a CI console), Keras 3 still emits backspaces and carriage returns (it
treats every POSIX process as a terminal) and colour codes; we print the
finished line once per epoch, without escape codes, so logs stay readable.
"""

import math
import numbers
import os
import sys
import time

import numpy as np

from .callback import Callback

__all__ = ["Progbar", "ProgbarLogger"]


def _interactive(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty and isatty())
    except ValueError:  # a closed stream
        tty = False
    return tty or "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _format_per_unit(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_value(value):
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        value = float(np.mean(value))  # an array metric (per class): Keras shows its mean
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"
    return str(value)


class Progbar:
    """A progress bar over `target` steps.

    Args:
        target: number of steps, or None when unknown.
        width: bar width in characters.
        verbose: 0 silent, 1 redrawn in place, 2 one line when finished.
        interval: minimum seconds between redraws (verbose=1).
        unit_name: the unit in the speed field ("step").
        stream: where to write; sys.stdout (looked up at each write) when None.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step", stream=None):
        if target is not None and (not isinstance(target, numbers.Integral) or target < 0):
            raise ValueError(
                "Received an invalid value for argument `target`, expected a "
                f"non-negative integer or None, got {target!r}."
            )
        if verbose not in (0, 1, 2):
            raise ValueError(
                f"Received an invalid value for argument `verbose`, expected 0, 1 or 2, got {verbose!r}."
            )
        self.target = None if target is None else int(target)
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._stream = stream
        self._values = {}
        self._start = time.perf_counter()
        self._after_first = None
        self._last_draw = 0.0
        self._prev_width = 0
        self._seen = 0

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _per_step(self, current, now):
        # The first step pays one-off costs (allocation, caches): leave it out
        # of the estimate once there is a second one.
        if not current:
            return 0.0
        if self._after_first is not None and current > 1:
            per = (now - self._after_first) / (current - 1)
        else:
            per = (now - self._start) / current
        if current == 1:
            self._after_first = now
        return per

    def update(self, current, values=None, finalize=None):
        """Show step `current` with `values` (a list of (name, value))."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            self._values[name] = value
        self._seen = current
        now = time.perf_counter()
        per_step = self._per_step(current, now)
        if self.verbose == 1:
            if not finalize and now - self._last_draw < self.interval:
                return
            interactive = _interactive(self.stream)
            if not interactive and not finalize:
                return
            self._draw_bar(current, now, per_step, finalize, interactive)
        elif self.verbose == 2 and finalize:
            self._draw_line(current, now, per_step)
        self._last_draw = now

    def add(self, n, values=None):
        self.update(self._seen + n, values)

    def _metrics(self):
        return "".join(f" - {k}: {_format_value(v)}" for k, v in self._values.items())

    def _draw_bar(self, current, now, per_step, finalize, colour):
        def style(text, code):
            return f"\x1b[{code}m{text}\x1b[0m" if colour else text

        if self.target:
            digits = int(math.log10(self.target)) + 1
            done = int(self.width * min(current, self.target) / self.target)
            bar = (
                style(f"{current:{digits}d}/{self.target}", "1")
                + " "
                + (style("━" * done, "32") if done else "")
                + style("━" * (self.width - done), "37")
            )
            plain_len = digits + 1 + len(str(self.target)) + 1 + self.width
        else:
            bar = f"{current:7d}/Unknown"
            plain_len = len(bar)
        if self.target and not finalize:
            eta = per_step * (self.target - current)
            if eta > 3600:
                when = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
            elif eta > 60:
                when = "%d:%02d" % (eta // 60, eta % 60)
            else:
                when = "%ds" % eta
        else:
            when = f"{now - self._start:.0f}s"
        info = " " + style(when, "1") + " " + _format_per_unit(per_step, self.unit_name) + self._metrics()
        plain_len += 1 + len(when) + 1 + len(_format_per_unit(per_step, self.unit_name)) + len(self._metrics())
        message = ("\r" if colour else "") + bar + info
        if colour and self._prev_width > plain_len:
            message += " " * (self._prev_width - plain_len)
        if finalize:
            message += "\n"
        self._prev_width = plain_len
        self._write(message)

    def _draw_line(self, current, now, per_step):
        if self.target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
        else:
            count = f"{current}"
        line = (
            f"{count} - {now - self._start:.0f}s - "
            f"{_format_per_unit(per_step, self.unit_name)}{self._metrics()}\n"
        )
        self._write(line)

    def _write(self, text):
        stream = self.stream
        try:
            stream.write(text)
        except UnicodeEncodeError:
            # A console that cannot show the bar glyph gets dashes instead.
            stream.write(text.replace("━", "-"))
        stream.flush()


class ProgbarLogger(Callback):
    """Prints `Epoch i/N` and a progress bar during fit, evaluate and predict.

    Reads `verbose`, `epochs` and `steps` from the params the training loop
    passes to CallbackList. fit's validation pass is silent, as in Keras.
    """

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._reset()

    def on_predict_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        if self.verbose and self.epochs > 1:
            self._bar()._write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize(logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs=None):
        self._finalize(logs)

    def _reset(self):
        self.seen = 0
        self.progbar = None

    def _bar(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose if self.verbose in (0, 1, 2) else 1)
        return self.progbar

    def _update(self, batch, logs):
        self.seen = batch + 1
        bar = self._bar()
        if self.verbose == 1:
            bar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize(self, logs):
        bar = self._bar()
        if self.target is None:
            bar.target = self.seen
        bar.update(bar.target, list((logs or {}).items()), finalize=True)
