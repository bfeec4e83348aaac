"""--plot: the training-loss curve of a task run as a PNG (matplotlib optional)."""

import importlib.util

PLOT_HINT = "--plot needs matplotlib (pip install 'fusedlstm[plot]')"


def plotting_available():
    return importlib.util.find_spec("matplotlib") is not None


def plot_result(result, path):
    """Write the loss curve of `result` (a TaskResult) to `path`."""
    try:
        import matplotlib  # optional dependency (the plot extra): only --plot needs it

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt  # after use("Agg"): pyplot picks its backend at import
    except ImportError as exc:
        raise RuntimeError(f"{PLOT_HINT}: {exc}") from exc
    if not result.curve:
        raise ValueError(f"{result.task}: the run recorded no loss curve to plot.")
    steps, losses = zip(*result.curve)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.plot(steps, losses, color="tab:blue")
        ax.set_xlabel(result.curve_x)
        ax.set_ylabel("training loss")
        passed = {True: "reached", False: "missed", None: "reported"}[result.passed]
        ax.set_title(f"{result.task}: {result.value_text()} {result.metric} ({passed}: {result.target})", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
