// common.h — what the algorithm files (recurrent.cpp, dense.cpp, optimizers.cpp) share:
// dimension letters, error types the bindings turn into Python exceptions,
// checked size arithmetic, an aligned scratch buffer and a parallel loop over
// row blocks. No pybind11 here: this code never touches a Python object.
//
// Dimension letters (every shape comment uses them):
//   B batch   T time steps   I input features   H units
//   G gate columns: 4H LSTM (i, f, c, o), 3H GRU (z, r, h), H SimpleRNN
//   V vocabulary / one-hot width   N rows   D features   C classes
// Buffers are row-major; "(T,B,H)" means T blocks of B rows of H values.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "block_cache.h"
#include "fp_mode.h"
#include "threads.h"

namespace fusedlstm {

// ---- errors ----------------------------------------------------------------
// std::invalid_argument becomes a Python ValueError (pybind11's default); the two
// types below get translators in bindings.cpp (TypeError, MemoryError).
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// str(a, b, ...) concatenates anything an ostream can print.
template <class... Args> std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// CHECK(cond, parts...) throws std::invalid_argument (ValueError) built from parts.
#define FUSEDLSTM_CHECK(cond, ...) \
  do {                             \
    if (!(cond)) throw std::invalid_argument(::fusedlstm::str(__VA_ARGS__)); \
  } while (0)

// ---- checked sizes -----------------------------------------------------------
// Sizes come from user-given shapes: every product is checked so that a huge
// shape raises MemoryError/ValueError instead of wrapping to a small buffer.
inline size_t mul_size(size_t a, size_t b) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw OutOfMemory("array size overflows size_t");
  return r;
}
template <class... Rest> size_t mul_size(size_t a, size_t b, size_t c, Rest... rest) {
  return mul_size(mul_size(a, b), c, rest...);
}
inline size_t add_size(size_t a, size_t b) {
  size_t r;
  if (__builtin_add_overflow(a, b, &r)) throw OutOfMemory("array size overflows size_t");
  return r;
}

// The kernels take int sizes and strides; a value that does not fit is a ValueError.
inline int as_int(const char* fn, const char* what, size_t v) {
  FUSEDLSTM_CHECK(v <= size_t(std::numeric_limits<int>::max()), fn, ": ", what, " = ", v,
                  " exceeds the kernels' limit of 2^31-1");
  return int(v);
}

// Memory the machine can plausibly give one call: physical RAM, or the cgroup
// limit when lower (Linux). Read once; host_memory.cpp has the OS calls.
size_t memory_limit_bytes();

// Raise MemoryError before allocating when a call would need more than the machine has.
inline void check_memory(const char* fn, size_t bytes) {
  const size_t lim = memory_limit_bytes();
  if (bytes > lim)
    throw OutOfMemory(str(fn, ": this call needs ", bytes, " bytes (", double(bytes) / double(1ull << 30),
                          " GiB) of memory, more than the ", lim, " bytes (", double(lim) / double(1ull << 30),
                          " GiB) this machine has"));
}

// ---- aligned scratch buffer -------------------------------------------------
// Uninitialised, 64-byte aligned (pack_b and the SIMD kernels want that), owned;
// large ones come from and return to the block cache (block_cache.h).
template <class X> class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { reset(n); }
  void reset(size_t n) {
    p_.reset();
    n_ = 0;
    if (n == 0) return;
    size_t got = 0;
    X* q = static_cast<X*>(block_alloc(mul_size(n, sizeof(X)), &got));
    p_ = std::unique_ptr<X, Free>(q, Free{got});
    n_ = n;
  }
  X* data() { return p_.get(); }
  const X* data() const { return p_.get(); }
  size_t size() const { return n_; }
  size_t nbytes() const { return n_ * sizeof(X); }
  void zero() {
    if (n_) std::memset(p_.get(), 0, n_ * sizeof(X));
  }

 private:
  struct Free {
    size_t bytes = 0;
    void operator()(X* q) const { block_free(q, bytes); }
  };
  std::unique_ptr<X, Free> p_;
  size_t n_ = 0;
};

// ---- floating-point mode ---------------------------------------------------
// Subnormal numbers (tiny gradients late in BPTT) run ~100x slower on x86; the
// kernels flush them to zero (x86 FTZ+DAZ, AArch64 FPCR.FZ; see fp_mode.h)
// while a call runs, then restore the caller's mode so NumPy code around us is
// unaffected.
class FpModeGuard {
 public:
  FpModeGuard() : saved_(fp_mode_get()) { fp_mode_set(fp_mode_flush_subnormals(saved_)); }
  ~FpModeGuard() { fp_mode_set(saved_); }
  FpModeGuard(const FpModeGuard&) = delete;
  FpModeGuard& operator=(const FpModeGuard&) = delete;

 private:
  FpMode saved_;
};

// ---- parallel loops -----------------------------------------------------------
// parallel(n, nthreads, f) runs f(i) for i in [0, n) through the pool in threads.h.
template <class F> void parallel(int n, int nthreads, F&& f) {
  using Fn = std::remove_reference_t<F>;
  if (n <= 0) return;
  if (n == 1 || nthreads <= 1) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  parallel_for(n, [](void* ctx, int i) { (*static_cast<Fn*>(ctx))(i); }, &f, nthreads);
}

// Splits [0, rows) into at most nthreads contiguous blocks, calling f(begin, end)
// per block; stays on the caller's thread when work (elements) is small, because
// waking the pool costs more than an elementwise pass over a few thousand values.
template <class F> void parallel_rows(int rows, size_t work, int nthreads, F&& f) {
  constexpr size_t kMinWorkPerThread = 16384;
  int nt = nthreads;
  if (size_t(nt) > work / kMinWorkPerThread) nt = int(work / kMinWorkPerThread);
  if (nt > rows) nt = rows;
  if (nt <= 1) {
    if (rows > 0) f(0, rows);
    return;
  }
  parallel(nt, nt, [&](int k) {
    const int r0 = int(int64_t(rows) * k / nt), r1 = int(int64_t(rows) * (k + 1) / nt);
    if (r1 > r0) f(r0, r1);
  });
}

}  // namespace fusedlstm
