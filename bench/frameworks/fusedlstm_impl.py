"""fusedlstm through its Keras-like API: the same model code as the Keras entry
(`keras_like.build(fusedlstm, ...)`), `train_on_batch` / `predict_on_batch` /
`fit`, one-hot float inputs left for its one-hot detection to find."""

from bench.frameworks import Framework, Unavailable, keras_like


class FusedLstm(Framework):
    def setup(self, threads: int) -> None:
        try:
            import fusedlstm
            # the Keras-like API; the C++ core alone cannot run a model
            import fusedlstm.layers  # noqa: F401
            import fusedlstm.models  # noqa: F401
            import fusedlstm.optimizers  # noqa: F401
        except ImportError as exc:
            raise Unavailable(f"not importable ({exc})") from exc
        fusedlstm.set_num_threads(threads)
        self.lib = fusedlstm

    def version(self) -> str:
        return self.lib.__version__

    def build_info(self) -> dict:
        return dict(self.lib.build_info())

    def build(self, cfg, weights):
        return keras_like.Model(keras_like.build(self.lib, cfg, weights, self.precision))

    def fit_epoch(self, cfg, weights, x, y, y_ids, batch_size, seed):
        return keras_like.fit_epoch(self.lib, cfg, weights, x, y, batch_size, seed, self.precision)
