"""TextVectorization as a layer (keras.layers.TextVectorization, output_mode="int").

The text logic (standardize, split, n-grams, the vocabulary and its order, adapt) is
fusedlstm.preprocessing.TextVectorization's; this layer wraps it so that it can be
called on strings, sit first in a Sequential or functional model on a string Input
(`Input(shape=(1,), dtype="string")` or `shape=()`), and be saved with the model: its
config holds the vocabulary (Keras keeps an adapted vocabulary in the file's assets
instead; ours is in the config, so a model file is one self-contained description).

It has no weights and no gradient: in fit, the strings go through it in the forward
pass and training starts at the layers after it. Output: int64 ids, (batch,
output_sequence_length) — or (batch, longest row of the batch) without one.

>>> tv = TextVectorization(max_tokens=6, output_sequence_length=4)
>>> tv.adapt(["The cat sat.", "The cat ran!", "A dog"])
>>> tv(["the dog sat", "cat"]).tolist()
[[2, 1, 4, 0], [3, 0, 0, 0]]
"""

from ..preprocessing import text_vectorization as _text
from ..registry import register
from .base import Layer

__all__ = ["TextVectorization"]


@register("layers")
class TextVectorization(Layer):
    """Strings to token ids; arguments as fusedlstm.preprocessing.TextVectorization's
    (Keras 3.15.1's names and defaults)."""

    _takes_strings = True

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace",
                 ngrams=None, output_mode="int", output_sequence_length=None, pad_to_max_tokens=False,
                 vocabulary=None, idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None,
                 **kwargs):
        kwargs.pop("dtype", None)  # Keras writes its int64 compute dtype here; ours is fixed
        kwargs.pop("vocabulary_size", None)  # in Keras's config, derived from the vocabulary
        super().__init__(name=name, **kwargs)
        self._text = _text.TextVectorization(
            max_tokens=max_tokens, standardize=standardize, split=split, ngrams=ngrams, output_mode=output_mode,
            output_sequence_length=output_sequence_length, pad_to_max_tokens=pad_to_max_tokens,
            vocabulary=vocabulary, idf_weights=idf_weights, sparse=sparse, ragged=ragged, encoding=encoding,
            name=self.name)
        self.dtype = "int64"
        self.built = True

    # --- the vocabulary (Keras's methods) ------------------------------------------------

    def adapt(self, data, batch_size=None, steps=None):
        """Build the vocabulary from strings, or an iterable of batches of strings (e.g. a PyDataset)."""
        self._text.adapt(data, batch_size=batch_size, steps=steps)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self._text.set_vocabulary(vocabulary, idf_weights=idf_weights)

    def get_vocabulary(self, include_special_tokens=True):
        return self._text.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self._text.vocabulary_size()

    @property
    def max_tokens(self):
        return self._text.max_tokens

    @property
    def output_sequence_length(self):
        return self._text.output_sequence_length

    # --- the layer -----------------------------------------------------------------------

    def _check_input_shapes(self, shapes):
        shape = shapes[0]
        if self._text._split is not None and len(shape) > 1 and shape[-1] not in (1, None) or len(shape) > 2:
            raise ValueError(
                f"Layer '{self.name}' (TextVectorization) takes strings of shape (batch,) or (batch, 1), "
                f"got shape {tuple(shape)}.")

    def compute_output_shape(self, input_shape):
        if self._text._split is None:
            lead = tuple(input_shape)
            return lead if self.output_sequence_length is None or len(lead) < 2 else lead[:-1] + (
                self.output_sequence_length,)
        return (input_shape[0], self.output_sequence_length)

    def _output_dtypes(self, dtypes):
        return ["int64"]

    def _flatten_call(self, inputs, initial_state):
        if initial_state is not None:
            raise NotImplementedError("TextVectorization does not take `initial_state`.")
        return [inputs], 0  # a list of strings is one batch, not several inputs

    def _prepare_eager(self, arr, i):
        return arr  # strings: the text logic checks them (a TypeError naming the position)

    def _call_eager(self, flat, training, mask):
        return self._text(flat[0])

    def _fwd(self, inputs, masks, training, ctx):
        return [self._text(inputs[0])], [None], None

    def _bwd(self, cache, douts, need, ctx):
        return [None]

    # --- config --------------------------------------------------------------------------

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("dtype", None)
        text = self._text.get_config()
        for key in ("standardize", "split"):
            if callable(text[key]):
                raise NotImplementedError(
                    f"Layer '{self.name}' (TextVectorization): a Python callable as `{key}` cannot be written to a "
                    "config (fusedlstm never stores or runs code from a file); use one of the named modes.")
        text.pop("name", None)
        # The vocabulary goes into the config, adapted or given, so the model file is self-contained.
        text["vocabulary"] = self.get_vocabulary() if self.vocabulary_size() > 2 else text["vocabulary"]
        cfg.update(text)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        vocabulary = config.pop("vocabulary", None)
        layer = cls(**config)
        if vocabulary is not None:
            layer._text.set_vocabulary(vocabulary)
            layer._text._input_vocabulary = None  # a loaded vocabulary may be adapted again, as in Keras
        return layer
