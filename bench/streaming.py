"""Streaming: one character per call through a stateful char model (batch 1, T = 1).

The model is the chars task's sampling twin (fusedlstm.tasks.chars.build_seq_model
with stateful=True): Embedding(27, 64) -> LSTM(H, return_sequences, stateful) ->
TimeDistributed(Dense(27, softmax)), at H = 64 and H = 256, one set of weights
(Keras's initialisers, drawn in NumPy) loaded everywhere. Per-step latency of:

    fusedlstm predict_on_batch(x)     the model carries (h, c) between calls
    fusedlstm model(x)                the eager call
    fusedlstm Stream.step(x)          fusedlstm.models.Stream(model): one C++ call per step
                                      (_core.StreamKernel) that writes the model's states in
                                      place; the softmax head is the kernels' (a few ulp from
                                      predict_on_batch's NumPy softmax)
    fusedlstm Stream.step exact       Stream(model, exact=True): the same, with the layer's own
                                      NumPy softmax on the kernel's logits (bitwise predict_on_batch)
    fusedlstm Stream python path      the Stream's Python path (the plan compiled once, each step
                                      a few _core calls), which runs models the C++ step does not
    fusedlstm StreamKernel.step       the C++ call alone (no Python wrapper): what the step
                                      costs in C++ plus one pybind11 call
    fusedlstm kernels only            the _core calls one predict_on_batch makes, replayed
                                      with the same arguments: what the step costs in C++
    torch eager                       Embedding, nn.LSTM(x, (h, c)), Linear, softmax under
                                      inference_mode, (h, c) carried by hand
    onnxruntime session.run           the graph fusedlstm's exporter writes, the state fed
                                      back through '<lstm>/initial_h', '<lstm>/initial_c'

Before timing, 8 steps of every entry from a zero state are checked against
predict_on_batch (1e-5). Python overhead per call = call time - kernels-only time
(everything that is not an LSTM or GEMM kernel: input checks, the plan walk, the
NumPy softmax, array allocation).
"""

import traceback
from types import SimpleNamespace
from typing import Dict, List

import numpy as np

from bench import data, timing
from bench.configs import Config

VOCAB, EMBED = 27, 64
UNITS = (64, 256)
CHECK_STEPS = 8
OURS = ("fusedlstm predict_on_batch", "fusedlstm model(x)", "fusedlstm Stream.step", "fusedlstm Stream.step exact",
        "fusedlstm Stream python path", "fusedlstm StreamKernel.step")
ABS_TOL = 1e-5


def stream_config(units: int) -> Config:
    return Config(f"stream_h{units}", 1, 1, "ids", VOCAB, units, VOCAB, "sequence", embed_dim=EMBED)


def _ours(units: int, weights):
    import fusedlstm
    from fusedlstm.tasks.chars import build_seq_model
    from fusedlstm.tasks.engine import load_engine

    K = load_engine("fusedlstm")
    model = build_seq_model(K, SimpleNamespace(cell="lstm", embed=EMBED, units=units, window=1), stateful=True)
    model.set_weights([np.asarray(w, np.float32) for w in weights])
    return fusedlstm, model


class _KernelCalls:
    """Records the _core calls made while a function runs; replays them."""

    def __init__(self, core):
        self.core, self.calls = core, []

    def record(self, fn):
        # The compute kernels only: input checks (first_nonfinite) count as overhead.
        names = [n for n in ("lstm_forward", "matmul") if hasattr(self.core, n)]
        saved = {n: getattr(self.core, n) for n in names}

        def spy(name, f):
            def wrapped(*args, **kwargs):
                self.calls.append((f, args, kwargs))
                return f(*args, **kwargs)
            return wrapped
        try:
            for n, f in saved.items():
                setattr(self.core, n, spy(n, f))
            fn()
        finally:
            for n, f in saved.items():
                setattr(self.core, n, f)
        return [getattr(f, "__name__", "?") for f, _, _ in self.calls]

    def replay(self):
        for f, args, kwargs in self.calls:
            f(*args, **kwargs)


def _torch_step(units: int, weights):
    import torch

    from bench.frameworks.torch_impl import _load, _module

    cfg = stream_config(units)
    net = _module(torch, cfg)
    _load(torch, net, cfg, weights)
    net.eval()
    state = {}

    def reset():
        z = torch.zeros(1, 1, units)
        state["hc"] = (z, z.clone())

    def step(x):
        with torch.inference_mode():
            y, state["hc"] = net.lstm(net.emb(x), state["hc"])
            return torch.softmax(net.out(y), dim=-1)
    reset()
    return step, reset


