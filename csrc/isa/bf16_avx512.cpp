// bf16_avx512.cpp — the bfloat16 GEMM on AVX512-BF16 (the "avx512bf16" level of
// isa/gemm_ops.h): a VDPBF16PS micro-kernel, float32 accumulation.
//
// Built with -mavx512bf16 and the AVX-512 flags; reached only through
// dispatch.cpp after cpuid (leaf 7 sub-leaf 1, EAX bit 5, besides AVX-512
// F/DQ/BW/VL) and xgetbv (ZMM and opmask state saved by the OS) checks. Same
// rules as ops_impl.h: own namespace, no global scratch, threads split M or N,
// never K, so a result is bitwise the same for every thread count.
//
// VDPBF16PS c, a, b works on 16 float lanes, each fed by one 32-bit word of a
// and of b holding two bfloat16 values:
//   c[i] += a.bf16[2i]·b.bf16[2i] + a.bf16[2i+1]·b.bf16[2i+1]
// 32 multiply-adds per instruction against an FMA's 16: twice the float rate
// (Zen 4 issues either at the same rate: measured 2.0x in a register-only loop).
//
// So the operands are packed in k-pairs (a word = rows k, k+1 of a column of
// op(B), or columns k, k+1 of a row of op(A); an odd K's last pair has a zero
// high half), rounded to bfloat16 as they are packed (VCVTNE2PS2BF16, which
// gives the bits of bf16_impl.h: checked for all 2^32 floats on Zen 4):
//   A -> panels of MR rows, word kk of row r at [kk*MR + r]; the kernel
//        broadcasts it to all lanes;
//   B -> panels of NR columns, word kk of column j at [kk*NR + j] (zero past N).
// The rest is gemm_impl.h's structure (loops ic > pc > jc > ir > jr, B packed
// once per call when M spans several blocks, gemm_packed on a caller's packed
// B) and its threading (gemm_run, shared), with depth counted in words: a KC
// of 768 k fills the L1/L2 bytes of the float GEMM's 384.
#define FUSEDLSTM_ISA_NS avx512bf16
#include "isa/simd_avx512.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "isa/gemm_impl.h"  // GemmJob, gemm_run: the threading of the float GEMM
#include "isa/gemm_ops.h"
#include "isa/impl_common.h"

namespace fusedlstm {
namespace avx512bf16 {
namespace {

using Word = uint32_t;  // two bfloat16: k (low half) and k+1 (high half)

inline int pairs(int k) { return (k + 1) / 2; }
inline __mmask16 mask16(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// 32 consecutive floats (n <= 32 of them valid, the rest read as zero) as 16
// words: k-pairs (p[0], p[1]), (p[2], p[3]), ...
inline __m512i pairs_of_row(const float* p, int n) {
  const __m512 lo = n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask16(n), p);
  const __m512 hi = n >= 32 ? _mm512_loadu_ps(p + 16)
                    : n > 16 ? _mm512_maskz_loadu_ps(mask16(n - 16), p + 16)
                             : _mm512_setzero_ps();
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// n <= 16 floats of two rows (k at lo, k+1 at hi; hi null past K) as n words:
// both rows converted in one instruction (lo's 16 halves, then hi's), then
// interleaved half by half.
inline __m512i pairs_of_rows(const float* lo, const float* hi, int n) {
  if (n <= 0) return _mm512_setzero_si512();
  const __mmask16 m = mask16(n);
  const __m512 l = _mm512_maskz_loadu_ps(m, lo);
  const __m512 h = hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps();
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,  //
                                              23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(h, l));
}

// In-place transpose of a 16x16 tile of words (the float transpose of simd_avx512.h).
inline void transpose_words(__m512i* w) {
  VF t[16];
  for (int i = 0; i < 16; ++i) t[i].v = _mm512_castsi512_ps(w[i]);
  VF::transpose(t);
  for (int i = 0; i < 16; ++i) w[i] = _mm512_castps_si512(t[i].v);
}

struct Gemm16 {
  static constexpr int L = 16;
  static constexpr int MR = 12;  // 12x32 tile: 24 accumulators, 2 B vectors, 1 broadcast
  static constexpr int NV = 2;
  static constexpr int NR = NV * L;
  static constexpr int KC = 768;   // k per block (even): an A micro-panel of 12 x 384 words = 18 KB in L1
  static constexpr int NC = 480;   // columns per B block: 384 x 480 words = 720 KB in L2
  static constexpr int MC = 1008;  // rows per A block
  static constexpr size_t kPrepackMax = size_t(4) << 20;  // words of B packed whole once per chunk
  static constexpr double kThreadFlops = 1.0e6;           // below: one thread (waking workers costs more)

