// dispatch.h — which instruction set the float kernels use, chosen once at import.
#pragma once
#include <string>
#include <vector>

namespace fusedlstm {

// Levels this CPU *and* OS support (cpuid for the features, xgetbv for the OS
// saving the wide registers), best last: {"generic", "avx2", "avx512"}.
std::vector<std::string> available_isas();

// Picks the float table: FUSEDLSTM_ISA=avx512|avx2|generic if set (an unknown
// value or a level this CPU lacks throws std::invalid_argument naming it),
// else the best available. Called once from the module's init.
void init_dispatch();

// Name of the level in use.
std::string active_isa();

// The CPU's model name (from cpuid's brand string; "unknown" elsewhere).
std::string cpu_model();

}  // namespace fusedlstm
