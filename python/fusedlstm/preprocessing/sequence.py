"""keras.preprocessing.sequence: where Keras 2 programs import `pad_sequences` from
(Keras 3 keeps the path; the function is fusedlstm.utils.pad_sequences)."""

from ..utils import pad_sequences

__all__ = ["pad_sequences"]
