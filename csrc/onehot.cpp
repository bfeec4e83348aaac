// onehot.cpp — finding token ids in one-hot float rows (see onehot.h).
#include "onehot.h"

namespace fusedlstm {

// A row is one-hot (or all zero) iff every entry is 0 or 1 and at most one is
// nonzero; the sum of j over its nonzero entries is then the id. Written without
// branches so the compiler vectorises the scan: it is part of every step on one-hot
// input, and the branchy loop cost a quarter of a small batch's forward pass.
template <class Real> bool onehot_ids(const Real* x, size_t rows, int V, int32_t* ids) {
  for (size_t r = 0; r < rows; ++r) {
    const Real* row = x + r * size_t(V);
    unsigned bad = 0, count = 0, id = 0;  // unsigned: a bad row's index sum may wrap, harmlessly
    for (int j = 0; j < V; ++j) {
      const unsigned nz = row[j] != Real(0);
      bad |= nz & unsigned(row[j] != Real(1));
      count += nz;
      id += nz * unsigned(j);
    }
    if (bad | (count > 1)) return false;
    ids[r] = count ? int32_t(id) : -1;
  }
  return true;
}

template bool onehot_ids<float>(const float*, size_t, int, int32_t*);
template bool onehot_ids<double>(const double*, size_t, int, int32_t*);

}  // namespace fusedlstm
