// precision.h — float32 or bfloat16 matrix products (Keras's mixed_bfloat16
// policy), chosen per product.
//
// Under Precision::bfloat16 the operands of a GEMM are rounded to bfloat16 and
// the products summed in float32 (isa/gemm_ops.h); everything else a kernel does
// (gate non-linearities, cell state, softmax, losses, optimizer) stays float32.
// A product too small for bfloat16 to pay stays float32 (bf16_pays below): the
// rule depends on the shape only, never on the CPU, so a model gets the same
// numbers on every machine up to float32 summation order.
//
// ---- How the recurrent driver calls it (the LSTM/GRU/SimpleRNN integration) ----
// The driver takes a Precision with its options and asks gemm_for once per
// product *kind* per call, with that kind's full shape, then uses the returned
// table for every call of that kind (so a packed operand and the products that
// read it always come from the same level):
//   forward    Z = X·W (+ b)                 gemm_for(p, T*B, G, I).gemm
//              per step Z_s += h_{s-1}·U       rec = gemm_for(p, B, G, H);
//                                              Up(rec.packed_b_size(H, G)); rec.pack_b(false, H, G, U, G, Up)
//                                              once per call, then rec.gemm_packed(false, m, G, H, h, H, Up, 1, ...)
//                                              per step (m <= B rows: the decision is made for B, not m)
//   backward   per step dh_{s-1} = dZ_s·Uᵀ     recT = gemm_for(p, B, H, G); pack_b(true, G, H, U, G, UpT)
//                                              once, gemm_packed per step
//              dU = Hprevᵀ·dZ                  gemm_for(p, H, G, T*B).gemm(true, false, ...)
//              dW = Xᵀ·dZ                      gemm_for(p, I, G, T*B).gemm(true, false, ...)
//              dX = dZ·Wᵀ                      gemm_for(p, T*B, I, G).gemm(false, true, ...)
// (G = gates·H: 4H for LSTM, 3H for GRU, H for SimpleRNN. The GRU without
// reset_after multiplies by two column segments of U, n = 2H then H: each
// segment is its own product kind, with N = n in place of G above.) Packed buffers are
// counted in floats for every level, so Buffer<float>(ops.packed_b_size(K, N))
// holds any of them. The token-id path stays float32: the forward is a row
// lookup of W (no product; rows are exact, where a one-hot x·W under bfloat16
// would give bf16(W) rows: round the gathered rows if the two paths must agree),
// and the token-table gradient is a scatter-add of dZ rows. Gradients are
// accumulated in float32 (beta = 1 adds to a float32 C).
#pragma once
#include <cstddef>
#include <string>
#include <type_traits>

#include "isa/gemm_ops.h"
#include "isa/ops.h"

namespace fusedlstm {

enum class Precision : int { float32 = 0, bfloat16 = 1 };

// "float32" -> float32, "bfloat16" -> bfloat16; anything else throws
// std::invalid_argument naming fn and the value.
Precision parse_precision(const char* fn, const std::string& name);

// "float32" or "bfloat16".
inline const char* precision_name(Precision p) { return p == Precision::bfloat16 ? "bfloat16" : "float32"; }

// Whether a bfloat16 product op(A)(M,K)·op(B)(K,N) is worth it (see precision.cpp
// for the measurements behind the rule).
bool bf16_pays(int M, int N, int K);

// The rule in words, for build_info().
const char* bf16_rule();

// The GEMM for op(A)(M,K)·op(B)(K,N) at precision p: the float32 GEMM for
// float32 or a product bfloat16 does not pay for, else the bfloat16 level in use.
const GemmOps& gemm_for(Precision p, int M, int N, int K);

// The GEMM entries of the table gemm_for(p, M, N, K) picks, over Real, for code
// written over Real (the sequence driver): float takes them from gemm_for, double
// from the exact float64 table (the bindings refuse bfloat16 with float64 arrays).
// Same signatures and semantics as GemmOps; packed_b_size counts Reals.
template <class Real> struct GemmFns {
  void (*gemm)(bool ta, bool tb, int M, int N, int K, const Real* A, int lda, const Real* B, int ldb, Real beta,
               Real* C, int ldc, int nthreads);
  size_t (*packed_b_size)(int K, int N);
  void (*pack_b)(bool tb, int K, int N, const Real* B, int ldb, Real* packed);
  void (*gemm_packed)(bool ta, int M, int N, int K, const Real* A, int lda, const Real* packed, Real beta, Real* C,
                      int ldc, int nthreads);
};

template <class Real> GemmFns<Real> gemm_fns_for(Precision p, int M, int N, int K) {
  if constexpr (std::is_same_v<Real, float>) {
    const GemmOps& g = gemm_for(p, M, N, K);
    return {g.gemm, g.packed_b_size, g.pack_b, g.gemm_packed};
  } else {
    const KernelOps<Real>& k = ops<Real>();
    return {k.gemm, k.packed_b_size, k.pack_b, k.gemm_packed};
  }
}

// C(M,N) = beta*C + op(A)·op(B) at precision p, for the kernels written over
// Real: float goes through gemm_for, double always through the exact float64
// table (the bindings refuse bfloat16 with float64 arrays).
template <class Real>
void gemm_at(Precision p, bool ta, bool tb, int M, int N, int K, const Real* A, int lda, const Real* B, int ldb,
             Real beta, Real* C, int ldc, int nthreads) {
  if constexpr (sizeof(Real) == sizeof(float))
    gemm_for(p, M, N, K).gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, nthreads);
  else
    ops<Real>().gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, nthreads);
}

}  // namespace fusedlstm
