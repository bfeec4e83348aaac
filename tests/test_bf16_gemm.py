"""The bfloat16 GEMM levels (_core.gemm_bf16) against float64 on bfloat16-rounded operands.

Each level the CPU has ("portable" everywhere, "avx512bf16" where cpuid says so)
is called by name in this process, and forced with FUSEDLSTM_BF16 in a
subprocess for the dispatch tests. A level this CPU lacks is skipped with the
reason, never failed.

Tolerance: max|a-b|/max|b| <= 1e-5 per array against reference.matmul_bf16 (the
operands rounded by ml_dtypes, products summed in float64): the products of
bfloat16 values are exact in float32, so only the float32 summation order
differs. Shapes: odd sizes, sizes that are not multiples of the vector width or
of the 12x32 register tile, odd K (the last k-pair half empty), all four
transposes, beta 0 and 1, packed and unpacked B, and shapes crossing the cache
blocks (M > 1008, N > 480, K > 768).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import bf16_level_or_skip, package_parent, require
from fusedlstm import _core
from fusedlstm import reference as ref
from gradcheck import scaled_error

LEVELS = ["portable", "avx512bf16"]
TOL = 1e-5


@pytest.fixture(autouse=True)
def _needs_ml_dtypes():
    require("ml_dtypes")


@pytest.fixture(params=LEVELS)
def level(request):
    return bf16_level_or_skip(request.param)


@pytest.fixture
def threads():
    saved = _core.get_num_threads()
    yield _core.set_num_threads
    _core.set_num_threads(saved)


def operands(rng, M, N, K, ta, tb, scale=1.0):
    a = (scale * rng.standard_normal((K, M) if ta else (M, K))).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    return a, b


def check(level, rng, M, N, K, ta, tb, accumulate, packed, context=""):
    a, b = operands(rng, M, N, K, ta, tb)
    want = ref.matmul_bf16(a, b, ta, tb)
    if accumulate:
        out = rng.standard_normal((M, N)).astype(np.float32)
        want = want + out
    else:
        out = np.full((M, N), np.nan, np.float32)  # beta = 0 must not read C
    got = _core.gemm_bf16(a, b, trans_a=ta, trans_b=tb, out=out, accumulate=accumulate, level=level,
                          packed=packed)
    assert got is out or np.shares_memory(got, out), "gemm_bf16 must write into out"
    name = f"{level} M={M} N={N} K={K} ta={ta} tb={tb} acc={accumulate} packed={packed} {context}"
    assert out.dtype == np.float32 and out.shape == (M, N), name
    err = scaled_error(out, want)
    assert err <= TOL, f"{name}: max|a-b|/max|b| = {err:.3g} > {TOL}"


ODD = [1, 2, 3, 7, 12, 13, 15, 16, 17, 31, 33, 47, 65, 100]


def test_odd_shapes_every_transpose(level, rng, seed):
    for M in ODD:
        for N in ODD:
            K = int(rng.choice(ODD))
            ta, tb, acc, packed = (bool(v) for v in rng.integers(0, 2, 4))
            check(level, rng, M, N, K, ta, tb, acc, packed, f"seed={seed}")


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_transposes_beta_and_packing(level, rng, seed, ta, tb, packed):
    for accumulate in (False, True):
        for M, N, K in [(33, 17, 65), (1, 100, 25), (12, 32, 32), (13, 33, 33), (64, 96, 31), (5, 7, 1), (40, 3, 2)]:
            check(level, rng, M, N, K, ta, tb, accumulate, packed, f"seed={seed}")


@pytest.mark.parametrize("shape", [(1030, 530, 40), (70, 97, 1537), (129, 600, 801), (8, 2100, 64)],
                         ids=lambda s: "x".join(map(str, s)))
def test_shapes_across_the_cache_blocks(level, rng, seed, shape):
    M, N, K = shape
    ta, tb = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
    check(level, rng, M, N, K, ta, tb, bool(rng.integers(0, 2)), bool(rng.integers(0, 2)), f"seed={seed}")


def test_lstm_shapes(level, rng, seed):
    """The products of one LSTM step (B=20, H=40, I=24, T=5): projection, step, backward."""
    B, T, I, H = 20, 5, 24, 40
    G = 4 * H
    for M, N, K, ta, tb, packed in [(T * B, G, I, False, False, False), (B, G, H, False, False, True),
                                    (B, H, G, False, True, True), (H, G, T * B, True, False, False),
                                    (I, G, T * B, True, False, False), (T * B, I, G, False, True, False)]:
        check(level, rng, M, N, K, ta, tb, False, packed, f"seed={seed}")


def test_empty_sizes(level):
    z = _core.gemm_bf16(np.zeros((4, 0), np.float32), np.zeros((0, 5), np.float32), level=level)
    assert z.shape == (4, 5) and np.all(z == 0), "K = 0 gives zeros"
    out = np.ones((4, 5), np.float32)
    _core.gemm_bf16(np.zeros((4, 0), np.float32), np.zeros((0, 5), np.float32), out=out, accumulate=True,
                    level=level, packed=True)
    assert np.all(out == 1), "K = 0 with accumulate leaves out unchanged"
    assert _core.gemm_bf16(np.zeros((0, 3), np.float32), np.zeros((3, 5), np.float32), level=level).shape == (0, 5)
    assert _core.gemm_bf16(np.zeros((2, 3), np.float32), np.zeros((3, 0), np.float32), level=level).shape == (2, 0)


def test_thread_count_does_not_change_a_bit(level, rng, threads):
    cases = [(300, 260, 701, False, False), (64, 2048, 512, False, False), (64, 512, 2048, False, True),
             (512, 300, 640, True, False), (33, 1000, 95, True, True)]
    for M, N, K, ta, tb in cases:
        a, b = operands(rng, M, N, K, ta, tb)
        for packed in (False, True):
            results = []
            for nt in (1, 2, 3):
                threads(nt)
                results.append(_core.gemm_bf16(a, b, trans_a=ta, trans_b=tb, level=level, packed=packed))
            for nt, r in zip((2, 3), results[1:]):
                assert np.array_equal(r, results[0]), \
                    f"{level} M={M} N={N} K={K} ta={ta} tb={tb} packed={packed}: 1 and {nt} threads differ"


def test_packed_and_unpacked_agree(level, rng):
    # Same level, same blocking along K: the same sums in the same order.
    for M, N, K, tb in [(64, 200, 300, False), (7, 65, 33, True), (100, 96, 1000, True)]:
        a, b = operands(rng, M, N, K, False, tb)
        np.testing.assert_array_equal(_core.gemm_bf16(a, b, trans_b=tb, level=level, packed=True),
                                      _core.gemm_bf16(a, b, trans_b=tb, level=level),
                                      err_msg=f"{level} M={M} N={N} K={K} tb={tb}")


def test_pack_once_multiply_many(level, rng):
    """pack_b / gemm_packed: the recurrent kernels' route, one packed B for many products."""
    K, N = 77, 130
    for tb in (False, True):
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        pb = _core.pack_b(b, trans_b=tb, level=level)
        assert (pb.K, pb.N, pb.level) == (K, N, level) and pb.nbytes > 0, repr(pb)
        for M, ta in [(1, False), (20, True), (64, False), (13, True)]:
            a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
            got = _core.gemm_packed(a, pb, trans_a=ta)
            np.testing.assert_array_equal(got, _core.gemm_bf16(a, b, trans_a=ta, trans_b=tb, level=level,
                                                               packed=True))
            assert scaled_error(got, ref.matmul_bf16(a, b, ta, tb)) <= TOL
            out = rng.standard_normal((M, N)).astype(np.float32)
            want = out + ref.matmul_bf16(a, b, ta, tb)
            _core.gemm_packed(a, pb, trans_a=ta, out=out, accumulate=True)
            assert scaled_error(out, want) <= TOL