  // C[R x w] (+)= A panel (kp words deep) · B panel, w <= NR valid columns.
  template <int R>
  static inline void kernel(int kp, const Word* __restrict a, const Word* __restrict b, float* c, int ldc, bool acc,
                            int w) {
    __m512 cr[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      __builtin_prefetch(c + (size_t)r * ldc, 1);
      __builtin_prefetch(c + (size_t)r * ldc + NR - 1, 1);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) cr[r][v] = _mm512_setzero_ps();
    }
    for (int k = 0; k < kp; ++k) {
      __m512bh bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * L);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) cr[r][v] = _mm512_dpbf16_ps(cr[r][v], av, bv[v]);
      }
      a += MR;
      b += NR;
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cp = c + (size_t)r * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const int n = w - v * L;
        if (n <= 0) break;
        const int nn = n < L ? n : L;
        VF x{cr[r][v]};
        if (acc) x = load_n<VF>(cp + v * L, nn) + x;
        store_n<VF>(x, cp + v * L, nn);
      }
    }
  }

  template <int R>
  static inline void kernel_rows(int r, int kp, const Word* a, const Word* b, float* c, int ldc, bool acc, int w) {
    if (r == R)
      kernel<R>(kp, a, b, c, ldc, acc, w);
    else if constexpr (R > 1)
      kernel_rows<R - 1>(r, kp, a, b, c, ldc, acc, w);
  }

  // op(A)[i0:i0+mc, k0:k0+kc] into MR-row panels of words.
  static void pack_a(bool ta, const float* A, int lda, int i0, int mc, int k0, int kc, Word* out) {
    const int kp = pairs(kc);
    for (int ir = 0; ir < mc; ir += MR) {
      const int r = imin(MR, mc - ir);
      const __mmask16 rows = mask16(r);
      Word* o = out + (size_t)ir * kp;
      if (ta) {
        // Row i of op(A) is column i of A: rows k and k+1 of A give word kk of
        // r consecutive rows of op(A) at once.
        for (int kk = 0; kk < kp; ++kk) {
          const float* lo = A + (size_t)(k0 + 2 * kk) * lda + i0 + ir;
          const float* hi = 2 * kk + 1 < kc ? lo + lda : nullptr;
          _mm512_mask_storeu_epi32(o + (size_t)kk * MR, rows, pairs_of_rows(lo, hi, r));
        }
      } else if (r <= 4 || kc <= 8) {
        // A few rows (a small batch) or a shallow block: a 16x16 transpose
        // would be mostly padding; each row's words are placed one by one.
        alignas(64) Word tmp[16];
        for (int rr = 0; rr < r; ++rr) {
          const float* src = A + (size_t)(i0 + ir + rr) * lda + k0;
          for (int k = 0; k < kc; k += 32) {
            const int nk = imin(32, kc - k);
            _mm512_store_si512(tmp, pairs_of_row(src + k, nk));
            for (int kk = 0; kk < pairs(nk); ++kk) o[(size_t)(k / 2 + kk) * MR + rr] = tmp[kk];
          }
        }
      } else {
        // A row's k-pairs are consecutive floats: 32 k of 16 rows (zero rows
        // past r) become 16 x 16 words, transposed so that vector kk holds word
        // kk of every row.
        for (int k = 0; k < kc; k += 32) {
          const int nk = imin(32, kc - k);
          __m512i t[16];
          for (int rr = 0; rr < 16; ++rr)
            t[rr] = rr < r ? pairs_of_row(A + (size_t)(i0 + ir + rr) * lda + k0 + k, nk) : _mm512_setzero_si512();
          transpose_words(t);
          for (int kk = 0; kk < pairs(nk); ++kk) _mm512_mask_storeu_epi32(o + (size_t)(k / 2 + kk) * MR, rows, t[kk]);
        }
      }
    }
  }

  // op(B)[k0:k0+kc, j0:j0+nc] into NR-column panels of words, zero-padded.
  static void pack_b_block(bool tb, const float* B, int ldb, int k0, int kc, int j0, int nc, Word* out) {
    const int kp = pairs(kc);
    for (int jp = 0; jp < nc; jp += NR) {
      const int w = imin(NR, nc - jp);
      Word* o = out + (size_t)jp * kp;
      if (!tb) {
        for (int kk = 0; kk < kp; ++kk) {
          const float* lo = B + (size_t)(k0 + 2 * kk) * ldb + j0 + jp;
          const float* hi = 2 * kk + 1 < kc ? lo + ldb : nullptr;
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v)
            _mm512_storeu_si512(o + (size_t)kk * NR + v * L,
                                pairs_of_rows(lo + v * L, hi ? hi + v * L : nullptr, w - v * L));
        }
      } else {
        // Column j of op(B) is row j of B, its k-pairs consecutive floats: 16
        // columns x 32 k become 16 x 16 words, transposed to rows of the panel.
        for (int k = 0; k < kc; k += 32) {
          const int nk = imin(32, kc - k);
          for (int v = 0; v < NV; ++v) {
            __m512i t[16];
            for (int i = 0; i < 16; ++i) {
              const int j = v * L + i;
              t[i] = j < w ? pairs_of_row(B + (size_t)(j0 + jp + j) * ldb + k0 + k, nk) : _mm512_setzero_si512();
            }
            transpose_words(t);
            for (int kk = 0; kk < pairs(nk); ++kk) _mm512_storeu_si512(o + (size_t)(k / 2 + kk) * NR + v * L, t[kk]);
          }
        }
      }
    }
  }

  using Job = GemmJob<float, Word>;

  // C[m0:m1, n0:n1] (n0 a multiple of NR).
  static void run_range(const Job& j, int m0, int m1, int n0, int n1) {
    if (m0 >= m1 || n0 >= n1) return;
    const int kpmax = pairs(imin(KC, j.K));
    Scratch<Word, 2048> abuf((size_t)round_up(imin(MC, m1 - m0), MR) * kpmax);
    // B in the whole-call layout (block pc at [pc/2 * Npad], its panel p at
    // [p * NR * kp]): the caller's, or packed here once for all row blocks.
    const Word* bfull = j.Bp;
    size_t bnpad = (size_t)round_up(j.N, NR);
    int bcol0 = 0;
    const size_t whole = (size_t)pairs(j.K) * round_up(n1 - n0, NR);
    const bool prepack = !bfull && m1 - m0 > MC && whole <= kPrepackMax;
    Scratch<Word, 1> bwhole(prepack ? whole : 0);
    if (prepack) {
      bnpad = (size_t)round_up(n1 - n0, NR);
      bcol0 = n0;
      for (int pc = 0; pc < j.K; pc += KC)
        pack_b_block(j.tb, j.B, j.ldb, pc, imin(KC, j.K - pc), n0, n1 - n0, bwhole.get() + (size_t)(pc / 2) * bnpad);
      bfull = bwhole.get();
    }
    Scratch<Word, 4096> bbuf(bfull ? 0 : (size_t)round_up(imin(NC, n1 - n0), NR) * kpmax);
    for (int ic = m0; ic < m1; ic += MC) {
      const int mc = imin(MC, m1 - ic);
      for (int pc = 0; pc < j.K; pc += KC) {
        const int kc = imin(KC, j.K - pc), kp = pairs(kc);
        pack_a(j.ta, j.A, j.lda, ic, mc, pc, kc, abuf.get());
        const bool acc = j.beta1 || pc > 0;
        for (int jc = n0; jc < n1; jc += NC) {
          const int nc = imin(NC, n1 - jc);
          const Word* bb;
          if (bfull) {
            bb = bfull + (size_t)(pc / 2) * bnpad + (size_t)(jc - bcol0) * kp;
          } else {
            pack_b_block(j.tb, j.B, j.ldb, pc, kc, jc, nc, bbuf.get());
            bb = bbuf.get();
          }
          for (int ir = 0; ir < mc; ir += MR) {
            const int r = imin(MR, mc - ir);
            const Word* ap = abuf.get() + (size_t)ir * kp;
            float* crow = j.C + (size_t)(ic + ir) * j.ldc + jc;
            for (int jr = 0; jr < nc; jr += NR)
              kernel_rows<MR>(r, kp, ap, bb + (size_t)jr * kp, crow + jr, j.ldc, acc, imin(NR, nc - jr));
          }
        }
      }
    }
  }

  static void gemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                   float beta, float* C, int ldc, int nthreads) {
    Job j{ta, tb, M, N, K, A, lda, B, ldb, nullptr, beta != 0.0f, C, ldc, false, 1};
    gemm_run<Gemm16>(j, nthreads);
  }

  // Floats (= words) of the packed B: ceil(K/2) rows of round_up(N, NR) words.
  static size_t packed_b_size(int K, int N) {
    if (K <= 0 || N <= 0) return 0;
    return (size_t)pairs(K) * round_up(N, NR);
  }

  static void pack_b(bool tb, int K, int N, const float* B, int ldb, float* packed) {
    if (K <= 0 || N <= 0) return;
    const size_t npad = (size_t)round_up(N, NR);
    Word* out = reinterpret_cast<Word*>(packed);  // written and read only through vector stores/loads
    for (int pc = 0; pc < K; pc += KC)
      pack_b_block(tb, B, ldb, pc, imin(KC, K - pc), 0, N, out + (size_t)(pc / 2) * npad);
  }

  static void gemm_packed(bool ta, int M, int N, int K, const float* A, int lda, const float* packed, float beta,
                          float* C, int ldc, int nthreads) {
    Job j{ta, false, M, N, K, A, lda, nullptr, 0, reinterpret_cast<const Word*>(packed), beta != 0.0f, C, ldc,
          false, 1};
    gemm_run<Gemm16>(j, nthreads);
  }
};

constexpr GemmOps kAvx512Bf16{"avx512bf16", &Gemm16::gemm, &Gemm16::packed_b_size, &Gemm16::pack_b,
                              &Gemm16::gemm_packed};

}  // namespace
}  // namespace avx512bf16

const GemmOps* gemm_ops_avx512bf16() { return &avx512bf16::kAvx512Bf16; }

}  // namespace fusedlstm
