// conv1d.h — Conv1D over channels_last sequences (Keras 3 semantics), forward
// and backward, as im2col + the library's GEMM.
//
//   y[b, t, f] = bias[f] + Σ_{k, c} xp[b, t·s + k·d, g·Cg + c] · W[k, c, f]    g = f / Fg
//
// x (B, L, C); W (K, C/groups, F), Keras's kernel layout; xp is x with pad_left
// and pad_right zero steps; Cg = C/groups input and Fg = F/groups output
// channels per group. Plain C++ on raw pointers the bindings checked.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "isa/ops.h"

namespace fusedlstm {

enum class Conv1dPadding { valid, same, causal };

// Sizes of one call. L letters: L input steps, L_out output steps, C input
// channels, F filters, K taps (kernel_size).
struct Conv1dShape {
  int B = 0, L = 0, C = 0, F = 0, K = 0;
  int stride = 1, dilation = 1, groups = 1;
  int pad_left = 0, pad_right = 0;  // zero steps before and after x
  int L_out = 0;
  int Cg() const { return C / groups; }
  int Fg() const { return F / groups; }
  int KC() const { return K * Cg(); }  // one im2col row: the K taps of Cg channels
};

// The padding (Keras 3: 'same' splits (L_out-1)·s + d·(K-1) + 1 - L with the odd
// step on the right; 'causal' pads d·(K-1) on the left) and L_out. Sizes are
// checked by the caller; throws std::invalid_argument (naming fn) when the
// padded input is shorter than the dilated kernel or a size exceeds the kernels' int range.
Conv1dShape conv1d_shape(const char* fn, int64_t B, int64_t L, int64_t C, int64_t F, int64_t K, int64_t stride,
                         int64_t dilation, int64_t groups, Conv1dPadding padding);

// Bytes a call allocates (outputs and scratch), for the MemoryError check.
size_t conv1d_forward_bytes(const Conv1dShape& s, size_t elem);
size_t conv1d_backward_bytes(const Conv1dShape& s, size_t elem, bool dx);

// y (B, L_out, F) = conv(x, W) [+ b]; b may be null.
template <class Real>
void conv1d_forward(const Conv1dShape& s, const Real* x, const Real* W, const Real* b, Real* y, int nthreads);

// Gradients of one backward call, allocated by the caller.
template <class Real> struct Conv1dGrads {
  Real* dx = nullptr;  // (B, L, C) or null (not wanted)
  Real* dW = nullptr;  // (K, C/groups, F)
  Real* db = nullptr;  // (F) or null (no bias)
  bool add_dW = false, add_db = false;  // add to what dW / db hold
};

// dx, dW, db of L from dy = dL/dy (B, L_out, F).
template <class Real>
void conv1d_backward(const Conv1dShape& s, const Real* x, const Real* W, const Real* dy, const Conv1dGrads<Real>& g,
                     int nthreads);

}  // namespace fusedlstm
