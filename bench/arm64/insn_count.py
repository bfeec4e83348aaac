"""AArch64 instructions executed per kernel call, NEON level vs generic, counted under qemu-user.

Why counts: on an x86 machine AArch64 code runs only emulated, and emulated
time says nothing about an ARM core's speed. The number of instructions a
kernel executes, and how many of them are 4-lane vector FMAs, does say how much
work each level asks of the core. It is not a speed: a real core's time also
depends on its FMA throughput, latencies and caches.

How: insn_driver.cpp (compiled here with aarch64-linux-gnu-g++, static, the
module's flags) calls one kernel of one table REPS times. qemu's in_asm log
gives each translated block's instructions and its exec log (with chaining off)
every block executed; executed instructions = sum over executions of the
block's length. The count of a call is (count(REPS) - count(0)) / REPS, which
removes start-up and set-up.

    python bench/arm64/insn_count.py [--out bench/results/arm64-insn-counts.md]

Needs qemu-user-static and g++-aarch64-linux-gnu (what .ci/arm64 installs).
"""

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["bench/arm64/insn_driver.cpp", "csrc/isa/ops_neon.cpp", "csrc/isa/ops_generic.cpp", "csrc/threads.cpp"]
FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", "-static", "-pthread"]
CASES = [  # (label, op, sizes, work units, unit name)
    ("GEMM 64x512x128", "gemm", (64, 512, 128), 64 * 512 * 128, "multiply-add"),
    ("GEMM 256x256x256", "gemm", (256, 256, 256), 256 ** 3, "multiply-add"),
    ("LSTM step B=32 H=128 (h·U + cell)", "lstm_step", (32, 128), 32 * 128, "unit"),
    ("softmax 64 rows x 100", "softmax", (64, 100), 64 * 100, "element"),
    ("Adam, 100000 parameters", "adam", (100000,), 100000, "parameter"),
]
LEVELS = ["generic", "neon"]

INSN = re.compile(r"^0x([0-9a-f]+):\s+[0-9a-f]{8}\s+(\S+)\s*(.*)$")
OBJDUMP_FN = re.compile(r"^([0-9a-f]+) <(.*)>:$")
OBJDUMP_INSN = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$")
TRACE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def build(tmp):
    exe = Path(tmp) / "insn_driver"
    cmd = ["aarch64-linux-gnu-g++", *FLAGS, f"-I{REPO / 'csrc'}", *[str(REPO / s) for s in SOURCES], "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return exe


def kernel_loops(exe):
    """The innermost loops of the NEON GEMM (run_range, where GCC inlines the
    micro-kernels) with 24 FMLAs: the 8x12 tile's k loop, from the disassembly."""
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", "-C", str(exe)],
                         capture_output=True, text=True, check=True).stdout
    fn, ins, loops = None, [], []

    def scan():
        at = {a: i for i, (a, _, _) in enumerate(ins)}
        back = [(at[int(m.group(1), 16)], i) for i, (a, mn, ops) in enumerate(ins)
                if mn.startswith("b.") and (m := re.search(r"\b([0-9a-f]+) <", ops)) and int(m.group(1), 16) in at
                and int(m.group(1), 16) <= a]
        for s, e in back:
            if not any(o != (s, e) and o[0] >= s and o[1] <= e for o in back):
                body = collections.Counter(mn for _, mn, _ in ins[s:e + 1])
                if body["fmla"] == 24:
                    loops.append(body)

    for line in dis.splitlines():
        m = OBJDUMP_FN.match(line)
        if m:
            if fn:
                scan()
            fn = "neon::Gemm" in m.group(2) and "run_range" in m.group(2)
            ins = []
        elif fn and (m := OBJDUMP_INSN.match(line)):
            ins.append((int(m.group(1), 16), m.group(2), m.group(3)))
    if fn:
        scan()
    return loops


