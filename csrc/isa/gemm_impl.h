// gemm_impl.h — the float GEMM (packed, register-tiled, threaded) over a SIMD vector.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include <cstddef>
#include <cstring>

#include "isa/bf16_impl.h"
#include "isa/impl_common.h"
#include "threads.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// ============================================================================
// GEMM
//
// Goto/BLIS structure, row-major. C is computed in MR x NR register tiles
// (NR = NV vectors along a row of C): per k, NV vectors of the B panel are
// loaded and each of the MR values of A is broadcast into NV FMAs (on NEON: A
// loaded L values at a time, FMA by element; see HasLaneFma). Operands
// are packed so that the micro-kernel reads both sequentially:
//   B -> panels of NR columns, row k of a panel at [k*NR] (zero-padded past N);
//   A -> panels of MR rows, column k at [k*MR] (a short last panel is read by a
//        kernel instantiated for that many rows, so A needs no padding).
// Transposes are absorbed by the packing. Loops, outermost first:
//   ic (MC rows of A, a packed block in L3) > pc (KC deep) > jc (NC columns, a
//   packed B block in L2) > ir (one A micro-panel, kept in L1) > jr (B panels
//   streamed from L2) > micro-kernel.
// The first K block stores (beta = 0) or adds to C; later blocks add to C, so
// each element is summed in the same order for every thread split.
//
// Edges: partial vectors of C are written with masked stores (no temp tile).
//
// gemm_packed reads B from a pre-packed copy with the same layout over all of
// K and N (block pc at [pc*Npad], its panel p at [p*NR*kc]): the LSTM packs
// its recurrent kernel once per sequence. gemm uses that layout too when M
// spans several MC blocks (B packed once, not once per block). A small A block
// (one time step of a small batch) is not packed: the kernel broadcasts straight
// from A's rows, and B is packed on the stack: no allocation.
//
// Threads: chunks of whole NR panels of N, or of MR panels of M (whichever
// operand is cheaper to pack twice), one per thread; each chunk packs its own
// operands into its own scratch.
//
// kBf16 = true is the portable bfloat16 level (isa/gemm_ops.h): both operands
// are rounded to bfloat16 as they are packed (A is then always packed), and the
// float kernel sums the products, which are exact in float. The float GEMM
// (kBf16 = false) compiles exactly as before.
// ============================================================================

// One GEMM call: T the element type of A, B and C, P that of the packed B.
template <class T, class P>
struct GemmJob {
  bool ta, tb;
  int M, N, K;
  const T* A;
  int lda;
  const T* B;  // unpacked B, or null when Bp is given
  int ldb;
  const P* Bp;  // pre-packed B (gemm_packed)
  bool beta1;
  T* C;
  int ldc;
  bool split_n;  // thread chunks split N (in NR panels) or M (in MR panels)
  int chunks;
};

// The threading of a GEMM, for any implementation G with MR, NR, kThreadFlops,
// a Job (GemmJob) and run_range(job, m0, m1, n0, n1): one chunk per thread of
// whole NR panels of N or MR panels of M, never of K.
template <class G>
void gemm_run_chunk(void* ctx, int i) {
  const typename G::Job& j = *static_cast<const typename G::Job*>(ctx);
  constexpr int MR = G::MR, NR = G::NR;
  if (j.split_n) {
    const int panels = (j.N + NR - 1) / NR;
    const int p0 = (int)((long long)panels * i / j.chunks), p1 = (int)((long long)panels * (i + 1) / j.chunks);
    G::run_range(j, 0, j.M, p0 * NR, imin(j.N, p1 * NR));
  } else {
    const int panels = (j.M + MR - 1) / MR;
    const int p0 = (int)((long long)panels * i / j.chunks), p1 = (int)((long long)panels * (i + 1) / j.chunks);
    G::run_range(j, p0 * MR, imin(j.M, p1 * MR), 0, j.N);
  }
}

