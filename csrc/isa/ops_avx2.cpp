#define FUSEDLSTM_ISA_NS avx2
#include "isa/ops_impl.h"
namespace fusedlstm {
const KernelOps<float>* ops_avx2_f32() { static const KernelOps<float> t = avx2::make_table<float>("avx2"); return &t; }
}