def test_pack_once_multiply_many_float32(rng):
    b = rng.standard_normal((300, 70)).astype(np.float32)
    pb = _core.pack_b(b, trans_b=True, level="float32")
    assert pb.level == "float32"
    a = rng.standard_normal((33, 70)).astype(np.float32)
    got = _core.gemm_packed(a, pb)
    assert scaled_error(got, a.astype(np.float64) @ b.T.astype(np.float64)) <= TOL
    assert scaled_error(got, ref.matmul_bf16(a, b, False, True)) > 10 * TOL, "float32 must not round"


def test_rounding_is_nearest_even_bit_for_bit(level, rng):
    """K = 1 against 1.0: C is the rounded A itself, every bit (ties, carries, overflow, NaN)."""
    bits = np.concatenate([
        rng.integers(0, 2 ** 32, 4000, dtype=np.uint64).astype(np.uint32),
        np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F807FFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000,
                  0x7F7F7FFF, 0x00800000, 0x80800000, 0x0000FFFF, 0x00000001, 0x807FFFFF, 0x00000000,
                  0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001], np.uint32)])
    a = bits.view(np.float32).reshape(-1, 1)
    got = _core.gemm_bf16(a, np.ones((1, 1), np.float32), level=level)[:, 0]
    want = ref.bf16_round(a[:, 0])
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{level}: NaN must stay NaN, and only NaN")
    np.testing.assert_array_equal(got[~nan].astype(np.float64), want[~nan], err_msg=f"{level}: rounding")
    # (The sign of a zero is not kept: the sum starts at +0, and +0 + -0 = +0.)


