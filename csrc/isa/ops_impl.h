// ops_impl.h — the kernels of ops.h, written once over a SIMD vector type.
//
// Each ISA file defines FUSEDLSTM_ISA_NS, includes its simd_<isa>.h (which
// provides `VF`, the float vector, and `GemmShape`, its register tile and cache
// blocking) and then this file, so every function here is compiled once per
// instruction set inside that ISA's own namespace (the Highway / xxHash
// pattern): an inline function compiled with -mavx512f can never be chosen by
// the linker for the generic path. Hence also: no std:: templates here (tiny
// own helpers instead), and scratch memory comes from two plain functions
// defined in portable code (ops_generic.cpp).
//
// What this file promises: the semantics of ops.h for any sizes (0 included),
// any leading dimensions >= the row length, and any thread count with bitwise
// the same result (threads split M or N, never K; the K blocking does not depend
// on the split). What it does not: identical results across ISA levels (FMA
// and vector widths change rounding), or bounds checks (the callers check).
//
// The kernels live in one file per job, each included here:
//   impl_common.h     scratch buffers, partial loads/stores
//   math_impl.h       exp, sigmoid, tanh, activations and their derivatives
//   bf16_impl.h       rounding float to bfloat16
//   gemm_impl.h       GEMM (Goto/BLIS blocking, packed operands; the portable bfloat16 GEMM)
//   lstm_cell_impl.h  the fused LSTM cell, forward and backward
//   gru_cell_impl.h   the fused GRU cell (both reset_after forms), forward and backward
//   simple_rnn_cell_impl.h  the SimpleRNN cell, forward and backward
//   rows_impl.h       softmax rows, column sums, row scatters, one-hot/finite scans
//   optimizer_impl.h  the optimizer rules and BaseOptimizer's steps over a flat buffer
// and make_table below collects them into the ISA's KernelOps table.
#ifndef FUSEDLSTM_ISA_NS
#error "define FUSEDLSTM_ISA_NS and include the simd_<isa>.h header, then isa/ops_impl.h"
#endif

#include "isa/impl_common.h"
#include "isa/math_impl.h"
#include "isa/gemm_impl.h"
#include "isa/lstm_cell_impl.h"
#include "isa/gru_cell_impl.h"
#include "isa/simple_rnn_cell_impl.h"
#include "isa/rows_impl.h"
#include "isa/optimizer_impl.h"

namespace fusedlstm {
namespace FUSEDLSTM_ISA_NS {

// The portable bfloat16 GEMM of a float table; the double table has none.
template <class V, class S>
struct PortableBf16 {
  using T = typename V::T;
  using G = Gemm<V, S, true>;
  static constexpr bool kOn = sizeof(T) == sizeof(float);
  static constexpr decltype(&G::gemm) gemm() {
    if constexpr (kOn) return &G::gemm; else return nullptr;
  }
  static constexpr decltype(&G::packed_b_size) packed_b_size() {
    if constexpr (kOn) return &G::packed_b_size; else return nullptr;
  }
  static constexpr decltype(&G::pack_b) pack_b() {
    if constexpr (kOn) return &G::pack_b; else return nullptr;
  }
  static constexpr decltype(&G::gemm_packed) gemm_packed() {
    if constexpr (kOn) return &G::gemm_packed; else return nullptr;
  }
};

// The table of one (vector type, GEMM shape) pair. constexpr: the tables are
// constant-initialised, so no static-initialisation order question arises.
template <class V, class S>
constexpr KernelOps<typename V::T> make_table(const char* name) {
  using T = typename V::T;
  using G = Gemm<V, S>;
  return KernelOps<T>{name,
                      &G::gemm,
                      &G::packed_b_size,
                      &G::pack_b,
                      &G::gemm_packed,
                      &lstm_cell_forward<V>,
                      &lstm_cell_backward<V>,
                      &softmax_rows<V>,
                      &sum_rows<T>,
                      &scatter_add_rows<T>,
                      &onehot_rows<T>,
                      &first_nonfinite<T>,
                      &adam<T>,
                      &sgd<T>,
                      // optimizers (issue 25)
                      &opt_accumulate<T>,
                      &opt_average<T>,
                      &opt_clip<T>,
                      &opt_scale<T>,
                      &opt_ema<T>,
                      &adam_amsgrad<T>,
                      &nadam<T>,
                      &adamax<T>,
                      &adagrad<T>,
                      &adadelta<T>,
                      &lion<T>,
                      &ftrl<T>,
                      &rmsprop_full<T>,
                      &sgd_nesterov<T>,
                      // bfloat16 GEMM, portable level (issue 22)
                      PortableBf16<V, S>::gemm(),
                      PortableBf16<V, S>::packed_b_size(),
                      PortableBf16<V, S>::pack_b(),
                      PortableBf16<V, S>::gemm_packed(),
                      // GRU and SimpleRNN cells
                      &gru_cell_forward<V>,
                      &gru_cell_backward<V>,
                      &gru_gates_forward<V>,
                      &gru_output_forward<V>,
                      &gru_output_backward<V>,
                      &gru_gates_backward<V>,
                      &rnn_cell_forward<V>,
                      &rnn_cell_backward<V>};
}

}  // namespace FUSEDLSTM_ISA_NS
}  // namespace fusedlstm
