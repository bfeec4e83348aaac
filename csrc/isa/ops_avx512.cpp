#define FUSEDLSTM_ISA_NS avx512
#include "isa/ops_impl.h"
namespace fusedlstm {
const KernelOps<float>* ops_avx512_f32() { static const KernelOps<float> t = avx512::make_table<float>("avx512"); return &t; }
}
