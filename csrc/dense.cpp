// dense.cpp — Dense + softmax + cross-entropy (see dense.h).
//
// The loss follows Keras 3's PyTorch backend so that the numbers match Keras:
//   from_logits=False:  q = p / Σp,  loss = -Σ_c t_c log clip(q_c, eps, 1-eps)
//   from_logits=True:   loss = -Σ_c t_c log_softmax(z)_c
// and the gradient is the exact derivative of that computation, clipping
// included (torch.clamp passes the gradient where eps <= q <= 1-eps, else 0).
// Per-row arithmetic of the loss and its gradient is in double; it is O(N·C)
// against the GEMMs' O(N·C·D).
#include "dense.h"

#include "onehot.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace fusedlstm {

size_t dense_softmax_xent_bytes(size_t elem, int N, int D, int C, bool backward) {
  const size_t NC = mul_size(size_t(N), size_t(C));
  size_t n = mul_size(2, NC);  // probs, logits / dlogits
  if (backward) n = add_size(n, add_size(mul_size(size_t(N), size_t(D)), mul_size(size_t(D) + 1, size_t(C))));
  return add_size(mul_size(n, elem), mul_size(size_t(N), sizeof(double) + sizeof(int64_t)));
}

namespace {

// Row n's loss and, when dz is given, the loss gradient w.r.t. the logits
// (before the row weight), for from_logits=False:
//   gq_c = -t_c / q_c where eps <= q_c <= 1-eps, else 0         (dL/dq)
//   gp_j = (gq_j - Σ_c gq_c q_c) / S                             (q = p / S, S = Σp)
//   dz_j = p_j (gp_j - Σ_c gp_c p_c)                             (softmax Jacobian)
// t is the target row, or null for the one-hot target `label`.
template <class Real>
double xent_probs_row(int C, const Real* p, const Real* t, int64_t label, Real lo, Real hi, Real* dz,
                      std::vector<double>& gq) {
  double S = 0;
  for (int c = 0; c < C; ++c) S += double(p[c]);
  const Real Sr = Real(S);
  double loss = 0, a = 0;
  auto q_of = [&](int c) { return p[c] / Sr; };  // Keras divides in the array's dtype
  if (!t) {
    const Real q = q_of(int(label));
    const Real qc = std::min(std::max(q, lo), hi);
    loss = -std::log(double(qc));
    if (!dz) return loss;
    const double g = (q >= lo && q <= hi) ? -1.0 / double(q) : 0.0;
    a = g * double(q);
    const double sgp = (g * double(p[label]) - a * S) / S;  // Σ_c gp_c p_c
    // gp_c = -a/S for every class but the label's, (g - a)/S
    const double rest = -a / S - sgp;
    for (int c = 0; c < C; ++c) dz[c] = Real(double(p[c]) * rest);
    dz[label] = Real(double(p[label]) * ((g - a) / S - sgp));
    return loss;
  }
  for (int c = 0; c < C; ++c) {
    const Real q = q_of(c);
    const Real qc = std::min(std::max(q, lo), hi);
    if (t[c] != Real(0)) loss -= double(t[c]) * std::log(double(qc));
    gq[c] = (q >= lo && q <= hi) ? -double(t[c]) / double(q) : 0.0;
    a += gq[c] * double(q);
  }
  if (!dz) return loss;
  double sgp = 0;
  for (int c = 0; c < C; ++c) {
    gq[c] = (gq[c] - a) / S;  // now gp_c
    sgp += gq[c] * double(p[c]);
  }
  for (int c = 0; c < C; ++c) dz[c] = Real(double(p[c]) * (gq[c] - sgp));
  return loss;
}

// from_logits=True: loss = -Σ t_c (z_c - lse), dz = p·Σt - t. z is overwritten
// by dz when wanted (z and dz are the same row).
template <class Real>
double xent_logits_row(int C, Real* z, const Real* p, const Real* t, int64_t label, bool want_dz) {
  double m = -INFINITY;
  for (int c = 0; c < C; ++c) m = std::max(m, double(z[c]));
  double s = 0;
  for (int c = 0; c < C; ++c) s += std::exp(double(z[c]) - m);
  const double lse = m + std::log(s);
  double loss = 0, tsum = 1;
  if (!t) {
    loss = lse - double(z[label]);
  } else {
    tsum = 0;
    for (int c = 0; c < C; ++c)
      if (t[c] != Real(0)) loss -= double(t[c]) * (double(z[c]) - lse), tsum += double(t[c]);
  }
  if (want_dz)
    for (int c = 0; c < C; ++c)
      z[c] = Real(double(p[c]) * tsum - (t ? double(t[c]) : (c == label ? 1.0 : 0.0)));
  return loss;
}

}  // namespace

