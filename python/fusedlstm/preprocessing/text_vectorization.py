"""TextVectorization's logic (keras.layers.TextVectorization, output_mode="int"): strings -> token ids.

Each string is standardized, split into tokens (and n-grams), and every token
looked up in a vocabulary; the ids of a batch are padded with 0 to the longest
row or cut/padded to `output_sequence_length`. As in Keras 3.15.1:

* standardize: "lower_and_strip_punctuation" (default), "lower", "strip_punctuation",
  None, or a callable taking a NumPy array of str and returning one. Lowercasing
  is tf.strings.lower's: ASCII letters only ("É" stays "É"); the punctuation
  removed is ``!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'``.
* split: "whitespace" (runs of ASCII whitespace, none at the ends, as
  tf.strings.split), "character" (Unicode code points), None (the whole string is
  one token), or a callable taking the standardized str array and returning a
  list of token lists per string.
* the vocabulary: index 0 is the padding '', 1 the OOV token '[UNK]', then the
  tokens. `adapt` counts tokens and orders them by count, ties broken by the
  token in reverse (code point) order — IndexLookup's
  `np.lexsort((tokens, counts))[::-1]` — keeping max_tokens - 2 of them.
* unknown tokens map to 1; ids are int64.

Keras's TextVectorization needs TensorFlow even on the torch backend; this class
needs only NumPy and the standard library. Not here: output modes other than
"int", ragged/sparse outputs, pad_to_max_tokens (meaningful only for the other
modes). fusedlstm.layers wraps the class as a layer.

>>> tv = TextVectorization(max_tokens=6, output_sequence_length=4)
>>> tv.adapt(["The cat sat.", "The cat ran!", "A dog"])
>>> tv.get_vocabulary()
['', '[UNK]', 'the', 'cat', 'sat', 'ran']
>>> tv(["the dog sat", "cat"]).tolist()
[[2, 1, 4, 0], [3, 0, 0, 0]]
"""

import collections
import numbers
import os
import re

import numpy as np

__all__ = ["TextVectorization"]

PAD, OOV = "", "[UNK]"
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_ASCII_WS = re.compile(r"[ \t\n\v\f\r]+")
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")


def _check_choice(name, value, allowed):
    if value is None or callable(value):
        return value
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"Received an invalid value for argument `{name}`, expected one of {list(allowed)}, "
                         f"None or a callable, got {value!r}.")
    return value


