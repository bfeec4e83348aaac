// onehot.h — one-hot float rows read as token ids. A one-hot LSTM input then
// takes the row-lookup path (W's rows instead of a GEMM), and one-hot targets
// the class-id path of the cross-entropy: the same numbers for less work.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fusedlstm {

// If each of the `rows` rows of x (rows, V) is all zeros or a single exact 1.0,
// writes ids (the index of the 1.0, or -1) and returns true; stops at the first
// row that is neither and returns false.
template <class Real> bool onehot_ids(const Real* x, size_t rows, int V, int32_t* ids);

}  // namespace fusedlstm
