// conv1d.cpp — Conv1D forward and backward (see conv1d.h).
//
// im2col: the output rows (b, t) are M = B·L_out rows of one matrix product per
// group, whose row (b, t) holds the K taps x[b, t·s + k·d - pad_left, group's
// channels] (zeros in the padding) — KC = K·Cg values in W's row order (k, c),
// so W (K, Cg, F) read as a (KC, F) matrix is the product's right operand as
// stored, a group's filters being a column block of it:
//   Y_g = cols_g · W_g                 (forward)
//   dW_g = Σ cols_g^T · dY_g           (over the rows)
//   dcols_g = dY_g · W_g^T;  dx = col2im(dcols)   (adds each tap back where it was read)
//   db = Σ rows of dY
// Rows are processed in chunks of a few hundred KiB of cols, so the im2col rows
// are still in cache when the product reads them and the scratch stays small.
// The chunking depends only on the shapes, and threads split each product's M
// or N (never K) and col2im's batch rows, so results do not depend on the thread count.
#include "conv1d.h"

#include <algorithm>
#include <cstring>

namespace fusedlstm {
namespace {

constexpr size_t kChunkBytes = size_t(512) << 10;  // cols per chunk: L2-sized
constexpr int kMinChunkRows = 64;                  // a product worth the GEMM's packing

int chunk_rows(const Conv1dShape& s, size_t elem) {
  const size_t M = size_t(s.B) * s.L_out;
  const size_t rows = std::max<size_t>(kMinChunkRows, kChunkBytes / (size_t(s.KC()) * elem));
  return int(std::min(M, rows));
}

// cols (m1-m0, KC) = the im2col rows [m0, m1) of group g.
template <class Real>
void im2col(const Conv1dShape& s, const Real* x, int g, int m0, int m1, Real* cols, int nt) {
  const int Cg = s.Cg(), KC = s.KC();
  parallel_rows(m1 - m0, size_t(m1 - m0) * KC, nt, [&](int r0, int r1) {
    for (int r = m0 + r0; r < m0 + r1; ++r) {
      const int b = r / s.L_out, t = r % s.L_out;
      const int i0 = t * s.stride - s.pad_left;  // input step of tap 0
      Real* dst = cols + size_t(r - m0) * KC;
      const Real* xb = x + size_t(b) * s.L * s.C + size_t(g) * Cg;
      if (s.dilation == 1 && s.groups == 1 && i0 >= 0 && i0 + s.K <= s.L) {
        std::memcpy(dst, xb + size_t(i0) * s.C, sizeof(Real) * KC);  // the K taps are contiguous in x
        continue;
      }
      for (int k = 0; k < s.K; ++k) {
        const int i = i0 + k * s.dilation;
        if (i >= 0 && i < s.L)
          std::memcpy(dst + size_t(k) * Cg, xb + size_t(i) * s.C, sizeof(Real) * Cg);
        else
          std::memset(dst + size_t(k) * Cg, 0, sizeof(Real) * Cg);
      }
    }
  });
}

// dx += col2im(dcols) for the rows [m0, m1) of group g. Threads take whole
// batch rows b (each owns dx[b]); within one, rows and taps add in order.
template <class Real>
void col2im_add(const Conv1dShape& s, const Real* dcols, int g, int m0, int m1, Real* dx, int nt) {
  const int Cg = s.Cg(), KC = s.KC();
  const int b0 = m0 / s.L_out, b1 = (m1 - 1) / s.L_out + 1;
  parallel_rows(b1 - b0, size_t(m1 - m0) * KC, nt, [&](int q0, int q1) {
    for (int b = b0 + q0; b < b0 + q1; ++b) {
      const int r_begin = std::max(m0, b * s.L_out), r_end = std::min(m1, (b + 1) * s.L_out);
      Real* dxb = dx + size_t(b) * s.L * s.C + size_t(g) * Cg;
      for (int r = r_begin; r < r_end; ++r) {
        const int i0 = (r - b * s.L_out) * s.stride - s.pad_left;
        const Real* src = dcols + size_t(r - m0) * KC;
        for (int k = 0; k < s.K; ++k) {
          const int i = i0 + k * s.dilation;
          if (i < 0 || i >= s.L) continue;
          Real* __restrict d = dxb + size_t(i) * s.C;
          const Real* __restrict e = src + size_t(k) * Cg;
          for (int c = 0; c < Cg; ++c) d[c] += e[c];
        }
      }
    }
  });
}

}  // namespace

Conv1dShape conv1d_shape(const char* fn, int64_t B, int64_t L, int64_t C, int64_t F, int64_t K, int64_t stride,
                         int64_t dilation, int64_t groups, Conv1dPadding padding) {
  // Callers checked every size >= 1 and fits in int; the products below are int64.
  const int64_t span = (K - 1) * dilation + 1;  // the dilated kernel's extent
  int64_t left = 0, right = 0;
  if (padding == Conv1dPadding::causal) {
    left = span - 1;
  } else if (padding == Conv1dPadding::same) {
    const int64_t total =
        stride == 1 ? span - 1 : std::max<int64_t>(0, ((L + stride - 1) / stride - 1) * stride + span - L);
    left = total / 2, right = total - total / 2;
  }
  const int64_t padded = L + left + right;
  FUSEDLSTM_CHECK(padded >= span, fn, ": the input has L = ", L, " steps (", padded,
                  " with padding), fewer than the dilated kernel's (kernel_size - 1) * dilation_rate + 1 = ", span,
                  ": there is no output step");
  Conv1dShape s;
  s.B = int(B), s.L = int(L), s.C = int(C), s.F = int(F), s.K = int(K);
  s.stride = int(stride), s.dilation = int(dilation), s.groups = int(groups);
  s.pad_left = as_int(fn, "the left padding", size_t(left));
  s.pad_right = as_int(fn, "the right padding", size_t(right));
  as_int(fn, "the padded length", size_t(padded));
  s.L_out = int((padded - span) / stride + 1);
  as_int(fn, "B*L_out", mul_size(size_t(B), size_t(s.L_out)));
  as_int(fn, "kernel_size*C/groups", mul_size(size_t(K), size_t(C / groups)));
  return s;
}

size_t conv1d_forward_bytes(const Conv1dShape& s, size_t elem) {
  const size_t y = mul_size(size_t(s.B), size_t(s.L_out), size_t(s.F));
  const size_t cols = mul_size(size_t(chunk_rows(s, elem)), size_t(s.KC()));
  return mul_size(add_size(y, cols), elem);
}

size_t conv1d_backward_bytes(const Conv1dShape& s, size_t elem, bool dx) {
  size_t n = mul_size(size_t(s.KC()), size_t(s.F));                                     // dW
  n = add_size(n, mul_size(2, size_t(chunk_rows(s, elem)), size_t(s.KC())));           // cols, dcols
  if (dx) n = add_size(n, mul_size(size_t(s.B), size_t(s.L), size_t(s.C)));
  return mul_size(add_size(n, size_t(s.F)), elem);
}

template <class Real>
void conv1d_forward(const Conv1dShape& s, const Real* x, const Real* W, const Real* b, Real* y, int nt) {
  FpModeGuard fp_guard;
  const KernelOps<Real>& k = ops<Real>();
  const int M = s.B * s.L_out, F = s.F, Fg = s.Fg(), KC = s.KC();
  const int chunk = chunk_rows(s, sizeof(Real));
  Buffer<Real> cols(size_t(chunk) * KC);
  for (int m0 = 0; m0 < M; m0 += chunk) {
    const int m1 = std::min(M, m0 + chunk), rows = m1 - m0;
    Real* Y = y + size_t(m0) * F;
    if (b)
      for (int r = 0; r < rows; ++r) std::memcpy(Y + size_t(r) * F, b, sizeof(Real) * F);
    for (int g = 0; g < s.groups; ++g) {
      im2col(s, x, g, m0, m1, cols.data(), nt);
      // Y_g = [b +] cols · W_g
      k.gemm(false, false, rows, Fg, KC, cols.data(), KC, W + size_t(g) * Fg, F, b ? Real(1) : Real(0),
             Y + size_t(g) * Fg, F, nt);
    }
  }
}

template <class Real>
void conv1d_backward(const Conv1dShape& s, const Real* x, const Real* W, const Real* dy, const Conv1dGrads<Real>& g,
                     int nt) {
  FpModeGuard fp_guard;
  const KernelOps<Real>& k = ops<Real>();
  const int M = s.B * s.L_out, F = s.F, Fg = s.Fg(), KC = s.KC();
  const int chunk = chunk_rows(s, sizeof(Real));

  if (g.db)  // column blocks, each column summed in row order
    parallel_rows(F, size_t(M) * F, nt, [&](int j0, int j1) {
      k.sum_rows(size_t(M), j1 - j0, dy + j0, size_t(F), g.db + j0, g.add_db);
    });

  Buffer<Real> cols(size_t(chunk) * KC), dcols(g.dx ? size_t(chunk) * KC : 0);
  if (g.dx) std::memset(g.dx, 0, sizeof(Real) * size_t(s.B) * s.L * s.C);
  for (int m0 = 0; m0 < M; m0 += chunk) {
    const int m1 = std::min(M, m0 + chunk), rows = m1 - m0;
    const Real* dY = dy + size_t(m0) * F;
    for (int q = 0; q < s.groups; ++q) {
      const Real* dYg = dY + size_t(q) * Fg;
      // dW_g (KC, Fg) [+]= cols_g^T · dY_g
      im2col(s, x, q, m0, m1, cols.data(), nt);
      k.gemm(true, false, KC, Fg, rows, cols.data(), KC, dYg, F, (m0 > 0 || g.add_dW) ? Real(1) : Real(0),
             g.dW + size_t(q) * Fg, F, nt);
      if (g.dx) {
        // dcols_g (rows, KC) = dY_g · W_g^T, then added back to the steps they were read from
        k.gemm(false, true, rows, KC, Fg, dYg, F, W + size_t(q) * Fg, F, Real(0), dcols.data(), KC, nt);
        col2im_add(s, dcols.data(), q, m0, m1, g.dx, nt);
      }
    }
  }
}

#define FUSEDLSTM_INSTANTIATE(Real)                                                                           \
  template void conv1d_forward<Real>(const Conv1dShape&, const Real*, const Real*, const Real*, Real*, int); \
  template void conv1d_backward<Real>(const Conv1dShape&, const Real*, const Real*, const Real*,              \
                                      const Conv1dGrads<Real>&, int);
FUSEDLSTM_INSTANTIATE(float)
FUSEDLSTM_INSTANTIATE(double)
#undef FUSEDLSTM_INSTANTIATE

}  // namespace fusedlstm
