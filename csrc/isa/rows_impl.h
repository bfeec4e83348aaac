// rows_impl.h — row-wise kernels: softmax, column sums, row scatters, one-hot and finite scans.
// Part of isa/ops_impl.h: compiled once per instruction set, inside that ISA's
// namespace; include it only through ops_impl.h.
#pragma once
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include <cstddef>
#include <cstdint>

#include "isa/impl_common.h"
#include "isa/math_impl.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

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

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
