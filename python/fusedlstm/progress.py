"""Progress of slow one-off work outside fit, such as building a very large layer's weights.

fit has its own progress bar (callbacks/progbar.py); this is for the few
constructions that take seconds (the orthogonal initializer of an LSTM(4096)):
a tqdm bar on stderr when tqdm is installed, else one line on stderr when the
work starts and one when it ends, so that a long silence is never a mystery.
"""

import contextlib
import sys
import time


@contextlib.contextmanager
def steps(total: int, desc: str):
    """Yields advance(n=1), to be called as each of `total` steps completes."""
    try:
        from tqdm import tqdm  # optional (extra 'cli')
    except ImportError:
        tqdm = None
    if tqdm is not None:
        with tqdm(total=total, desc=desc, file=sys.stderr, leave=False, unit="step") as bar:
            yield bar.update
        return
    t0 = time.perf_counter()
    print(f"fusedlstm: {desc} ...", file=sys.stderr, flush=True)
    yield lambda n=1: None
    print(f"fusedlstm: {desc}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