template <class G>
void gemm_run(typename G::Job& j, int nthreads) {
  constexpr int MR = G::MR, NR = G::NR;
  if (j.M <= 0 || j.N <= 0) return;
  if (j.K <= 0) {
    if (!j.beta1)
      for (int i = 0; i < j.M; ++i) std::memset(j.C + (size_t)i * j.ldc, 0, sizeof(*j.C) * j.N);
    return;
  }
  const double flops = 2.0 * j.M * j.N * j.K;
  int nt = flops < G::kThreadFlops ? 1 : nthreads;
  const int pn = (j.N + NR - 1) / NR, pm = (j.M + MR - 1) / MR;
  // Split the dimension whose operand is cheaper to pack twice (each chunk
  // packs all of the other operand), as long as it yields enough chunks.
  j.split_n = pn >= 2 * nt ? (j.N >= j.M || pm < 2 * nt) : pn >= pm;
  const int units = j.split_n ? pn : pm;
  j.chunks = nt < units ? nt : units;
  if (j.chunks <= 1) {
    j.chunks = 1;
    G::run_range(j, 0, j.M, 0, j.N);
    return;
  }
  parallel_for(j.chunks, gemm_run_chunk<G>, &j, j.chunks);
}

// Optional parts of a vector type and a GEMM shape, with their defaults:
//   V::fmadd_lane<i>(a, b, c) = c + a[i]*b (FMLA by element on NEON): the
//     micro-kernel then loads L rows of a packed A column as one vector instead
//     of broadcasting each (x86 folds the broadcast into the FMA's memory
//     operand; AArch64 has no such operand, and 8 scalar A registers would push
//     an 8x12 tile's 24 accumulators out of the 32 registers);
//   S::kDirectA: the largest A block (elements) read in place (see Gemm::kDirectA).
template <class V, class = void>
struct HasLaneFma {
  static constexpr bool value = false;
};
template <class V>
struct HasLaneFma<V, decltype(void(V::template fmadd_lane<0>(V::zero(), V::zero(), V::zero())))> {
  static constexpr bool value = true;
};
template <class S, class = void>
struct DirectALimit {
  static constexpr size_t value = 8192;
};
template <class S>
struct DirectALimit<S, decltype(void(S::kDirectA))> {
  static constexpr size_t value = S::kDirectA;
};

template <class V, class S, bool kBf16 = false>
struct Gemm {
  using T = typename V::T;
  static constexpr int L = V::L;
  static constexpr int MR = S::MR;
  static constexpr int NV = S::NV;
  static constexpr int NR = NV * L;
  static constexpr int KC = S::KC;
  static constexpr int NC = (S::NC + NR - 1) / NR * NR;
  static constexpr int MC = (S::MC + MR - 1) / MR * MR;
  // An A block of at most this many elements (rows x depth; 32 KB of floats) is
  // read in place: it stays in L1 anyway, and packing it would cost more than the
  // few column panels of a small product (an LSTM time step) save. A shape may
  // set its own (S::kDirectA; 0: always pack).
  static constexpr size_t kDirectA = DirectALimit<S>::value;
  // Packed A columns are read L rows at a time (see HasLaneFma).
  static constexpr bool kLaneA = HasLaneFma<V>::value && MR % L == 0;
  // Largest B (elements) packed whole once per call and thread chunk (16 MB of floats).
  static constexpr size_t kPrepackMax = size_t(4) << 20;
  // Below this many flops a product runs on one thread: waking workers costs more.
  static constexpr double kThreadFlops = 1.0e6;

