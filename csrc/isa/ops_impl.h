// ops_impl.h — the kernels of ops.h, written once over a SIMD vector type.
//
// Each ISA file defines FUSEDLSTM_ISA_NS, includes its simd_<isa>.h (which
// provides `VF`, the float vector, and `GemmShape`, its register tile and cache
// blocking) and then this file, so every function here is compiled once per
// instruction set inside that ISA's own namespace (the Highway / xxHash
// pattern): an inline function compiled with -mavx512f can never be chosen by
// the linker for the generic path. Hence also: no std:: templates here (tiny
// own helpers instead), and scratch memory comes from two plain functions
// defined in portable code (ops_generic.cpp).
//
// What this file promises: the semantics of ops.h for any sizes (0 included),
// any leading dimensions >= the row length, and any thread count with bitwise
// the same result (threads split M or N, never K; the K blocking does not depend
// on the split). What it does not: identical results across ISA levels (FMA
// and vector widths change rounding), or bounds checks (the callers check).
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header before ops_impl.h"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "isa/ops.h"
#include "threads.h"

namespace fusedlstm {

// 64-byte aligned scratch for packed GEMM operands (throws std::bad_alloc);
// free takes the size that was asked for. Recycled per thread (ops_generic.cpp).
void* isa_scratch_alloc(size_t bytes);
void isa_scratch_free(void* p, size_t bytes) noexcept;

namespace FUSEDLSTM_ISA_NS {

inline int imin(int a, int b) { return a < b ? a : b; }
inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// Packing buffer of one GEMM call (or thread chunk). Small ones live on the
// stack: a time step of a small LSTM must not pay for malloc.
template <class T, int kInline>
class Scratch {
 public:
  explicit Scratch(size_t n)
      : n_(n), p_(n <= (size_t)kInline ? small_ : static_cast<T*>(isa_scratch_alloc(n * sizeof(T)))) {}
  ~Scratch() {
    if (p_ != small_) isa_scratch_free(p_, n_ * sizeof(T));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }

