"""fusedlstm vs PyTorch vs Keras: training-step and inference timings in one run.

Usage (from the repository root; fusedlstm, torch and keras importable, e.g.
`pip install -e '.[compare,plot]'` or a dev build with PYTHONPATH=python):

    python -m bench                          # full run: all configs + end-to-end runs
    python bench/run.py                      # the same
    python -m bench --quick                  # tiny sizes, few repeats, no e2e (CI smoke run, < 60 s)
    python -m bench --configs echo,large --frameworks fusedlstm,torch --threads 1
    python -m bench --e2e-only               # only the end-to-end runs

Options: --frameworks (fusedlstm,torch,onnxruntime,keras,keras_tf), --configs (echo,
echo_batched, seq2seq, chars, chars_seq, large, xlarge, cnn_lstm, and the GRU rows
gru_echo, gru_chars, gru_chars_seq, gru_large), --threads N (default
2, the same for every framework and for numpy's OpenBLAS), --out DIR (default
bench/results), --no-e2e / --e2e, --no-streaming, --e2e-seeds, --e2e-cap, --chars-windows,
--sonnets PATH, --block-ms, --rounds, --seed, --precision (float32 or mixed_bfloat16:
Keras's policy on every layer of our and Keras's models against
torch.autocast("cpu", dtype=torch.bfloat16); results go to <cpu>-mixed_bfloat16.*).

What it does, per configuration (see bench/configs.py): draws Keras-initialised
weights and one batch in NumPy, loads the same weights into every framework,
checks that inference outputs and first training-step losses agree (a warning
row if not: then the timings would compare different computations), then times
a full training step (forward, backward, Adam) and an inference call, the
frameworks interleaved in blocks of >= 200 ms. It also measures numpy's sgemm
on 2048² float32 as the yardstick for GEMM GFLOP/s, the CPU's arithmetic peak
(bench/peak.py: the inference ceiling, the largest ratio a kernel at 100% of peak
could reach against the fastest peer), and each framework's peak memory to build
and train the model. ONNX Runtime (`onnxruntime`) runs inference
only, on the graph fusedlstm's exporter writes for the same model (checked equal
to predict before timing). The streaming section (bench/streaming.py) times one
step of a stateful char model (B=1, T=1) in every way a user can run it. The end-to-end runs (bench/e2e.py) time
the echo task to 100% accuracy and one epoch of the sonnets chars model.

If OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, or the BLAS/OpenMP thread
variables differ from --threads, the bench re-executes itself with them fixed
(before numpy loads) and says so in its output and in the JSON.

Results: bench/results/<cpu-model>.json / .md / .png (`-quick` appended for
--quick runs); the markdown table is printed too. Exit status 1 when a
framework failed on a config or a correctness check did not pass.
"""
