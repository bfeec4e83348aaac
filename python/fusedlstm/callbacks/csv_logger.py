"""CSVLogger: one row of epoch logs per epoch, in Keras's column layout."""

import collections.abc
import csv
import os

import numpy as np

from .callback import Callback

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Stream epoch results to a CSV file.

    Args:
        filename: path of the CSV file.
        separator: the column separator.
        append: add to an existing file (writing the header only if it is empty)
            instead of overwriting it.

    Columns are `epoch` then the logs keys sorted; when the first epoch has no
    val_ keys, val_ columns are added anyway (filled with NA), as Keras does, so
    files from runs with and without validation share a layout.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(
                "Received an invalid value for argument `filename`, expected a str or "
                f"os.PathLike, got {type(filename).__name__}."
            )
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(
                "Received an invalid value for argument `separator`, expected a single "
                f"character, got {separator!r}."
            )
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        mode = "w"
        self.append_header = True
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r", encoding="utf-8") as f:
                    self.append_header = not f.readline()
            mode = "a"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, _cell(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _cell(value):
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value
