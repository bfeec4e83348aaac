// dispatch.cpp — picks the float kernel table and the bfloat16 GEMM level once,
// at module import.
//
// x86: a level is usable when cpuid reports its instructions AND xgetbv says
// the OS saves the matching register state (a VM or kernel may hide AVX-512
// state even when the CPU has it). AArch64: Advanced SIMD is architecturally
// mandatory, but the level is still enabled only when the OS reports it
// (Linux: HWCAP_ASIMD in the auxiliary vector; macOS: the hw.optional sysctl).
// Each choice is cached in one atomic pointer, so worker threads running
// without the GIL only ever read it.
//
// The bfloat16 level is chosen independently of the float ISA level (a user may
// force FUSEDLSTM_ISA=avx2 and still get avx512bf16 products, or the reverse).
#include "dispatch.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "isa/gemm_ops.h"
#include "isa/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FUSEDLSTM_CPUID 1
#else
#define FUSEDLSTM_CPUID 0
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#ifndef FUSEDLSTM_HAVE_X86
#define FUSEDLSTM_HAVE_X86 0
#endif
#ifndef FUSEDLSTM_HAVE_AVX512BF16
#define FUSEDLSTM_HAVE_AVX512BF16 0
#endif
#ifndef FUSEDLSTM_HAVE_NEON
#define FUSEDLSTM_HAVE_NEON 0
#endif

