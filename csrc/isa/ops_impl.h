// ops_impl.h — TEMPORARY simple kernels (step 1); replaced by the SIMD version.
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS before including ops_impl.h"
#endif
#include <cmath>
#include <cstddef>
#include <cstring>

#include "isa/ops.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

template <class T> static inline T act_fwd(Act a, T x) {
  switch (a) {
    case Act::tanh: return std::tanh(x);
    case Act::sigmoid: return T(1) / (T(1) + std::exp(-x));
    case Act::hard_sigmoid: { T y = (x + T(3)) / T(6); return y < T(0) ? T(0) : (y > T(1) ? T(1) : y); }
    case Act::hard_sigmoid_k2: { T y = T(0.2) * x + T(0.5); return y < T(0) ? T(0) : (y > T(1) ? T(1) : y); }
    case Act::relu: return x > T(0) ? x : T(0);
    case Act::linear: return x;
  }
  return x;
}
template <class T> static inline T act_grad(Act a, T y) {
  switch (a) {
    case Act::tanh: return T(1) - y * y;
    case Act::sigmoid: return y * (T(1) - y);
    case Act::hard_sigmoid: return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    case Act::hard_sigmoid_k2: return (y > T(0) && y < T(1)) ? T(0.2) : T(0);
    case Act::relu: return y > T(0) ? T(1) : T(0);
    case Act::linear: return T(1);
  }
  return T(1);
}

template <class T>
static void gemm(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb,
                 T beta, T* C, int ldc, int) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      T s = T(0);
      for (int k = 0; k < K; ++k)
        s += (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
             (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
      T* c = C + (size_t)i * ldc + j;
      *c = beta == T(0) ? s : *c + s;
    }
}
template <class T> static size_t packed_b_size(int K, int N) { return (size_t)K * N; }
template <class T> static void pack_b(bool tb, int K, int N, const T* B, int ldb, T* P) {
  for (int k = 0; k < K; ++k)
    for (int j = 0; j < N; ++j) P[(size_t)k * N + j] = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
}
template <class T>
static void gemm_packed(bool ta, int M, int N, int K, const T* A, int lda, const T* P, T beta, T* C,
                        int ldc, int nt) {
  gemm<T>(ta, false, M, N, K, A, lda, P, N, beta, C, ldc, nt);
}

template <class T>
static void lstm_cell_forward(int B, int H, T* G, int ldg, const T* cp, int ldcp, T* c, int ldc, T* h,
                              int ldh, T* ac, int ldac, Act act, Act ract) {
  for (int b = 0; b < B; ++b) {
    T* g = G + (size_t)b * ldg;
    for (int j = 0; j < H; ++j) {
      T i = act_fwd(ract, g[j]), f = act_fwd(ract, g[H + j]), gg = act_fwd(act, g[2 * H + j]),
        o = act_fwd(ract, g[3 * H + j]);
      g[j] = i; g[H + j] = f; g[2 * H + j] = gg; g[3 * H + j] = o;
      T cn = f * cp[(size_t)b * ldcp + j] + i * gg;
      T a = act_fwd(act, cn);
      c[(size_t)b * ldc + j] = cn;
      h[(size_t)b * ldh + j] = o * a;
      if (ac) ac[(size_t)b * ldac + j] = a;
    }
  }
}
template <class T>
static void lstm_cell_backward(int B, int H, const T* G, int ldg, const T* cp, int ldcp, const T* ac,
                               int ldac, const T* dh, int lddh, T* dc, int lddc, T* dZ, int lddz, Act act,
                               Act ract) {
  for (int b = 0; b < B; ++b) {
    const T* g = G + (size_t)b * ldg;
    T* dz = dZ + (size_t)b * lddz;
    for (int j = 0; j < H; ++j) {
      T i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
      T a = ac[(size_t)b * ldac + j], d = dh[(size_t)b * lddh + j];
      T dct = dc[(size_t)b * lddc + j] + d * o * act_grad(act, a);
      dz[3 * H + j] = d * a * act_grad(ract, o);
      dz[j] = dct * gg * act_grad(ract, i);
      dz[H + j] = dct * cp[(size_t)b * ldcp + j] * act_grad(ract, f);
      dz[2 * H + j] = dct * i * act_grad(act, gg);
      dc[(size_t)b * lddc + j] = dct * f;
    }
  }
}
template <class T> static void softmax_rows(int N, int C, const T* z, int ldz, T* p, int ldp) {
  for (int n = 0; n < N; ++n) {
    const T* zr = z + (size_t)n * ldz;
    T* pr = p + (size_t)n * ldp;
    T mx = zr[0];
    for (int c = 1; c < C; ++c) mx = zr[c] > mx ? zr[c] : mx;
    T s = 0;
    for (int c = 0; c < C; ++c) { pr[c] = std::exp(zr[c] - mx); s += pr[c]; }
    for (int c = 0; c < C; ++c) pr[c] = pr[c] / s;
  }
}
template <class T>
static void adam(size_t n, T* w, const T* g, T* m, T* v, T alpha, T b1, T b2, T eps) {
  const T c1 = T(1) - b1, c2 = T(1) - b2;
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + c1 * g[i];
    v[i] = b2 * v[i] + c2 * (g[i] * g[i]);
    w[i] -= (m[i] * alpha) / (std::sqrt(v[i]) + eps);
  }
}
template <class T> static void sgd(size_t n, T* w, const T* g, T* u, T lr, T mu, bool nesterov) {
  if (mu == T(0)) { for (size_t i = 0; i < n; ++i) w[i] -= lr * g[i]; return; }
  for (size_t i = 0; i < n; ++i) {
    u[i] = mu * u[i] - lr * g[i];
    w[i] += nesterov ? mu * u[i] - lr * g[i] : u[i];
  }
}
template <class T> static void rmsprop(size_t n, T* w, const T* g, T* s, T lr, T rho, T eps) {
  const T c = T(1) - rho;
  for (size_t i = 0; i < n; ++i) {
    s[i] = rho * s[i] + c * (g[i] * g[i]);
    w[i] -= (lr * g[i]) / std::sqrt(s[i] + eps);
  }
}

template <class T> static KernelOps<T> make_table(const char* name) {
  KernelOps<T> t;
  t.isa = name;
  t.gemm = gemm<T>;
  t.packed_b_size = packed_b_size<T>;
  t.pack_b = pack_b<T>;
  t.gemm_packed = gemm_packed<T>;
  t.lstm_cell_forward = lstm_cell_forward<T>;
  t.lstm_cell_backward = lstm_cell_backward<T>;
  t.softmax_rows = softmax_rows<T>;
  t.adam = adam<T>;
  t.sgd = sgd<T>;
  t.rmsprop = rmsprop<T>;
  return t;
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
