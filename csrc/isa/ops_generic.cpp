#define FUSEDLSTM_ISA_NS generic
#include "isa/ops_impl.h"
namespace fusedlstm {
const KernelOps<float>* ops_generic_f32() { static const KernelOps<float> t = generic::make_table<float>("generic"); return &t; }
const KernelOps<double>* ops_generic_f64() { static const KernelOps<double> t = generic::make_table<double>("generic"); return &t; }
}