class TextVectorization:
    """Strings to sequences of token ids; see the module docstring.

    Args:
        max_tokens: the vocabulary's size including '' and '[UNK]' (None: no limit).
        standardize, split: see the module docstring.
        ngrams: None, an int n (n-grams of 1..n tokens) or a tuple of sizes; n-grams
            are the tokens joined by one space, all of one size before the next.
        output_mode: "int" only.
        output_sequence_length: the length every output row is cut or padded to
            (None: the longest row of the batch).
        vocabulary: a list/tuple/array of tokens, or the path of a text file with
            one token per line; may start with '' and '[UNK]' in that order.
        encoding: the encoding of bytes inputs.
        name: kept for the layer wrapper.
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace",
                 ngrams=None, output_mode="int", output_sequence_length=None, pad_to_max_tokens=False,
                 vocabulary=None, idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None):
        if output_mode != "int":
            raise NotImplementedError(f"TextVectorization: output_mode={output_mode!r} is not supported by "
                                      "fusedlstm (only 'int').")
        for flag, value in (("pad_to_max_tokens", pad_to_max_tokens), ("sparse", sparse), ("ragged", ragged)):
            if value:
                raise NotImplementedError(f"TextVectorization: `{flag}=True` is not supported by fusedlstm.")
        if idf_weights is not None:
            raise ValueError("`idf_weights` must only be set if output_mode is 'tf_idf'.")
        if max_tokens is not None:
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, numbers.Integral) or max_tokens <= 1:
                raise ValueError("Received an invalid value for argument `max_tokens`, expected None or an integer "
                                 f"> 1, got {max_tokens!r}.")
            max_tokens = int(max_tokens)
        self._standardize = _check_choice("standardize", standardize, _STANDARDIZE)
        self._split = _check_choice("split", split, _SPLIT)
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
                or (isinstance(ngrams, tuple) and all(isinstance(n, int) and not isinstance(n, bool)
                                                      for n in ngrams))):
            raise ValueError(f"`ngrams` must be None, an integer, or a tuple of integers. Received: ngrams={ngrams}")
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        if self._ngrams is not None and any(n < 1 for n in self._ngrams):
            raise ValueError(f"`ngrams` sizes must be >= 1. Received: ngrams={ngrams}")
        if not (output_sequence_length is None or (isinstance(output_sequence_length, int)
                                                   and not isinstance(output_sequence_length, bool))):
            raise ValueError("`output_sequence_length` must be either None or an integer when `output_mode` is "
                             f"'int'. Received: output_sequence_length={output_sequence_length}")
        if output_sequence_length is not None and output_sequence_length < 0:
            raise ValueError(f"`output_sequence_length` must be >= 0. Received: {output_sequence_length}")
        self.max_tokens = max_tokens
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self.encoding = encoding
        self.name = name
        self._tokens = []          # the vocabulary after '' and '[UNK]'
        self._index = {}
        self._input_vocabulary = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ---- text -> tokens -------------------------------------------------------------

    def _strings(self, inputs):
        """inputs as a NumPy array of str (bytes decoded)."""
        if isinstance(inputs, (str, bytes)):
            arr = np.asarray([inputs], dtype=object).reshape(())
        else:
            arr = np.asarray(inputs, dtype=object)
        flat = arr.reshape(-1)
        out = np.empty(flat.shape, dtype=object)
        for i, s in enumerate(flat):
            if isinstance(s, (bytes, np.bytes_)):
                s = bytes(s).decode(self.encoding)
            elif not isinstance(s, str):
                raise TypeError(f"TextVectorization expects strings, got {type(s).__name__} {s!r} at position {i}.")
            out[i] = str(s)
        return out.reshape(arr.shape)

    def _standardized(self, strings):
        std = self._standardize
        if callable(std):
            result = np.asarray(std(strings.astype(str) if strings.size else strings), dtype=object)
            if result.shape != strings.shape:
                raise ValueError(f"The `standardize` callable returned shape {result.shape}, expected "
                                 f"{strings.shape} (one string per input).")
            return result
        if std is None:
            return strings
        out = np.empty(strings.shape, dtype=object)
        for i, s in np.ndenumerate(strings):
            if std in ("lower", "lower_and_strip_punctuation"):
                s = s.translate(_ASCII_UPPER)
            if std in ("strip_punctuation", "lower_and_strip_punctuation"):
                s = _PUNCTUATION.sub("", s)
            out[i] = s
        return out

    def _split_rows(self, strings):
        """A list of token lists, one per string (strings: 1-D)."""
        split = self._split
        if split == "whitespace":
            return [[t for t in _ASCII_WS.split(s) if t] for s in strings]
        if split == "character":
            return [list(s) for s in strings]
        rows = split(strings.astype(str) if strings.size else strings)
        rows = [list(r) for r in rows]
        if len(rows) != len(strings):
            raise ValueError(f"The `split` callable returned {len(rows)} rows for {len(strings)} strings.")
        return [[t.decode(self.encoding) if isinstance(t, bytes) else str(t) for t in r] for r in rows]

    def _with_ngrams(self, tokens):
        if self._ngrams is None:
            return tokens
        out = []
        for n in self._ngrams:
            out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return out

    def _token_rows(self, inputs):
        """(rows of tokens, shape of the output without its token axis, split or not)."""
        strings = self._standardized(self._strings(inputs))
        if self._split is None:
            return [[s] for s in strings.reshape(-1)], strings.shape, False
        if strings.ndim > 1:
            if strings.shape[-1] != 1:
                raise ValueError("When using `TextVectorization` to tokenize strings, the input rank must be 1 or "
                                 f"the last shape dimension must be 1. Received: inputs.shape={strings.shape} with "
                                 f"rank={strings.ndim}")
            strings = strings[..., 0]
        lead = strings.shape
        rows = self._split_rows(strings.reshape(-1))
        return [self._with_ngrams(r) for r in rows], lead, True

    # ---- vocabulary -------------------------------------------------------------------

    def adapt(self, data, batch_size=None, steps=None):
        """Build the vocabulary from `data`: a list/array of strings, or an iterable of batches of them."""
        if self._input_vocabulary is not None:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static vocabulary via `vocabulary` "
                             "argument or `set_vocabulary()` method.")
        counts = collections.Counter()
        if isinstance(data, (str, bytes, list, tuple, np.ndarray)):
            if steps is not None:
                raise ValueError("`steps` is not supported with array or list inputs.")
            batches = [data]
        else:
            if not hasattr(data, "__iter__"):
                raise TypeError(f"adapt: expected strings, an array of them or an iterable of batches, got "
                                f"{type(data).__name__}.")
            batches = data
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            rows, _, _ = self._token_rows(batch)
            for r in rows:
                counts.update(r)
        counts.pop(PAD, None)
        counts.pop(OOV, None)
        tokens = sorted(counts, key=lambda t: (counts[t], t), reverse=True)
        if self.max_tokens:
            tokens = tokens[:self.max_tokens - 2]
        self._set_tokens(tokens)

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Use `vocabulary` (tokens, optionally after '' and '[UNK]', or a file path) instead of adapting."""
        if idf_weights is not None:
            raise ValueError("`idf_weights` must only be set if output_mode is 'tf_idf'.")
        if isinstance(vocabulary, (str, os.PathLike)):
            path = os.fspath(vocabulary)
            if not os.path.exists(path):
                raise ValueError(f"Vocabulary file {path} does not exist.")
            with open(path, encoding=self.encoding, newline="\n") as f:
                vocabulary = f.read().split("\n")
            if vocabulary and vocabulary[-1] == "":
                vocabulary.pop()  # the final newline
        vocab = [t.decode(self.encoding) if isinstance(t, (bytes, np.bytes_)) else t
                 for t in np.asarray(vocabulary, dtype=object).reshape(-1).tolist()]
        if not all(isinstance(t, str) for t in vocab):
            raise TypeError("The vocabulary must hold strings.")
        if not vocab:
            raise ValueError(f"Cannot set an empty vocabulary. Received: vocabulary={vocabulary}")
        tokens = vocab[2:] if vocab[:2] == [PAD, OOV] else vocab
        repeated = sorted(t for t, c in collections.Counter(tokens).items() if c > 1)
        if repeated:
            raise ValueError("The passed vocabulary has at least one repeated term. Please uniquify your dataset. "
                             f"The repeated terms are: {repeated}")
        if PAD in tokens:
            raise ValueError("Found reserved mask token at unexpected location in `vocabulary`. Note that passed "
                             "`vocabulary` does not need to include the OOV and mask tokens. Either remove all mask "
                             "and OOV tokens, or include them only at the start of the vocabulary in precisely this "
                             f"order: {[PAD, OOV]}. Received: mask_token={PAD!r} at vocabulary index "
                             f"{len(vocab) - 1 - vocab[::-1].index(PAD)}")
        if self.max_tokens is not None and len(tokens) + 2 > self.max_tokens:
            raise ValueError("Attempted to set a vocabulary larger than the maximum vocab size. Received vocabulary "
                             f"size is {len(tokens) + 2}; `max_tokens` is {self.max_tokens}.")
        self._input_vocabulary = list(vocab)
        self._set_tokens(tokens)

    def _set_tokens(self, tokens):
        self._tokens = list(tokens)
        # A token equal to '[UNK]' inside the vocabulary keeps its own index (Keras: the OOV token
        # is unused in lookups); the first occurrence wins.
        self._index = {}
        for i, t in enumerate(self._tokens, start=2):
            self._index.setdefault(t, i)

    def get_vocabulary(self, include_special_tokens=True):
        """The vocabulary; with the special tokens, position i holds the token of id i."""
        return ([PAD, OOV] if include_special_tokens else []) + list(self._tokens)

    def vocabulary_size(self):
        """Ids in use, the special ones included."""
        return len(self._tokens) + 2

    # ---- strings -> ids -----------------------------------------------------------------

    def __call__(self, inputs):
        """Token ids (int64) of a string, a batch of strings (N,), or strings of shape (..., 1)."""
        rows, lead, split = self._token_rows(inputs)
        ids = [[self._index.get(t, 1) for t in r] for r in rows]
        if not split:
            out = np.asarray([r[0] for r in ids], dtype=np.int64).reshape(lead)
            if self.output_sequence_length is not None and out.ndim:  # Keras cuts/pads the last axis
                L = self.output_sequence_length
                out = out[..., :L]
                pad = [(0, 0)] * (out.ndim - 1) + [(0, L - out.shape[-1])]
                out = np.pad(out, pad)
            return out
        width = max((len(r) for r in ids), default=0)
        if self.output_sequence_length is not None:
            width = self.output_sequence_length
        out = np.zeros((len(ids), width), dtype=np.int64)
        for i, r in enumerate(ids):
            r = r[:width]
            out[i, :len(r)] = r
        return out.reshape(tuple(lead) + (width,))

    def get_config(self):
        return {"name": self.name, "max_tokens": self.max_tokens, "standardize": self._standardize,
                "split": self._split, "ngrams": self._ngrams_arg, "output_mode": self.output_mode,
                "output_sequence_length": self.output_sequence_length, "pad_to_max_tokens": False,
                "sparse": False, "ragged": False, "vocabulary": self._input_vocabulary, "idf_weights": None,
                "encoding": self.encoding, "vocabulary_size": self.vocabulary_size()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("vocabulary_size", None)
        return cls(**config)
