"""The classic LSTM tasks: their data (generators, encoders) and runnable
training scripts (one module per task, listed in `registry`).

Importing this package loads only the data helpers; a task module imports the
model engine when it runs.
"""

from .encoders import (
    ADDITION_ALPHABET,
    N_CHARS,
    decode_addition,
    decode_text,
    encode_addition,
    encode_text,
    one_hot_decode,
    one_hot_encode,
)
from .generators import (
    addition_dataset,
    addition_strings,
    addition_widths,
    char_windows,
    digitsum_dataset,
    echo_windows,
    generate_batch,
    generate_example,
    generate_sequence,
    load_sonnets,
    load_text,
    random_sum_pairs,
    sliding_windows,
    split_batches,
    split_indices,
)

__all__ = [
    "ADDITION_ALPHABET",
    "N_CHARS",
    "decode_addition",
    "decode_text",
    "encode_addition",
    "encode_text",
    "one_hot_decode",
    "one_hot_encode",
    "addition_dataset",
    "addition_strings",
    "addition_widths",
    "char_windows",
    "digitsum_dataset",
    "echo_windows",
    "generate_batch",
    "generate_example",
    "generate_sequence",
    "load_sonnets",
    "load_text",
    "random_sum_pairs",
    "sliding_windows",
    "split_batches",
    "split_indices",
]