namespace fusedlstm {

// The ISA files of other architectures are not compiled: their tables are absent.
#if !FUSEDLSTM_HAVE_X86
const KernelOps<float>* ops_avx2_f32() { return nullptr; }
const KernelOps<float>* ops_avx512_f32() { return nullptr; }
#endif
#if !FUSEDLSTM_HAVE_AVX512BF16
const GemmOps* gemm_ops_avx512bf16() { return nullptr; }
#endif
#if !FUSEDLSTM_HAVE_NEON
const KernelOps<float>* ops_neon_f32() { return nullptr; }
#endif

namespace {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C, YMM state saved by the OS
  bool avx512 = false;  // AVX-512 F/DQ/BW/VL, ZMM and opmask state saved
  bool avx512bf16 = false;  // and AVX512_BF16 (VDPBF16PS, VCVTNE2PS2BF16)
  bool neon = false;    // AArch64 Advanced SIMD (and FP), as the OS reports it
};

// Every level name FUSEDLSTM_ISA accepts on some build, for its error message.
constexpr const char* kAllLevels = "generic, neon, avx2, avx512";

#if defined(__aarch64__) && defined(__APPLE__)
bool sysctl_flag(const char* name) {
  int v = 0;
  size_t n = sizeof(v);
  return sysctlbyname(name, &v, &n, nullptr, 0) == 0 && v != 0;
}
#endif

#if FUSEDLSTM_CPUID
uint64_t xgetbv0() {
  uint32_t lo, hi;
  // Raw encoding of xgetbv: no -mxsave needed for this portable file.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if FUSEDLSTM_CPUID
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM_Hi256 + Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  f.avx2 = FUSEDLSTM_HAVE_X86 && ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  // CPUID.(EAX=7, ECX=1):EAX bit 5; sub-leaf 1 exists when leaf 7's EAX >= 1.
  unsigned max7, b1, c1, d1, a1 = 0;
  if (__get_cpuid_count(7, 0, &max7, &b1, &c1, &d1) && max7 >= 1) __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  f.avx512bf16 = f.avx512 && (a1 & (1u << 5));
#elif defined(__aarch64__) && defined(__linux__)
  // <asm/hwcap.h> bits, spelled out so that the header is not needed.
  constexpr unsigned long kHwcapFp = 1ul << 0, kHwcapAsimd = 1ul << 1;
  const unsigned long hw = getauxval(AT_HWCAP);
  f.neon = (hw & kHwcapFp) && (hw & kHwcapAsimd);
#elif defined(__aarch64__) && defined(__APPLE__)
  f.neon = sysctl_flag("hw.optional.AdvSIMD") || sysctl_flag("hw.optional.neon");  // newer, older name
#elif defined(__aarch64__)
  // No OS query wired up here: the compiler's AArch64 baseline includes ASIMD.
  f.neon = true;
#endif
  return f;
}

const KernelOps<float>* table_for(const std::string& isa) {
  if (isa == "avx512") return ops_avx512_f32();
  if (isa == "avx2") return ops_avx2_f32();
  if (isa == "neon") return ops_neon_f32();
  return ops_generic_f32();
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::atomic<const KernelOps<float>*> g_f32{nullptr};

// The GEMM entries of the chosen float table, as the float32 and portable
// bfloat16 levels; written once by init_dispatch before the pointers below are
// published.
GemmOps g_f32_gemm{}, g_portable_gemm{};
std::atomic<const GemmOps*> g_f32_gemm_ptr{nullptr}, g_bf16_gemm{nullptr};

const GemmOps* bf16_table_for(const std::string& level) {
  if (level == "avx512bf16") return gemm_ops_avx512bf16();
  return &g_portable_gemm;
}

void init_bf16_dispatch(const KernelOps<float>& f32) {
  g_f32_gemm = GemmOps{"float32", f32.gemm, f32.packed_b_size, f32.pack_b, f32.gemm_packed};
  g_portable_gemm = GemmOps{"portable", f32.gemm_bf16, f32.packed_b_size_bf16, f32.pack_b_bf16, f32.gemm_packed_bf16};
  const std::vector<std::string> avail = available_bf16_levels();
  std::string want = avail.back();
  const char* env = std::getenv("FUSEDLSTM_BF16");
  if (env && *env) {
    bool ok = false;
    for (const auto& a : avail) ok = ok || a == env;
    if (!ok)
      throw std::invalid_argument(std::string("FUSEDLSTM_BF16=") + env +
                                  ": expected one of portable, avx512bf16 available on this CPU (" +
                                  join(avail) + "), got '" + env + "'");
    want = env;
  }
  g_f32_gemm_ptr.store(&g_f32_gemm, std::memory_order_release);
  g_bf16_gemm.store(bf16_table_for(want), std::memory_order_release);
}

}  // namespace

std::vector<std::string> available_isas() {
  const CpuFeatures f = detect();
  std::vector<std::string> v{"generic"};
  if (f.avx2 && ops_avx2_f32()) v.push_back("avx2");
  if (f.avx512 && ops_avx512_f32()) v.push_back("avx512");
  if (f.neon && ops_neon_f32()) v.push_back("neon");
  return v;
}

void init_dispatch() {
  const std::vector<std::string> avail = available_isas();
  std::string want = avail.back();
  const char* env = std::getenv("FUSEDLSTM_ISA");
  if (env && *env) {
    bool ok = false;
    for (const auto& a : avail) ok = ok || a == env;
    if (!ok)
      throw std::invalid_argument(std::string("FUSEDLSTM_ISA=") + env +
                                  ": expected one of the levels available on this CPU and build (" +
                                  join(avail) + "; all levels: " + kAllLevels + "), got '" + env + "'");
    want = env;
  }
  g_f32.store(table_for(want), std::memory_order_release);
  init_bf16_dispatch(*table_for(want));
}

const KernelOps<float>& ops_f32() {
  const KernelOps<float>* t = g_f32.load(std::memory_order_acquire);
  if (!t) {
    // Only reached by C++ callers that skipped init_dispatch (the module calls it at import).
    static const bool once = (init_dispatch(), true);
    (void)once;
    t = g_f32.load(std::memory_order_acquire);
  }
  return *t;
}

const KernelOps<double>& ops_f64() { return *ops_generic_f64(); }

std::string active_isa() { return ops_f32().isa; }

std::vector<std::string> available_bf16_levels() {
  std::vector<std::string> v{"portable"};
  if (detect().avx512bf16 && gemm_ops_avx512bf16()) v.push_back("avx512bf16");
  return v;
}

const GemmOps& gemm_ops_f32() {
  const GemmOps* t = g_f32_gemm_ptr.load(std::memory_order_acquire);
  if (!t) {
    (void)ops_f32();  // runs init_dispatch when a C++ caller skipped it
    t = g_f32_gemm_ptr.load(std::memory_order_acquire);
  }
  return *t;
}

const GemmOps& gemm_ops_bf16() {
  (void)gemm_ops_f32();
  return *g_bf16_gemm.load(std::memory_order_acquire);
}

const GemmOps* gemm_ops_bf16_level(const std::string& level) {
  (void)gemm_ops_f32();
  for (const auto& a : available_bf16_levels())
    if (a == level) return bf16_table_for(level);
  return nullptr;
}

std::string active_bf16_level() { return gemm_ops_bf16().name; }

#if defined(__aarch64__) && defined(__linux__)
// /proc/cpuinfo names an ARM core only by its MIDR fields: the first core's
// implementer and part, with a name for the server cores of the usual clouds.
// Under qemu-user /proc/cpuinfo is the host's (no such fields): "unknown".
static std::string arm_linux_cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  long impl = -1, part = -1;
  while (std::getline(f, line) && (impl < 0 || part < 0)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    long* field = line.rfind("CPU implementer", 0) == 0 ? &impl : line.rfind("CPU part", 0) == 0 ? &part : nullptr;
    if (field && *field < 0) *field = std::strtol(line.c_str() + colon + 1, nullptr, 0);
  }
  if (impl < 0 || part < 0) return "unknown";
  struct Known {
    long impl, part;
    const char* name;
  };
  static const Known known[] = {{0x41, 0xd0c, "Arm Neoverse-N1"}, {0x41, 0xd40, "Arm Neoverse-V1"},
                                {0x41, 0xd49, "Arm Neoverse-N2"}, {0x41, 0xd4f, "Arm Neoverse-V2"},
                                {0x41, 0xd08, "Arm Cortex-A72"},  {0x41, 0xd0b, "Arm Cortex-A76"}};
  for (const Known& k : known)
    if (k.impl == impl && k.part == part) return k.name;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "AArch64 implementer 0x%02lx part 0x%03lx", impl, part);
  return buf;
}
#endif

std::string cpu_model() {
#if FUSEDLSTM_CPUID
  unsigned r[12];
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000004u) return "unknown";
  for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
  char brand[49];
  std::memcpy(brand, r, 48);
  brand[48] = '\0';
  std::string s(brand);
  const size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  if (b == std::string::npos) return "unknown";
  return s.substr(b, e - b + 1);
#elif defined(__aarch64__) && defined(__APPLE__)
  char brand[128] = {0};
  size_t n = sizeof(brand) - 1;
  if (sysctlbyname("machdep.cpu.brand_string", brand, &n, nullptr, 0) == 0 && brand[0]) return brand;  // "Apple M2"
  return "unknown";
#elif defined(__aarch64__) && defined(__linux__)
  return arm_linux_cpu_model();
#else
  return "unknown";
#endif
}

}  // namespace fusedlstm