template <class Real>
double dense_softmax_xent(const XentInputs<Real>& in, const XentOutputs<Real>& out, int nt) {
  FpModeGuard fp_guard;
  const KernelOps<Real>& k = ops<Real>();
  const int N = in.N, D = in.D, C = in.C;
  const bool backward = out.dW != nullptr;
  if (in.labels)
    for (int n = 0; n < N; ++n)
      FUSEDLSTM_CHECK(in.labels[n] >= 0 && in.labels[n] < C, "dense_softmax_xent: labels[", n, "] = ",
                      in.labels[n], " is not a class id in [0, ", C, ")");
  // One-hot targets are class ids: the same loss and gradient without a pass of
  // divisions over every class of every row.
  const int64_t* labels = in.labels;
  const Real* targets = in.targets;
  Buffer<int32_t> ids32(targets ? size_t(N) : 0);
  std::vector<int64_t> ids64;
  if (targets && onehot_ids(targets, size_t(N), C, ids32.data()) &&
      std::find(ids32.data(), ids32.data() + N, -1) == ids32.data() + N) {
    ids64.assign(ids32.data(), ids32.data() + N);
    labels = ids64.data();
    targets = nullptr;
  }

  // logits = x·W + b: into probs (softmax in place) unless the logits are needed
  // for log_softmax; `work` then holds them and, row by row, becomes dlogits.
  Buffer<Real> work((backward || in.from_logits) ? size_t(N) * C : 0);
  Real* logits = in.from_logits ? work.data() : out.probs;
  if (in.b)
    for (int n = 0; n < N; ++n) std::memcpy(logits + size_t(n) * C, in.b, sizeof(Real) * C);
  const Precision pr = in.precision;
  gemm_at(pr, false, false, N, C, D, in.x, D, in.W, C, in.b ? Real(1) : Real(0), logits, C, nt);
  k.softmax_rows(N, C, logits, C, out.probs, C);

  const Real lo = Real(in.clip_eps), hi = Real(1.0 - in.clip_eps);
  std::vector<double> row_loss(static_cast<size_t>(N));
  parallel_rows(N, size_t(N) * C, nt, [&](int r0, int r1) {
    std::vector<double> gq(labels ? 0 : static_cast<size_t>(C));
    for (int n = r0; n < r1; ++n) {
      const Real* p = out.probs + size_t(n) * C;
      const Real* t = targets ? targets + size_t(n) * C : nullptr;
      const int64_t label = labels ? labels[n] : 0;
      Real* dz = backward ? work.data() + size_t(n) * C : nullptr;
      row_loss[n] = in.from_logits ? xent_logits_row(C, work.data() + size_t(n) * C, p, t, label, backward)
                                   : xent_probs_row(C, p, t, label, lo, hi, dz, gq);
      const Real w = in.weights ? in.weights[n] : Real(1);
      if (in.weights) row_loss[n] *= double(w);
      if (dz && in.weights)
        for (int c = 0; c < C; ++c) dz[c] *= w;
    }
  });
  double loss = 0;
  for (int n = 0; n < N; ++n) loss += row_loss[n];
  if (!backward) return loss;

  // dx = dlogits·W^T   dW = x^T·dlogits   db = Σ_n dlogits (the sum in float32
  // whatever the GEMMs' precision)
  const Real* dl = work.data();
  gemm_at(pr, false, true, N, D, C, dl, C, in.W, C, Real(0), out.dx, D, nt);
  gemm_at(pr, true, false, D, C, N, in.x, D, dl, C, Real(0), out.dW, C, nt);
  if (out.db)
    parallel_rows(C, size_t(N) * C, nt, [&](int j0, int j1) {
      k.sum_rows(size_t(N), j1 - j0, dl + j0, C, out.db + j0, false);
    });
  return loss;
}

template <class Real>
void matmul(bool ta, bool tb, int M, int N, int K, const Real* A, const Real* B, Real* C, bool accumulate,
            int nt, Precision p) {
  FpModeGuard fp_guard;
  gemm_at(p, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, accumulate ? Real(1) : Real(0), C, N, nt);
}

template double dense_softmax_xent<float>(const XentInputs<float>&, const XentOutputs<float>&, int);
template double dense_softmax_xent<double>(const XentInputs<double>&, const XentOutputs<double>&, int);
template void matmul<float>(bool, bool, int, int, int, const float*, const float*, float*, bool, int, Precision);
template void matmul<double>(bool, bool, int, int, int, const double*, const double*, double*, bool, int,
                             Precision);

}  // namespace fusedlstm
