// dispatch.h — which instruction set the float kernels use, and which level the
// bfloat16 GEMM uses, each chosen once at import.
#pragma once
#include <string>
#include <vector>

#include "isa/gemm_ops.h"

namespace fusedlstm {

// Levels this CPU *and* OS support (x86: cpuid for the features, xgetbv for the
// OS saving the wide registers; AArch64: the OS's hwcaps), best last:
// {"generic", "avx2", "avx512"} on x86-64, {"generic", "neon"} on AArch64.
std::vector<std::string> available_isas();

// Picks the float table: FUSEDLSTM_ISA=avx512|avx2|neon|generic if set (an unknown
// value or a level this CPU lacks throws std::invalid_argument naming it),
// else the best available; then the bfloat16 level the same way from
// FUSEDLSTM_BF16=avx512bf16|portable. Called once from the module's init.
void init_dispatch();

// Name of the level in use.
std::string active_isa();

// bfloat16 GEMM levels this CPU and build support, best last: {"portable",
// "avx512bf16"}; "portable" exists everywhere.
std::vector<std::string> available_bf16_levels();

// Name of the bfloat16 level in use.
std::string active_bf16_level();

// The float32 GEMM of the chosen table, and the bfloat16 level in use (see
// precision.h for the one that picks between them per product).
const GemmOps& gemm_ops_f32();
const GemmOps& gemm_ops_bf16();

// A named bfloat16 level, or null when it is not available here (tests and
// benchmarks call every level in one process).
const GemmOps* gemm_ops_bf16_level(const std::string& level);

// The CPU's model name (x86: cpuid's brand string; macOS: the brand sysctl;
// AArch64 Linux: /proc/cpuinfo's implementer and part; else "unknown").
std::string cpu_model();

}  // namespace fusedlstm