def test_subnormals_read_as_zero(level):
    # VCVTNEPS2BF16 ignores MXCSR and flushes subnormal inputs; every level does the same.
    tiny = np.full((3, 20), 1e-39, np.float32)
    got = _core.gemm_bf16(tiny, np.full((20, 5), 1e30, np.float32), level=level)
    assert np.all(got == 0), f"{level}: subnormal operands must read as zero, got {got[0, 0]!r}"


def test_nan_and_inf_propagate(level, rng):
    M, N, K = 9, 40, 37
    for ta, tb in [(False, False), (True, True)]:
        a, b = operands(rng, M, N, K, ta, tb)
        a.flat[rng.choice(a.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
        b.flat[rng.choice(b.size, 2, replace=False)] = [np.inf, np.nan]
        got = _core.gemm_bf16(a, b, trans_a=ta, trans_b=tb, level=level)
        A, B = ref.bf16_round(a), ref.bf16_round(b)
        with np.errstate(invalid="ignore"):  # IEEE loops, not BLAS: Inf·0 = NaN as in the kernel
            want = np.einsum("mk,kn->mn", A.T if ta else A, B.T if tb else B, optimize=False)
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{level}: NaN positions differ"
        inf = np.isinf(want)
        assert np.array_equal(got[inf], want[inf]), f"{level}: Inf positions or signs differ"
        fin = np.isfinite(want)
        assert np.isfinite(got[fin]).all() and scaled_error(got[fin], want[fin]) <= TOL, level


def test_levels_agree(rng):
    """Every available level against the portable one (the oracle)."""
    levels = _core.build_info()["bf16_levels"]
    a, b = operands(rng, 70, 130, 333, False, True)
    base = _core.gemm_bf16(a, b, trans_b=True, level="portable")
    for lv in levels[1:]:
        assert scaled_error(_core.gemm_bf16(a, b, trans_b=True, level=lv), base) <= TOL, lv


def test_non_contiguous_operands_are_read_as_their_copies(level, rng):
    a = rng.standard_normal((40, 90)).astype(np.float32)[:, ::3]  # (40, 30) strided
    b = np.asfortranarray(rng.standard_normal((30, 20)).astype(np.float32))
    np.testing.assert_array_equal(_core.gemm_bf16(a, b, level=level),
                                  _core.gemm_bf16(np.ascontiguousarray(a), np.ascontiguousarray(b), level=level))


# ---------------------------------------------------------------------------
# The portable level is the float GEMM of the ISA in use (compiled once per
# ISA): check it under every float level the CPU has.
# ---------------------------------------------------------------------------

PORTABLE_SUITE = r"""
import json, sys
import numpy as np
from fusedlstm import _core, reference as ref
from gradcheck import scaled_error
rng = np.random.default_rng(int(sys.argv[1]))
worst = 0.0
for M, N, K in [(1, 1, 1), (3, 5, 7), (13, 33, 31), (64, 200, 130), (5, 70, 401), (1030, 20, 40), (33, 600, 17)]:
    for ta in (False, True):
        for tb in (False, True):
            for packed in (False, True):
                a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
                b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
                got = _core.gemm_bf16(a, b, trans_a=ta, trans_b=tb, level="portable", packed=packed)
                worst = max(worst, scaled_error(got, ref.matmul_bf16(a, b, ta, tb)))
print(json.dumps({"isa": _core.build_info()["isa"], "worst": worst}))
"""


@pytest.mark.parametrize("isa", ["generic", "neon", "avx2", "avx512"])
def test_portable_level_under_every_float_isa(isa, seed):
    if isa not in _core.build_info()["isa_available"]:
        pytest.skip(f"this CPU/build lacks the {isa} float level")
    env = dict(os.environ, FUSEDLSTM_ISA=isa)
    env["PYTHONPATH"] = os.pathsep.join([package_parent(), os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", PORTABLE_SUITE, str(seed)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"FUSEDLSTM_ISA={isa}:\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["isa"] == isa and out["worst"] <= TOL, f"FUSEDLSTM_ISA={isa} seed={seed}: {out}"


# ---------------------------------------------------------------------------
# Dispatch: FUSEDLSTM_BF16 and build_info()
# ---------------------------------------------------------------------------

def _run(env_value, code, *args):
    env = dict(os.environ, FUSEDLSTM_BF16=env_value)
    env["PYTHONPATH"] = os.pathsep.join([package_parent(), os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=300)


FORCED = r"""
import json, sys
import numpy as np
from fusedlstm import _core
rng = np.random.default_rng(int(sys.argv[1]))
a = rng.standard_normal((50, 70)).astype(np.float32)
b = rng.standard_normal((70, 90)).astype(np.float32)
info = _core.build_info()
same = bool(np.array_equal(_core.gemm_bf16(a, b), _core.gemm_bf16(a, b, level=info["bf16_level"])))
print(json.dumps({"level": info["bf16_level"], "levels": info["bf16_levels"], "default_is_level": same}))
"""


def test_forced_level_is_used(level, seed):
    proc = _run(level, FORCED, str(seed))
    assert proc.returncode == 0, f"FUSEDLSTM_BF16={level}:\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["level"] == level, f"FUSEDLSTM_BF16={level} but build_info()['bf16_level'] = {out['level']!r}"
    assert out["default_is_level"], "gemm_bf16 without level= must use the level in use"


@pytest.mark.parametrize("value", LEVELS)
def test_unavailable_level_fails_at_import(value):
    available = _core.build_info()["bf16_levels"]
    if value in available:
        pytest.skip(f"{value} is available here")
    proc = _run(value, "import fusedlstm._core")
    assert proc.returncode != 0, f"forcing missing level {value} must fail at import"
    assert "FUSEDLSTM_BF16" in proc.stderr and value in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("value", ["amx", "bf16", "AVX512BF16"])
def test_unknown_level_fails_at_import_naming_the_variable(value):
    proc = _run(value, "import fusedlstm._core")
    assert proc.returncode != 0, f"FUSEDLSTM_BF16={value!r} must fail at import"
    assert "FUSEDLSTM_BF16" in proc.stderr and value in proc.stderr, proc.stderr[-2000:]


def test_build_info_lists_bf16_levels_best_last():
    info = _core.build_info()
    levels = info["bf16_levels"]
    assert levels[0] == "portable" and levels == sorted(levels, key=LEVELS.index), levels
    assert info["bf16_level"] in levels
    if "FUSEDLSTM_BF16" not in os.environ:
        assert info["bf16_level"] == levels[-1], "without FUSEDLSTM_BF16 the best level is used"
    assert "16" in info["bf16_rule"] and "32768" in info["bf16_rule"], info["bf16_rule"]


def test_bf16_level_does_not_depend_on_the_float_isa():
    proc = subprocess.run(
        [sys.executable, "-c", "import json; from fusedlstm import _core; i = _core.build_info(); "
                               "print(json.dumps([i['isa'], i['bf16_level']]))"],
        env=dict(os.environ, FUSEDLSTM_ISA="generic", PYTHONPATH=package_parent()),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    isa, bf16 = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = os.environ.get("FUSEDLSTM_BF16") or _core.build_info()["bf16_levels"][-1]
    assert isa == "generic" and bf16 == expected, (isa, bf16)
