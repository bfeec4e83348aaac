"""keras.datasets loaders of sequence data: `imdb` and `reuters`.

They read (and, when missing, download through `fusedlstm.utils.get_file`) the very
files Keras uses, at the same place: `$KERAS_HOME/datasets/` or `~/.keras/datasets/`,
so a machine that ran the Keras version of a notebook already has them.
"""

from . import imdb, reuters

__all__ = ["imdb", "reuters"]
