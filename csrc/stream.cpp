// stream.cpp — see stream.h.
//
// Per call, with x_0 the input and l = 0..L-1 the recurrent layers:
//   (y_l, h_l, c_l) = rnn_forward(layer l; x_l, h_l, c_l)     x_{l+1} = y_l
//   z = x_L·W_k (+ b_k), then the head's activation, for each head k in order.
#include "stream.h"

#include <algorithm>
#include <cstring>

#include "dense.h"
#include "isa/ops.h"

namespace fusedlstm {
namespace {

template <class Real> void grow(Buffer<Real>& b, size_t n) {
  if (b.size() < n) b.reset(n);
}

// The head's bias and activation, elementwise as NumPy computes them (`z += b`,
// np.maximum(z, 0), which keeps NaN and -0.0), so a linear or relu head is bitwise
// the layer's; softmax is the kernels' row softmax.
template <class Real> void head_tail(const StreamDense<Real>& d, int rows, Real* z) {
  const size_t n = size_t(rows) * size_t(d.N);
  if (d.b)
    for (size_t r = 0; r < size_t(rows); ++r) {
      Real* zr = z + r * size_t(d.N);
      for (int j = 0; j < d.N; ++j) zr[j] += d.b[j];
    }
  if (d.act == HeadAct::relu) {
    for (size_t e = 0; e < n; ++e)
      if (!(z[e] >= Real(0) || z[e] != z[e])) z[e] = Real(0);
  } else if (d.act == HeadAct::softmax) {
    FpModeGuard fp_guard;  // as dense_softmax_xent runs it
    ops<Real>().softmax_rows(rows, d.N, z, d.N, z, d.N);
  }
}

}  // namespace

template <class Real>
void stream_step(const StreamPlan<Real>& plan, const StreamInput<Real>& in, Real* const* h, Real* const* c,
                 Real* out, StreamScratch<Real>& S, int nt) {
  const int B = plan.B, T = in.T, L = int(plan.rnns.size());
  const uint8_t* mask = nullptr;
  if (plan.mask_zero) {
    grow(S.mask, size_t(B) * T);
    for (size_t e = 0, n = size_t(B) * T; e < n; ++e)
      S.mask.data()[e] = (in.ids32 ? in.ids32[e] != 0 : in.ids64[e] != 0) ? 1 : 0;
    mask = S.mask.data();
  }
  const Real* x = in.x;
  if (plan.E) {  // as the Embedding's np.take
    const size_t n = size_t(B) * T, D = size_t(plan.D);
    grow(S.rows, n * D);
    for (size_t e = 0; e < n; ++e)
      std::memcpy(S.rows.data() + e * D, plan.E + size_t(in.ids32 ? in.ids32[e] : in.ids64[e]) * D,
                  sizeof(Real) * D);
    x = S.rows.data();
  }
  int rows = B * T;  // rows of the current output: B·T, or B after a last-output layer
  for (int l = 0; l < L; ++l) {
    const StreamRecurrent<Real>& r = plan.rnns[l];
    const size_t BH = size_t(B) * r.H;
    const bool lstm = r.cell == CellKind::lstm;
    grow(S.prev, 2 * BH);
    std::memcpy(S.prev.data(), h[l], sizeof(Real) * BH);
    if (lstm) std::memcpy(S.prev.data() + BH, c[l], sizeof(Real) * BH);

    RnnInputs<Real> ri;
    ri.B = B, ri.T = T, ri.H = r.H, ri.I = r.I;
    if (l == 0 && plan.ids && !plan.E)
      ri.ids32 = in.ids32, ri.ids64 = in.ids64;
    else
      ri.x = x;
    ri.W = r.W, ri.U = r.U, ri.b = r.b, ri.b_rec = r.b_rec;
    ri.h0 = S.prev.data(), ri.c0 = lstm ? S.prev.data() + BH : nullptr;
    ri.mask = mask;
    ri.U_packed = r.U_packed;

    const bool last = l == L - 1 && plan.heads.empty();
    const size_t ny = r.opt.return_sequences ? size_t(T) * BH : BH;
    Real* y = out;
    if (!last) {
      grow(S.y[l & 1], ny);
      y = S.y[l & 1].data();
    }
    RnnOutputs<Real> ro{y, h[l], lstm ? c[l] : nullptr};
    rnn_forward(r.cell, ri, r.opt, ro, nt);
    x = y;
    rows = r.opt.return_sequences ? B * T : B;
    // A layer's output mask is its input's when it returns sequences (Keras), else none.
    if (!r.opt.return_sequences) mask = nullptr;
  }
  for (size_t k = 0; k < plan.heads.size(); ++k) {
    const StreamDense<Real>& d = plan.heads[k];
    const bool last = k + 1 == plan.heads.size();
    Real* z = out;
    if (!last) {
      Buffer<Real>& buf = S.y[(L + k) & 1];
      grow(buf, size_t(rows) * d.N);
      z = buf.data();
    }
    matmul(false, false, rows, d.N, d.K, x, d.W, z, false, nt, d.precision);
    head_tail(d, rows, z);
    x = z;
  }
}

template void stream_step<float>(const StreamPlan<float>&, const StreamInput<float>&, float* const*, float* const*,
                                 float*, StreamScratch<float>&, int);
template void stream_step<double>(const StreamPlan<double>&, const StreamInput<double>&, double* const*,
                                  double* const*, double*, StreamScratch<double>&, int);

}  // namespace fusedlstm