def count(exe, tmp, level, op, sizes, reps):
    """(executed instructions, executed 4-lane FMLA/FMLS) of one driver run."""
    log = Path(tmp) / f"qemu-{level}-{op}-{reps}.log"
    cmd = ["qemu-aarch64-static", "-d", "in_asm,exec,nochain", "-D", str(log), str(exe), level, op, str(reps),
           *map(str, sizes)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    blocks = {}  # start pc -> (instructions, vector FMAs) of its latest translation
    cur, n, fma = None, 0, 0
    executed = collections.Counter()
    with open(log, errors="replace") as fh:
        for line in fh:
            m = INSN.match(line)
            if m:
                if cur is None:
                    cur = int(m.group(1), 16)
                n += 1
                fma += m.group(2) in ("fmla", "fmls") and ".4s" in m.group(3)
                continue
            if cur is not None:  # end of a block listing
                blocks[cur] = (n, fma)
                cur, n, fma = None, 0, 0
            t = TRACE.match(line)
            if t:
                executed[int(t.group(1), 16)] += 1
    if cur is not None:
        blocks[cur] = (n, fma)
    log.unlink()
    insns = sum(blocks[pc][0] * k for pc, k in executed.items() if pc in blocks)
    fmas = sum(blocks[pc][1] * k for pc, k in executed.items() if pc in blocks)
    return insns, fmas


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", help="write the table as markdown here too")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        loops = kernel_loops(exe)
        for label, op, sizes, work, unit in CASES:
            per = {}
            for level in LEVELS:
                i0, f0 = count(exe, tmp, level, op, sizes, 0)
                i1, f1 = count(exe, tmp, level, op, sizes, args.reps)
                per[level] = ((i1 - i0) / args.reps, (f1 - f0) / args.reps)
            g, n = per["generic"], per["neon"]
            rows.append((label, g[0], n[0], g[0] / n[0], n[0] / work, n[1] * 4 / work if n[1] else 0.0, unit))
            print(f"{label}: generic {g[0]:,.0f}, neon {n[0]:,.0f} instructions per call "
                  f"({g[0] / n[0]:.1f}x fewer); neon {n[0] / work:.3f} per {unit}", flush=True)
    lines = ["| kernel call | generic: instructions | neon: instructions | generic / neon | "
             "neon instructions per unit | neon FMA lanes per unit |", "|---|---:|---:|---:|---:|---:|"]
    for label, g, n, ratio, per_unit, lanes, unit in rows:
        lines.append(f"| {label} | {g:,.0f} | {n:,.0f} | {ratio:.1f}x | {per_unit:.3f} / {unit} | "
                     f"{lanes:.2f} |")
    static = [f"{sum(c.values())} instructions: " + ", ".join(f"{n} {k}" for k, n in c.most_common())
              for c in loops]
    table = "\n".join(lines)
    if static:
        table += ("\n\nThe 8x12 micro-kernel's k loop (static, from the disassembly): "
                  + "; ".join(sorted(set(static))) + ". Per k step it loads 5 vectors (80 bytes: 8 values of A,"
                  " 12 of B) and issues 24 FMLA (96 multiply-adds).")
    print(table)
    if args.out:
        header = (f"# AArch64 instructions executed per kernel call (qemu-user {qemu_version()}, "
                  f"{gcc_version()}, one thread)\n\n"
                  "Counted by bench/arm64/insn_count.py: executed instructions, not time (emulated time "
                  "says nothing about an ARM core's speed). 'FMA lanes per unit': 4-lane FMLA/FMLS "
                  "instructions x 4 per unit of work (1.0 for GEMM = every multiply-add in a vector FMA; "
                  "a little more where the 12-column panels pad N). 'generic' is the portable one-lane "
                  "template, which GCC auto-vectorises in places (hence only 3x on a large GEMM); the "
                  "optimizer updates are the same plain loops at every level by design (the same bits "
                  "at every level), so their counts are equal.\n\n")
        Path(args.out).write_text(header + table + "\n")
    return 0


def qemu_version():
    out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout
    return out.split("\n")[0].replace("qemu-aarch64 version ", "")


def gcc_version():
    out = subprocess.run(["aarch64-linux-gnu-g++", "--version"], capture_output=True, text=True).stdout
    return out.split("\n")[0]


if __name__ == "__main__":
    sys.exit(main())
