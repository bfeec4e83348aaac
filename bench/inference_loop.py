"""fusedlstm inference on one bench configuration in a loop, for a profiler to watch.

    python -m bench.inference_loop large 5                 # config, seconds
    py-spy record --native -f raw -o large.txt -- python -m bench.inference_loop large 5
    perf record -g -o large.data python -m bench.inference_loop large 5
    python -m bench.inference_loop stream_h256 5           # the streaming step (stateful, B=1, T=1)
    python -m bench.inference_loop stream_h256 5 stream    # ... through Stream(model).step (the C++ step)
    python -m bench.inference_loop stream_h256 5 python    # ... through Stream's Python path

Same model, weights and batch as the bench (bench.data, bench.frameworks.keras_like);
the call profiled is `predict_on_batch`, as the bench times it, unless a third argument
names a Stream entry. Prints calls per second.
"""

import sys
import time

import numpy as np

from bench import data, streaming
from bench.configs import get_configs
from bench.frameworks import keras_like


def main(argv):
    name = argv[0] if argv else "large"
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    import fusedlstm

    fusedlstm.set_num_threads(2)
    if name.startswith("stream_h"):
        units = int(name[len("stream_h"):])
        rng = np.random.default_rng(0)
        _, model = streaming._ours(units, data.model_weights(streaming.stream_config(units), rng))
        x = np.array([[3]], np.int32)
    else:
        (cfg,) = get_configs([name])
        rng = np.random.default_rng(data.config_seed(cfg.name, 0))
        model = keras_like.build(fusedlstm, cfg, data.model_weights(cfg, rng))
        x = data.batch(cfg, rng)[0]
    call = model.predict_on_batch
    if len(argv) > 2:
        from fusedlstm.models import Stream

        stream = Stream(model)
        call = {"stream": stream.step, "python": stream._plan_step}[argv[2]]
    call(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call(x)
        n += 1
    dt = time.perf_counter() - t0
    print(f"{name}: {n} calls in {dt:.2f} s, {dt / n * 1e3:.3f} ms per call")


if __name__ == "__main__":
    main(sys.argv[1:])
