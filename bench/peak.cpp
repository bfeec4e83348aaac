// peak.cpp — this CPU's arithmetic peak, for bench/peak.py: independent chains of
// one multiply-add instruction, register-only, on each of N threads.
//
//   fma256 / fma512:  c = a·b + c (VFMADD231PS, 8 / 16 float lanes): 2 flops per lane
//   dpbf16:           c += a0·b0 + a1·b1 (VDPBF16PS zmm, 16 lanes): 4 flops per lane
//
// 12-16 accumulators per thread hide the instructions' latency (4-6 cycles) at up to
// 2-4 issues per cycle, so the loop runs at the issue rate. Each thread reports its
// own CPU time (CLOCK_THREAD_CPUTIME_ID) beside the wall time, so a busy machine that
// time-slices the threads still gives the rate of the cycles they ran.
#include <immintrin.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

double now(clockid_t c) {
  timespec t;
  clock_gettime(c, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}


// One kernel per instruction, each compiled for its own target (a lambda would not
// inherit the target attribute). STEP(c) is one multiply-add into accumulator c.
// One kernel per instruction, each compiled for its own target; the 16 chains are
// named variables (an array would be kept in memory), each pinned to a register.
#define REP12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define REP16(X) REP12(X) X(12) X(13) X(14) X(15)
#define PIN(i) __asm__ volatile("" : "+v"(c##i));
#define SUM(i) s = s + c##i;
#define KERNEL_BODY(V, DECL, STEP, REP)                      \
  const V a = set1(1e-7f), b = set1(1e-7f);             \
  REP(DECL)                                             \
  const double t0 = now(CLOCK_THREAD_CPUTIME_ID);       \
  for (long n = 0; n < iters; ++n) { REP(STEP) REP(PIN) } \
  const double t = now(CLOCK_THREAD_CPUTIME_ID) - t0;   \
  V s = set1(0.0f);                                     \
  REP(SUM)                                              \
  float out[sizeof(V) / 4];                             \
  std::memcpy(out, &s, sizeof(V));                      \
  *sink = out[0];                                       \
  return t;

#define D256(i) __m256 c##i = set1(float(i));
#define D512(i) __m512 c##i = set1(float(i));
#define FMA256(i) c##i = _mm256_fmadd_ps(a, b, c##i);
#define FMA512(i) c##i = _mm512_fmadd_ps(a, b, c##i);
#define DPBF16(i) c##i = _mm512_dpbf16_ps(c##i, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b));

__attribute__((target("avx2,fma"))) double fma256(long iters, float* sink) {
  const auto set1 = _mm256_set1_ps;
  KERNEL_BODY(__m256, D256, FMA256, REP12)  // AVX2 has 16 registers
}
__attribute__((target("avx512f"))) double fma512(long iters, float* sink) {
  const auto set1 = _mm512_set1_ps;
  KERNEL_BODY(__m512, D512, FMA512, REP16)
}
__attribute__((target("avx512f,avx512bf16"))) double dpbf16(long iters, float* sink) {
  const auto set1 = _mm512_set1_ps;
  KERNEL_BODY(__m512, D512, DPBF16, REP16)
}

}  // namespace

// peak KIND THREADS ITERS -> one line per thread: "cpu_seconds flops", then "wall seconds"
int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: peak fma256|fma512|dpbf16 THREADS ITERS\n");
    return 2;
  }
  const char* kind = argv[1];
  const int nt = std::atoi(argv[2]);
  const long iters = std::atol(argv[3]);
  double (*fn)(long, float*) = nullptr;
  double flops_per_iter = 0;
  // flops per loop iteration: chains x lanes x flops per lane
  if (!std::strcmp(kind, "fma256")) fn = fma256, flops_per_iter = 12 * 8 * 2;
  if (!std::strcmp(kind, "fma512")) fn = fma512, flops_per_iter = 16 * 16 * 2;
  if (!std::strcmp(kind, "dpbf16")) fn = dpbf16, flops_per_iter = 16 * 16 * 4;
  if (!fn || nt < 1 || iters < 1) {
    std::fprintf(stderr, "peak: bad arguments\n");
    return 2;
  }
  std::vector<double> cpu(nt);
  std::vector<float> sink(nt);
  const double w0 = now(CLOCK_MONOTONIC);
  std::vector<std::thread> pool;
  for (int i = 0; i < nt; ++i) pool.emplace_back([&, i] { cpu[i] = fn(iters, &sink[i]); });
  for (auto& t : pool) t.join();
  const double wall = now(CLOCK_MONOTONIC) - w0;
  for (int i = 0; i < nt; ++i) std::printf("%.6f %.6e\n", cpu[i], double(iters) * flops_per_iter);
  std::printf("wall %.6f\n", wall);
  return sink[0] == 12345.0f;  // never: the sums are used
}