 private:
  alignas(64) T small_[kInline];
  size_t n_;
  T* p_;
};

// ============================================================================
// Elementary functions
//
// exp: Cephes expf — x = n·ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
// a degree-6 polynomial for e^r, then scaling by 2^n built in the exponent
// bits. Relative error ~1e-7 on [-87.3, 88]. The input is clamped to 88 (so
// exp never returns inf: sigmoid(-100) is 1/(1 + 1.6e38) ~ 0, not 1/inf) and
// returns 0 below -87.3 (where the result would be denormal).
// tanh: Cephes tanhf — an odd polynomial below |x| = 0.625, where
// 1 - 2/(e^{2|x|} + 1) would lose relative accuracy, that formula above.
// ============================================================================

template <class V>
inline V vexp(V x) {
  if constexpr (V::kLibmMath) {
    return V::exp(x);
  } else {
    const V hi = V::set1(88.0f), lo = V::set1(-87.3f);
    const V xc = V::min(hi, V::max(lo, x));
    const V n = V::round(xc * V::set1(1.44269504088896341f));
    V r = V::fnmadd(n, V::set1(0.693359375f), xc);
    r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
    V p = V::set1(1.9875691500e-4f);
    p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
    p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
    p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
    p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
    p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
    p = V::fmadd(p, r * r, r + V::set1(1.0f));
    return V::select(V::lt(x, lo), V::zero(), p * V::pow2i(n));
  }
}

template <class V>
inline V vsigmoid(V x) {
  const V one = V::set1(typename V::T(1));
  return one / (one + vexp(V::zero() - x));
}

template <class V>
inline V vtanh(V x) {
  if constexpr (V::kLibmMath) {
    return V::tanh(x);
  } else {
    const V one = V::set1(1.0f);
    const V ax = V::abs(x);
    const V e = vexp(ax + ax);
    const V big = V::copysign(one - V::set1(2.0f) / (e + one), x);
    const V s = x * x;
    V p = V::set1(-5.70498872745e-3f);
    p = V::fmadd(p, s, V::set1(2.06390887954e-2f));
    p = V::fmadd(p, s, V::set1(-5.37397155531e-2f));
    p = V::fmadd(p, s, V::set1(1.33314422036e-1f));
    p = V::fmadd(p, s, V::set1(-3.33332819422e-1f));
    const V small = V::fmadd(p * s, x, x);
    return V::select(V::lt(ax, V::set1(0.625f)), small, big);
  }
}

// In min/max the variable goes second: the x86 instructions return the second
// operand when either is NaN, so NaN propagates as it does in Keras.
template <class V>
inline V activate(Act a, V x) {
  using T = typename V::T;
  switch (a) {
    case Act::tanh: return vtanh(x);
    case Act::sigmoid: return vsigmoid(x);
    case Act::hard_sigmoid:
      return V::min(V::set1(T(6)), V::max(V::zero(), x + V::set1(T(3)))) / V::set1(T(6));
    case Act::hard_sigmoid_k2:
      return V::min(V::set1(T(1)), V::max(V::zero(), V::set1(T(0.2)) * x + V::set1(T(0.5))));
    case Act::relu: return V::max(V::zero(), x);
    case Act::linear: return x;
  }
  return x;
}

// Derivative of an activation at the point where it output y.
template <class V>
inline V activate_grad(Act a, V y) {
  using T = typename V::T;
  const V one = V::set1(T(1));
  switch (a) {
    case Act::tanh: return one - y * y;
    case Act::sigmoid: return y * (one - y);
    case Act::hard_sigmoid:
      return V::select(V::mand(V::gt(y, V::zero()), V::lt(y, one)), V::set1(T(1) / T(6)), V::zero());
    case Act::hard_sigmoid_k2:
      return V::select(V::mand(V::gt(y, V::zero()), V::lt(y, one)), V::set1(T(0.2)), V::zero());
    case Act::relu: return V::select(V::gt(y, V::zero()), one, V::zero());
    case Act::linear: return one;
  }
  return one;
}

// Loads/stores of n <= L lanes: full vectors take the plain path.
template <class V>
inline V load_n(const typename V::T* p, int n) {
  return n == V::L ? V::load(p) : V::load_partial(p, n);
}
template <class V>
inline void store_n(V x, typename V::T* p, int n) {
  if (n == V::L)
    x.store(p);
  else
    x.store_partial(p, n);
}

// ============================================================================
// GEMM
//
// Goto/BLIS structure, row-major. C is computed in MR x NR register tiles
// (NR = NV vectors along a row of C): per k, NV vectors of the B panel are
// loaded and each of the MR values of A is broadcast into NV FMAs. Operands
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
// ============================================================================

template <class V, class S>
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
  // few column panels of a small product (an LSTM time step) save.
  static constexpr size_t kDirectA = 8192;
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
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const V av = V::set1(APACK ? a[r] : a[(size_t)r * lda]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) cr[r][v] = V::fmadd(av, bv[v], cr[r][v]);
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
        if constexpr (L >= MR) {
          // L consecutive k of the panel's rows (zero rows past r) transposed in
          // registers: vector kk is column k + kk, whose first r lanes are stored.
          for (int k = 0; k < kc; k += L) {
            const int nk = imin(L, kc - k);
            V t[L];
            for (int rr = 0; rr < L; ++rr)
              t[rr] = rr < r ? load_n<V>(A + (size_t)(i0 + ir + rr) * lda + k0 + k, nk) : V::zero();
            V::transpose(t);
            for (int kk = 0; kk < nk; ++kk) store_n<V>(t[kk], o + (size_t)(k + kk) * MR, r);
          }
        } else {
          for (int rr = 0; rr < r; ++rr) {
            const T* src = A + (size_t)(i0 + ir + rr) * lda + k0;
            for (int k = 0; k < kc; ++k) o[(size_t)k * MR + rr] = src[k];
          }
        }
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
  }