  // C[R x w] (+)= A[R x kc] · Bpanel[kc x NR], w <= NR valid columns.
  // APACK: a[k*MR + r] (packed); else a[r*lda + k] (A in place).
  template <int R, bool APACK>
  static inline void kernel(int kc, const T* __restrict a, int lda, const T* __restrict b, T* c,
                            int ldc, bool acc, int w) {
    V cr[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      // The C tile is needed only after the k loop: fetch it meanwhile.
      __builtin_prefetch(c + (size_t)r * ldc, 1);
      __builtin_prefetch(c + (size_t)r * ldc + NR - 1, 1);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) cr[r][v] = V::zero();
    }
    for (int k = 0; k < kc; ++k) {
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * L);
      if constexpr (APACK && kLaneA) {
        fma_lane_groups<0, R>(a, bv, cr);
      } else {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const V av = V::set1(APACK ? a[r] : a[(size_t)r * lda]);
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) cr[r][v] = V::fmadd(av, bv[v], cr[r][v]);
        }
      }
      a += APACK ? MR : 1;
      b += NR;
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      T* cp = c + (size_t)r * ldc;
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        const int n = w - v * L;
        if (n <= 0) break;
        const int nn = n < L ? n : L;
        V x = cr[r][v];
        if (acc) x = load_n<V>(cp + v * L, nn) + x;
        store_n<V>(x, cp + v * L, nn);
      }
    }
  }

  // cr[r] += a[r] * bv for r in [r0, R), L rows per vector of A: a holds a
  // packed column of MR values, so a vector at r0 < R stays inside it (in a
  // short panel its lanes past R hold whatever packing left there, never used).
  // Template recursion because the lane of FMLA by element is an immediate.
  template <int lane, int r0, int R>
  static inline void fma_lanes(V av, const V (&bv)[NV], V (&cr)[R][NV]) {
    if constexpr (lane < L && r0 + lane < R) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) cr[r0 + lane][v] = V::template fmadd_lane<lane>(av, bv[v], cr[r0 + lane][v]);
      fma_lanes<lane + 1, r0, R>(av, bv, cr);
    }
  }
  template <int r0, int R>
  static inline void fma_lane_groups(const T* a, const V (&bv)[NV], V (&cr)[R][NV]) {
    if constexpr (r0 < R) {
      fma_lanes<0, r0, R>(V::load(a + r0), bv, cr);
      fma_lane_groups<r0 + L, R>(a, bv, cr);
    }
  }

  template <int R, bool APACK>
  static inline void kernel_rows(int r, int kc, const T* a, int lda, const T* b, T* c, int ldc,
                                 bool acc, int w) {
    if (r == R)
      kernel<R, APACK>(kc, a, lda, b, c, ldc, acc, w);
    else if constexpr (R > 1)
      kernel_rows<R - 1, APACK>(r, kc, a, lda, b, c, ldc, acc, w);
  }

  static inline void prefetch_row(const T* p, int n) {
    for (int k = 0; k < n; k += 64 / (int)sizeof(T)) __builtin_prefetch(p + k);
  }

  // A[i0:i0+mc, k0:k0+kc] (of op(A)) into MR-row panels.
  static void pack_a(bool ta, const T* A, int lda, int i0, int mc, int k0, int kc, T* out) {
    for (int ir = 0; ir < mc; ir += MR) {
      const int r = imin(MR, mc - ir);
      T* o = out + (size_t)ir * kc;
      if (ta) {
        // Row k of the panel is MR consecutive values of A: a fixed-size copy
        // (a few vector moves) for a full panel, element by element for a short one.
        if (r == MR)
          for (int k = 0; k < kc; ++k)
            std::memcpy(o + (size_t)k * MR, A + (size_t)(k0 + k) * lda + i0 + ir, sizeof(T) * MR);
        else
          for (int k = 0; k < kc; ++k) {
            const T* src = A + (size_t)(k0 + k) * lda + i0 + ir;
            for (int rr = 0; rr < r; ++rr) o[(size_t)k * MR + rr] = src[rr];
          }
      } else {
        // Row segments are short (kc floats) and far apart (lda), too short
        // for the hardware prefetcher to ramp up: fetch the next panel's rows
        // while this panel is copied.
        const int next = imin(MR, mc - ir - MR);  // rows of the next panel (none past the block)
        for (int rr = 0; rr < next; ++rr) prefetch_row(A + (size_t)(i0 + ir + MR + rr) * lda + k0, kc);
        if constexpr (L > 1) {
          // L consecutive k of L of the panel's rows (zero rows past r)
          // transposed in registers: vector kk is column k + kk of rows g..g+L-1,
          // whose first gr lanes are stored. One group of rows when L >= MR.
          for (int k = 0; k < kc; k += L) {
            const int nk = imin(L, kc - k);
            for (int g = 0; g < r; g += L) {
              const int gr = imin(L, r - g);
              V t[L];
              for (int rr = 0; rr < L; ++rr)
                t[rr] = rr < gr ? load_n<V>(A + (size_t)(i0 + ir + g + rr) * lda + k0 + k, nk) : V::zero();
              V::transpose(t);
              for (int kk = 0; kk < nk; ++kk) store_n<V>(t[kk], o + (size_t)(k + kk) * MR + g, gr);
            }
          }
        } else {
          for (int rr = 0; rr < r; ++rr) {
            const T* src = A + (size_t)(i0 + ir + rr) * lda + k0;
            for (int k = 0; k < kc; ++k) o[(size_t)k * MR + rr] = src[k];
          }
        }
      }
      if constexpr (kBf16) {
        if (r == MR)
          bf16_round_n(o, (size_t)MR * kc);
        else  // only the r rows written: the rest of a short panel is never read
          for (int k = 0; k < kc; ++k) bf16_round_n(o + (size_t)k * MR, r);
      }
    }
  }

  // B[k0:k0+kc, j0:j0+nc] (of op(B)) into NR-column panels, zero-padded.
  static void pack_b_block(bool tb, const T* B, int ldb, int k0, int kc, int j0, int nc, T* out) {
    for (int jp = 0; jp < nc; jp += NR) {
      const int w = imin(NR, nc - jp);
      T* o = out + (size_t)jp * kc;
      if (!tb) {
        for (int k = 0; k < kc; ++k) {
          const T* src = B + (size_t)(k0 + k) * ldb + j0 + jp;
          T* dst = o + (size_t)k * NR;
          if (w == NR) {
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) V::load(src + v * L).store(dst + v * L);
          } else {
            int j = 0;
            for (; j < w; ++j) dst[j] = src[j];
            for (; j < NR; ++j) dst[j] = T(0);
          }
        }
      } else {
        // Transposed source: a column of the panel is a row of B. L x L tiles
        // (L rows of B, L consecutive k) are transposed in registers.
        for (int k = 0; k < kc; k += L) {
          const int nk = imin(L, kc - k);
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) {
            V t[L];
            for (int i = 0; i < L; ++i) {
              const int j = v * L + i;
              t[i] = j < w ? load_n<V>(B + (size_t)(j0 + jp + j) * ldb + k0 + k, nk) : V::zero();
            }
            V::transpose(t);
            for (int i = 0; i < nk; ++i) t[i].store(o + (size_t)(k + i) * NR + v * L);
          }
        }
      }
    }
    if constexpr (kBf16) bf16_round_n(out, (size_t)round_up(nc, NR) * kc);
  }

  using Job = GemmJob<T, T>;

  // C[m0:m1, n0:n1] (n0 a multiple of NR).
  static void run_range(const Job& j, int m0, int m1, int n0, int n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const int kcmax = imin(KC, j.K);
    // Packing A pays when its micro-panels are read once per column panel of B; a
    // range of one panel (a narrow output, e.g. a softmax head of a few dozen
    // classes) reads each A value once, so it is read in place however large
    // (chars-seq's head, 5120 x 256 · 256 x 27, one thread on Zen 4: 0.96 -> 0.74 ms).
    const bool apack = kBf16 || j.ta || kDirectA == 0 || ((size_t)(m1 - m0) * kcmax > kDirectA && n1 - n0 > NR);
    Scratch<T, 1024> abuf(apack ? (size_t)round_up(imin(MC, m1 - m0), MR) * kcmax : 0);
    // B in the pre-packed layout: the caller's (gemm_packed), or packed here
    // once for all row blocks when there are several (each B block would
    // otherwise be packed again per MC rows), or null: packed per block.
    const T* bfull = j.Bp;
    size_t bnpad = (size_t)round_up(j.N, NR);  // row length of bfull's K blocks
    int bcol0 = 0;                              // column of C that bfull starts at
    const size_t whole = (size_t)j.K * round_up(n1 - n0, NR);
    const bool prepack = !bfull && m1 - m0 > MC && whole <= kPrepackMax;
    Scratch<T, 1> bwhole(prepack ? whole : 0);
    if (prepack) {
      bnpad = (size_t)round_up(n1 - n0, NR);
      bcol0 = n0;
      for (int pc = 0; pc < j.K; pc += KC)
        pack_b_block(j.tb, j.B, j.ldb, pc, imin(KC, j.K - pc), n0, n1 - n0, bwhole.get() + (size_t)pc * bnpad);
      bfull = bwhole.get();
    }
    Scratch<T, 4096> bbuf(bfull ? 0 : (size_t)round_up(imin(NC, n1 - n0), NR) * kcmax);
    for (int ic = m0; ic < m1; ic += MC) {
      const int mc = imin(MC, m1 - ic);
      for (int pc = 0; pc < j.K; pc += KC) {
        const int kc = imin(KC, j.K - pc);
        if (apack) pack_a(j.ta, j.A, j.lda, ic, mc, pc, kc, abuf.get());
        const bool acc = j.beta1 || pc > 0;
        for (int jc = n0; jc < n1; jc += NC) {
          const int nc = imin(NC, n1 - jc);
          const T* bb;
          if (bfull) {
            bb = bfull + (size_t)pc * bnpad + (size_t)(jc - bcol0) * kc;
          } else {
            pack_b_block(j.tb, j.B, j.ldb, pc, kc, jc, nc, bbuf.get());
            bb = bbuf.get();
          }
          for (int ir = 0; ir < mc; ir += MR) {
            const int r = imin(MR, mc - ir);
            T* crow = j.C + (size_t)(ic + ir) * j.ldc + jc;
            if (apack) {
              const T* ap = abuf.get() + (size_t)ir * kc;
              for (int jr = 0; jr < nc; jr += NR)
                kernel_rows<MR, true>(r, kc, ap, 0, bb + (size_t)jr * kc, crow + jr, j.ldc, acc,
                                      imin(NR, nc - jr));
            } else if constexpr (kDirectA > 0) {  // (no direct kernels where A is always packed)
              const T* ap = j.A + (size_t)(ic + ir) * j.lda + pc;
              for (int jr = 0; jr < nc; jr += NR)
                kernel_rows<MR, false>(r, kc, ap, j.lda, bb + (size_t)jr * kc, crow + jr, j.ldc,
                                       acc, imin(NR, nc - jr));
            }
          }
        }
      }
    }
  }

  static void gemm(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
                   T beta, T* C, int ldc, int nthreads) {
    Job j{ta, tb, M, N, K, A, lda, B, ldb, nullptr, beta != T(0), C, ldc, false, 1};
    gemm_run<Gemm>(j, nthreads);
  }

  static size_t packed_b_size(int K, int N) {
    if (K <= 0 || N <= 0) return 0;
    return (size_t)K * round_up(N, NR);
  }

  static void pack_b(bool tb, int K, int N, const T* B, int ldb, T* packed) {
    if (K <= 0 || N <= 0) return;
    const size_t npad = (size_t)round_up(N, NR);
    for (int pc = 0; pc < K; pc += KC)
      pack_b_block(tb, B, ldb, pc, imin(KC, K - pc), 0, N, packed + (size_t)pc * npad);
  }

  static void gemm_packed(bool ta, int M, int N, int K, const T* A, int lda, const T* packed, T beta,
                          T* C, int ldc, int nthreads) {
    Job j{ta, false, M, N, K, A, lda, nullptr, 0, packed, beta != T(0), C, ldc, false, 1};
    gemm_run<Gemm>(j, nthreads);
  }
};

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
