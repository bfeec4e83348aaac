// fp_mode.h — the floating-point control register of the calling thread, read
// and written as one integer: MXCSR on x86, FPCR on AArch64 (nothing elsewhere).
//
// The kernels run with subnormals flushed to zero (fp_mode_flush_subnormals):
// a subnormal operand costs ~100x on x86 and a trap-to-microcode on several ARM
// cores, and tiny gradients late in BPTT produce them by the thousand. The
// caller's mode is saved and restored around each call (FpModeGuard in
// common.h), and the pool's workers run under the caller's mode (threads.cpp),
// so a result does not depend on which thread computed it.
#pragma once
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace fusedlstm {

#if defined(__x86_64__) || defined(__i386__)
using FpMode = unsigned;
inline FpMode fp_mode_get() { return _mm_getcsr(); }
inline void fp_mode_set(FpMode m) { _mm_setcsr(m); }
// FTZ (bit 15: tiny results become 0) | DAZ (bit 6: subnormal inputs read as 0).
inline FpMode fp_mode_flush_subnormals(FpMode m) { return m | 0x8040u; }
#elif defined(__aarch64__)
using FpMode = uint64_t;
// mrs/msr spelled out: GCC and Clang (Linux, macOS) accept them alike.
inline FpMode fp_mode_get() {
  uint64_t m;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(m));
  return m;
}
inline void fp_mode_set(FpMode m) { __asm__ __volatile__("msr fpcr, %0" : : "r"(m) : "memory"); }
// FPCR.FZ (bit 24) flushes subnormal inputs and results of single and double
// precision alike: the FTZ and DAZ of x86 in one bit.
inline FpMode fp_mode_flush_subnormals(FpMode m) { return m | (uint64_t(1) << 24); }
#else
using FpMode = unsigned;
inline FpMode fp_mode_get() { return 0; }
inline void fp_mode_set(FpMode) {}
inline FpMode fp_mode_flush_subnormals(FpMode m) { return m; }
#endif

}  // namespace fusedlstm