def _ort_step(model, threads: int):
    from fusedlstm.io.onnx import export_onnx
    from fusedlstm.io.onnx.runtime import inference_session, state_names

    proto = export_onnx(model)
    sess = inference_session(proto, threads=threads)
    (st,) = state_names(proto)
    in_name = sess.get_inputs()[0].name
    fetch = [sess.get_outputs()[0].name] + st["outputs"]
    feeds = {}

    def reset():
        z = np.zeros((1, st["units"]), np.float32)
        feeds.update({st["inputs"][0]: z, st["inputs"][1]: z})

    def step(x):
        feeds[in_name] = x
        probs, feeds[st["inputs"][0]], feeds[st["inputs"][1]] = sess.run(fetch, feeds)
        return probs
    reset()
    return step, reset


def run_one(units: int, args) -> dict:
    rng = np.random.default_rng(data.config_seed(f"stream_h{units}", args.seed))
    weights = data.model_weights(stream_config(units), rng)
    ids = rng.integers(0, VOCAB, (CHECK_STEPS + 1, 1, 1)).astype(np.int32)
    lib, model = _ours(units, weights)
    entry: Dict[str, object] = {"name": f"stream_h{units}", "units": units, "errors": {}, "results": {},
                                "check": {}}

    def ours_predict(x):
        return model.predict_on_batch(x)

    def ours_call(x):
        return model(x)

    stream = lib.models.Stream(model)
    exact = lib.models.Stream(model, exact=True)
    if not (stream.uses_kernel and exact.uses_kernel):
        raise RuntimeError("Stream does not run the char model as one C++ call (_core.StreamKernel)")
    kernel = stream._kernel
    steps = {"fusedlstm predict_on_batch": ours_predict, "fusedlstm model(x)": ours_call,
             "fusedlstm Stream.step": stream.step, "fusedlstm Stream.step exact": exact.step,
             "fusedlstm Stream python path": stream._plan_step, "fusedlstm StreamKernel.step": kernel.step}
    resets = {n: model.reset_states for n in steps}
    makers = {"torch eager": lambda: _torch_step(units, weights),
              "onnxruntime session.run": lambda: _ort_step(model, args.threads)}
    feeds = {n: (lambda t: t) for n in steps}
    for name, make in makers.items():
        try:
            steps[name], resets[name] = make()
            if name.startswith("torch"):
                import torch
                feeds[name] = lambda t: torch.from_numpy(t.astype(np.int64))
            else:
                feeds[name] = lambda t: t
        except Exception as exc:  # a missing peer is a result row
            entry["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    # Same numbers from a zero state, step after step, before anything is timed.
    model.reset_states()
    want = [np.asarray(ours_predict(ids[t])) for t in range(CHECK_STEPS)]
    for name in list(steps):
        resets[name]()
        got = [np.asarray(steps[name](feeds[name](ids[t]))) for t in range(CHECK_STEPS)]
        err = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
        entry["check"][name] = err
        if not err <= ABS_TOL:
            entry["errors"][name] = f"differs from predict_on_batch by {err:.3g} over {CHECK_STEPS} steps"
            del steps[name]
    for name in steps:
        resets[name]()
    kernels = _KernelCalls(lib._core)
    entry["kernel_calls"] = kernels.record(lambda: ours_predict(ids[0]))
    x_of = {name: feeds[name](ids[-1]) for name in steps}
    calls = {name: (lambda f=f, x=x_of[name]: f(x)) for name, f in steps.items()}
    calls["fusedlstm kernels only"] = kernels.replay
    times = timing.interleaved(calls, block_s=args.block_s, rounds=args.rounds, max_calls_per_block=20_000)
    for name, t in times.items():
        entry["results"][name] = {"step_us": {k: (v * 1e3 if k != "n" else v)
                                              for k, v in timing.summary_ms(t).items()}}
    med = {n: r["step_us"]["median"] for n, r in entry["results"].items()}
    kern = med["fusedlstm kernels only"]
    entry["python_overhead_us"] = {n: med[n] - kern for n in OURS if n in med}
    entry["ratios"] = {ours: {peer: med[peer] / med[ours] for peer in ("torch eager", "onnxruntime session.run")
                              if peer in med}
                       for ours in OURS if ours in med}
    return entry


def run(args) -> List[dict]:
    out = []
    for units in UNITS:
        print(f"bench: streaming H={units} (B=1, T=1, stateful)", flush=True)
        try:
            out.append(run_one(units, args))
        except Exception as exc:
            traceback.print_exc()
            out.append({"name": f"stream_h{units}", "units": units, "errors": {"fusedlstm": f"{type(exc).__name__}: {exc}"},
                        "results": {}, "check": {}, "ratios": {}, "python_overhead_us": {}})
    return out