  struct Job {
    bool ta, tb;
    int M, N, K;
    const T* A;
    int lda;
    const T* B;  // unpacked B, or null when Bp is given
    int ldb;
    const T* Bp;  // pre-packed B (gemm_packed)
    bool beta1;
    T* C;
    int ldc;
    bool split_n;  // thread chunks split N (in NR panels) or M (in MR panels)
    int chunks;
  };

  // C[m0:m1, n0:n1] (n0 a multiple of NR).
  static void run_range(const Job& j, int m0, int m1, int n0, int n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const int kcmax = imin(KC, j.K);
    const bool apack = j.ta || (size_t)(m1 - m0) * kcmax > kDirectA;
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
            } else {
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

  static void run_chunk(void* ctx, int i) {
    const Job& j = *static_cast<const Job*>(ctx);
    if (j.split_n) {
      const int panels = (j.N + NR - 1) / NR;
      const int p0 = (int)((long long)panels * i / j.chunks), p1 = (int)((long long)panels * (i + 1) / j.chunks);
      run_range(j, 0, j.M, p0 * NR, imin(j.N, p1 * NR));
    } else {
      const int panels = (j.M + MR - 1) / MR;
      const int p0 = (int)((long long)panels * i / j.chunks), p1 = (int)((long long)panels * (i + 1) / j.chunks);
      run_range(j, p0 * MR, imin(j.M, p1 * MR), 0, j.N);
    }
  }

  static void run(Job& j, int nthreads) {
    if (j.M <= 0 || j.N <= 0) return;
    if (j.K <= 0) {
      if (!j.beta1)
        for (int i = 0; i < j.M; ++i) std::memset(j.C + (size_t)i * j.ldc, 0, sizeof(T) * j.N);
      return;
    }
    const double flops = 2.0 * j.M * j.N * j.K;
    int nt = flops < kThreadFlops ? 1 : nthreads;
    const int pn = (j.N + NR - 1) / NR, pm = (j.M + MR - 1) / MR;
    // Split the dimension whose operand is cheaper to pack twice (each chunk
    // packs all of the other operand), as long as it yields enough chunks.
    j.split_n = pn >= 2 * nt ? (j.N >= j.M || pm < 2 * nt) : pn >= pm;
    const int units = j.split_n ? pn : pm;
    j.chunks = nt < units ? nt : units;
    if (j.chunks <= 1) {
      j.chunks = 1;
      run_range(j, 0, j.M, 0, j.N);
      return;
    }
    parallel_for(j.chunks, run_chunk, &j, j.chunks);
  }

  static void gemm(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
                   T beta, T* C, int ldc, int nthreads) {
    Job j{ta, tb, M, N, K, A, lda, B, ldb, nullptr, beta != T(0), C, ldc, false, 1};
    run(j, nthreads);
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
    run(j, nthreads);
  }
};

// ============================================================================
// LSTM cell, one time step (formulas in ops.h)
// ============================================================================

// Loops over the H units of a row in vectors. When H is not a multiple of the
// vector width, the last vector is not a masked one but a full vector ending at
// H, overlapping the one before: with masked loads and stores the cell of a
// 25-unit LSTM took 1.7x as long on Zen 5 (327 vs 197 cycles a row, AVX-512,
// measured in isolation). The kernels below read the overlapping vector's
// inputs before any store (gates and dc are updated in place), so the overlap
// is written twice with the same values.
template <class V>
inline int full_vectors_end(int H) {
  return H >= V::L && H % V::L ? H - H % V::L : H;  // [0, end) in full vectors; then the tail
}

template <class V>
void lstm_cell_forward(int B, int H, typename V::T* G, int ldg, const typename V::T* c_prev, int ldcp,
                       typename V::T* c, int ldc, typename V::T* h, int ldh, typename V::T* actc,
                       int ldac, Act act, Act rec_act) {
  using T = typename V::T;
  const int jend = full_vectors_end<V>(H);
  for (int b = 0; b < B; ++b) {
    T* g = G + (size_t)b * ldg;
    const T* cp = c_prev + (size_t)b * ldcp;
    T* cr = c + (size_t)b * ldc;
    T* hr = h + (size_t)b * ldh;
    T* ar = actc ? actc + (size_t)b * ldac : nullptr;
    // One vector at j (n lanes) from its pre-activations.
    auto step = [&](int j, int n, V zi, V zf, V zg, V zo, V cpv) {
      const V i = activate(rec_act, zi), f = activate(rec_act, zf);
      const V gg = activate(act, zg), o = activate(rec_act, zo);
      const V cn = f * cpv + i * gg;
      const V a = activate(act, cn);
      store_n(i, g + j, n);
      store_n(f, g + H + j, n);
      store_n(gg, g + 2 * H + j, n);
      store_n(o, g + 3 * H + j, n);
      store_n(cn, cr + j, n);
      store_n(o * a, hr + j, n);
      if (ar) store_n(a, ar + j, n);
    };
    const int jt = H - V::L;  // the overlapping tail vector, when jend < H
    V ti{}, tf{}, tg{}, to{}, tc{};
    if (jend < H)
      ti = V::load(g + jt), tf = V::load(g + H + jt), tg = V::load(g + 2 * H + jt), to = V::load(g + 3 * H + jt),
      tc = V::load(cp + jt);
    for (int j = 0; j < jend; j += V::L) {
      const int n = imin(V::L, H - j);
      step(j, n, load_n<V>(g + j, n), load_n<V>(g + H + j, n), load_n<V>(g + 2 * H + j, n),
           load_n<V>(g + 3 * H + j, n), load_n<V>(cp + j, n));
    }
    if (jend < H) step(jt, V::L, ti, tf, tg, to, tc);
  }
}

template <class V>
void lstm_cell_backward(int B, int H, const typename V::T* gates, int ldg, const typename V::T* c_prev,
                        int ldcp, const typename V::T* actc, int ldac, const typename V::T* dh, int lddh,
                        typename V::T* dc, int lddc, typename V::T* dZ, int lddz, Act act, Act rec_act) {
  using T = typename V::T;
  const int jend = full_vectors_end<V>(H);  // and an overlapping tail vector (see above)
  for (int b = 0; b < B; ++b) {
    const T* g = gates + (size_t)b * ldg;
    const T* cp = c_prev + (size_t)b * ldcp;
    const T* ar = actc + (size_t)b * ldac;
    const T* dhr = dh + (size_t)b * lddh;
    T* dcr = dc + (size_t)b * lddc;
    T* dz = dZ + (size_t)b * lddz;
    auto step = [&](int j, int n, V dcin) {
      const V i = load_n<V>(g + j, n), f = load_n<V>(g + H + j, n);
      const V gg = load_n<V>(g + 2 * H + j, n), o = load_n<V>(g + 3 * H + j, n);
      const V a = load_n<V>(ar + j, n), d = load_n<V>(dhr + j, n);
      const V dct = dcin + d * o * activate_grad(act, a);
      const V cpv = load_n<V>(cp + j, n);
      store_n(dct * gg * activate_grad(rec_act, i), dz + j, n);
      store_n(dct * cpv * activate_grad(rec_act, f), dz + H + j, n);
      store_n(dct * i * activate_grad(act, gg), dz + 2 * H + j, n);
      store_n(d * a * activate_grad(rec_act, o), dz + 3 * H + j, n);
      store_n(dct * f, dcr + j, n);
    };
    const int jt = H - V::L;
    const V tdc = jend < H ? V::load(dcr + jt) : V::zero();  // dc is updated in place: read first
    for (int j = 0; j < jend; j += V::L) {
      const int n = imin(V::L, H - j);
      step(j, n, load_n<V>(dcr + j, n));
    }
    if (jend < H) step(jt, V::L, tdc);
  }
}

// ============================================================================
// Softmax over rows
// ============================================================================

template <class V>
void softmax_rows(int N, int C, const typename V::T* z, int ldz, typename V::T* probs, int ldp) {
  using T = typename V::T;
  if (C <= 0) return;
  const int cv = C / V::L * V::L;  // vector part; the tail is scalar
  for (int r = 0; r < N; ++r) {
    const T* zr = z + (size_t)r * ldz;
    T* pr = probs + (size_t)r * ldp;
    T mx = zr[0];
    if (cv > 0) {
      V m = V::load(zr);
      for (int j = V::L; j < cv; j += V::L) m = V::max(V::load(zr + j), m);
      mx = V::hmax(m);
    }
    for (int j = cv; j < C; ++j) mx = zr[j] > mx ? zr[j] : mx;
    const V vmx = V::set1(mx);
    V vs = V::zero();
    for (int j = 0; j < cv; j += V::L) {
      const V e = vexp(V::load(zr + j) - vmx);
      e.store(pr + j);
      vs = vs + e;
    }
    T s = V::hsum(vs);
    if (cv < C) {
      const int n = C - cv;
      vexp(V::load_partial(zr + cv, n) - vmx).store_partial(pr + cv, n);
      for (int j = cv; j < C; ++j) s += pr[j];
    }
    const V vsum = V::set1(s);
    for (int j = 0; j < cv; j += V::L) (V::load(pr + j) / vsum).store(pr + j);
    for (int j = cv; j < C; ++j) pr[j] = pr[j] / s;
  }
}

// ============================================================================
// Optimizers (Keras 3 formulas; ops.h; c1, c2, c are the complements 1-β).
// Plain loops: with -ffp-contract=off the compiler vectorises them without
// fusing, so every ISA level gives the same bits.
// ============================================================================

// ============================================================================
// Column sums, row scatters, one-hot rows (see ops.h)
// ============================================================================

// Column sums: blocks of 32 rows are summed in T, their sums in double: the
// accuracy of a double sum (a block adds at most 32 rounding errors) without
// converting every element. scatter_add_rows forms the same sums in its pass
// over the rows (a lookup table's gradient and its bias's), reading them once.
template <class T>
void scatter_sum_rows(size_t rows, int cols, const int32_t* ids, const T* x, size_t ldx, T* W, size_t ldw,
                      T* sum, bool add) {
  constexpr int kChunk = 256;   // columns per pass: the accumulators stay in L1
  constexpr size_t kRows = 32;  // rows summed in T
  for (int j0 = 0; j0 < cols; j0 += kChunk) {
    const int n = imin(kChunk, cols - j0);
    double acc[kChunk];
    T part[kChunk];
    for (int j = 0; j < n; ++j) acc[j] = 0.0;
    for (size_t r0 = 0; r0 < rows; r0 += kRows) {
      const size_t r1 = rows - r0 < kRows ? rows : r0 + kRows;
      for (int j = 0; j < n; ++j) part[j] = T(0);
      for (size_t r = r0; r < r1; ++r) {
        const T* __restrict xr = x + r * ldx + j0;
        if (ids && ids[r] >= 0) {
          T* __restrict w = W + size_t(ids[r]) * ldw + j0;
          for (int j = 0; j < n; ++j) w[j] += xr[j];
        }
        if (sum)
          for (int j = 0; j < n; ++j) part[j] += xr[j];
      }
      if (sum)
        for (int j = 0; j < n; ++j) acc[j] += double(part[j]);
    }
    if (sum)
      for (int j = 0; j < n; ++j) sum[j0 + j] = add ? sum[j0 + j] + T(acc[j]) : T(acc[j]);
  }
}

template <class T>
void sum_rows(size_t rows, int cols, const T* x, size_t ldx, T* out, bool add) {
  scatter_sum_rows<T>(rows, cols, nullptr, x, ldx, nullptr, 0, out, add);
}

template <class T>
void scatter_add_rows(size_t rows, int cols, const int32_t* ids, const T* x, size_t ldx, T* W, size_t ldw, T* sum,
                      bool add_sum) {
  scatter_sum_rows<T>(rows, cols, ids, x, ldx, W, ldw, sum, add_sum);
}

// A row is one-hot (or all zero) iff every entry is 0 or 1 and at most one is
// nonzero; the sum of j over its nonzero entries is then the id. Branch-free so
// that the scan vectorises: it runs over every one-hot input of every call.
template <class T>
bool onehot_rows(const T* x, size_t rows, int V, int32_t* ids) {
  for (size_t r = 0; r < rows; ++r) {
    const T* row = x + r * size_t(V);
    unsigned bad = 0, count = 0, id = 0;  // unsigned: a bad row's index sum may wrap, harmlessly
    for (int j = 0; j < V; ++j) {
      const unsigned nz = row[j] != T(0);
      bad |= nz & unsigned(row[j] != T(1));
      count += nz;
      id += nz * unsigned(j);
    }
    if (bad | (count > 1)) return false;
    ids[r] = count ? int32_t(id) : -1;
  }
  return true;
}

// x - x is 0 for a finite x and NaN for NaN and ±Inf: one branch-free test per
// element, OR-ed over blocks; only a block with a hit is searched element by element.
template <class T>
size_t first_nonfinite(const T* x, size_t n) {
  constexpr size_t kBlock = 1024;
  for (size_t i0 = 0; i0 < n; i0 += kBlock) {
    const size_t i1 = n - i0 < kBlock ? n : i0 + kBlock;
    unsigned bad = 0;
    for (size_t i = i0; i < i1; ++i) bad |= unsigned(!(x[i] - x[i] == T(0)));
    if (bad)
      for (size_t i = i0; i < i1; ++i)
        if (!(x[i] - x[i] == T(0))) return i;
  }
  return n;
}

template <class T>
void adam(size_t n, T* __restrict w, const T* __restrict g, T* __restrict m, T* __restrict v, T alpha,
          T beta1, T beta2, T eps, T c1, T c2) {
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = beta1 * m[i] + c1 * gi;
    const T vi = beta2 * v[i] + c2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    w[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

template <class T>
void sgd(size_t n, T* __restrict w, const T* __restrict g, T* __restrict u, T lr, T momentum, bool nesterov) {
  if (momentum == T(0)) {
    for (size_t i = 0; i < n; ++i) w[i] -= lr * g[i];
  } else if (nesterov) {
    for (size_t i = 0; i < n; ++i) {
      const T ui = momentum * u[i] - lr * g[i];
      u[i] = ui;
      w[i] += momentum * ui - lr * g[i];
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const T ui = momentum * u[i] - lr * g[i];
      u[i] = ui;
      w[i] += ui;
    }
  }
}

template <class T>
void rmsprop(size_t n, T* __restrict w, const T* __restrict g, T* __restrict s, T lr, T rho, T eps, T c) {
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T si = rho * s[i] + c * (gi * gi);
    s[i] = si;
    w[i] -= (lr * gi) / std::sqrt(si + eps);
  }
}

// The table of one (vector type, GEMM shape) pair. constexpr: the tables are
// constant-initialised, so no static-initialisation order question arises.
template <class V, class S>
constexpr KernelOps<typename V::T> make_table(const char* name) {
  using T = typename V::T;
  using G = Gemm<V, S>;
  return KernelOps<T>{name,
                      &G::gemm,
                      &G::packed_b_size,
                      &G::pack_b,
                      &G::gemm_packed,
                      &lstm_cell_forward<V>,
                      &lstm_cell_backward<V>,
                      &softmax_rows<V>,
                      &sum_rows<T>,
                      &scatter_add_rows<T>,
                      &onehot_rows<T>,
                      &first_nonfinite<T>,
                      &adam<T>,
                      &sgd<T>,
                      &rmsprop<T>};
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
