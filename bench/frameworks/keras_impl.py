"""Keras 3 with `train_on_batch` / `predict_on_batch` / `fit`, on a given backend.

Keras fixes its backend when first imported, from KERAS_BACKEND, so one
process can hold one backend only. The "keras" entry (torch backend) shares the
process with the other frameworks; "keras_tf" (TensorFlow backend) is marked
isolated and the runner times it in a worker process of its own.
"""

import importlib.util
import os
import sys

from bench.frameworks import Framework, Unavailable, keras_like


class Keras(Framework):
    def __init__(self, backend: str):
        self.backend = backend
        self.isolated = backend != "torch"

    def check_installed(self) -> None:
        """Raise Unavailable without importing anything heavy."""
        for mod in ("keras", self.backend):
            if importlib.util.find_spec(mod) is None:
                raise Unavailable(f"not installed ({mod} is not importable)")

    def setup(self, threads: int) -> None:
        self.check_installed()
        loaded = sys.modules.get("keras")
        if loaded is not None and loaded.backend.backend() != self.backend:
            raise Unavailable(f"keras already loaded with backend {loaded.backend.backend()!r} "
                              f"in this process; {self.backend!r} needs its own process")
        os.environ["KERAS_BACKEND"] = self.backend
        import keras

        if keras.backend.backend() != self.backend:
            raise Unavailable(f"KERAS_BACKEND={self.backend} was ignored: keras uses {keras.backend.backend()!r}")
        if self.backend == "torch":
            import torch

            torch.set_num_threads(threads)
        elif self.backend == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self.keras = keras

    def version(self) -> str:
        lib = sys.modules.get(self.backend)
        return f"{self.keras.__version__} ({self.backend} {getattr(lib, '__version__', '?')})"

    def build(self, cfg, weights):
        return keras_like.Model(keras_like.build(self.keras, cfg, weights, self.precision))

    def fit_epoch(self, cfg, weights, x, y, y_ids, batch_size, seed):
        return keras_like.fit_epoch(self.keras, cfg, weights, x, y, batch_size, seed, self.precision)
