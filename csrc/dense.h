// dense.h — the output layer and loss in one call (Dense + softmax +
// cross-entropy, forward and backward), and the library's matmul.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "isa/ops.h"
#include "precision.h"

namespace fusedlstm {

// Inputs of dense_softmax_xent, checked by the bindings.
template <class Real> struct XentInputs {
  int N = 0, D = 0, C = 0;
  const Real* x = nullptr;          // (N,D)
  const Real* W = nullptr;          // (D,C)
  const Real* b = nullptr;          // (C) or null
  const int64_t* labels = nullptr;  // (N) class ids (unchecked: checked against [0, C) here), or null
  const Real* targets = nullptr;    // (N,C) target distributions, or null
  const Real* weights = nullptr;    // (N) or null (all 1)
  bool from_logits = false;
  double clip_eps = 1e-7;
  Precision precision = Precision::float32;  // of the three GEMMs only (float only)
};

// Outputs, allocated by the caller; dx, dW, db null when no backward (db also when b is).
template <class Real> struct XentOutputs {
  Real* probs = nullptr;  // (N,C)
  Real* dx = nullptr;     // (N,D)
  Real* dW = nullptr;     // (D,C)
  Real* db = nullptr;     // (C)
};

// Bytes one call allocates (outputs and scratch), for the MemoryError check.
size_t dense_softmax_xent_bytes(size_t elem, int N, int D, int C, bool backward);

// Returns Σ_n w_n·loss_n (accumulated in double, in row order).
template <class Real>
double dense_softmax_xent(const XentInputs<Real>& in, const XentOutputs<Real>& out, int nthreads);

// C(M,N) = [C +] op(A)·op(B) on C-contiguous A, B, C (ld = their column counts),
// at precision p (bfloat16 for float only).
template <class Real>
void matmul(bool ta, bool tb, int M, int N, int K, const Real* A, const Real* B, Real* C, bool accumulate,
            int nthreads, Precision p = Precision::float32);

}  // namespace fusedlstm
