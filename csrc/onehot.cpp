// onehot.cpp — finding token ids in one-hot float rows (see onehot.h).
#include "onehot.h"

#include "isa/ops.h"

namespace fusedlstm {

// The scan itself is an ISA kernel (vectorised with the CPU's widest vectors).
template <class Real> bool onehot_ids(const Real* x, size_t rows, int V, int32_t* ids) {
  return ops<Real>().onehot_rows(x, rows, V, ids);
}

template bool onehot_ids<float>(const float*, size_t, int, int32_t*);
template bool onehot_ids<double>(const double*, size_t, int, int32_t*);

}  // namespace fusedlstm
