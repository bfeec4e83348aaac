"""Save two alternating weight sets to one path forever (tests/test_file_integrity.py kills it).

    python write_loop.py PATH     # prints "saved" after each complete save

Weights of set k (0 or 1) are all equal to k + 1, so a reader can tell which complete
save it sees; a mixture or a partial file would be neither.
"""

import sys

import numpy as np

from fusedlstm.layers import Dense, Input
from fusedlstm.models import Sequential


def model():
    return Sequential([Input((1000,)), Dense(2000), Dense(10)])


def main(path):
    m = model()
    k = 0
    while True:
        m.set_weights([np.full(w.shape, k % 2 + 1, np.float32) for w in m.get_weights()])
        m.save_weights(path)
        print("saved", flush=True)
        k += 1


if __name__ == "__main__":
    main(sys.argv[1])
