// optimizers.h — in-place optimizer steps over one flat parameter buffer
// (Keras 3 formulas, PyTorch backend order of operations; see isa/ops.h).
#pragma once
#include <cstddef>

namespace fusedlstm {

// Adam; step is the 1-based iteration count. Computes
// alpha = lr·sqrt(1-β2^step)/(1-β1^step) in Real arithmetic, as Keras does in
// the variable's dtype, then m, v, w in one pass.
template <class Real>
void adam_update(size_t n, Real* w, const Real* g, Real* m, Real* v, long long step, double lr, double beta1,
                 double beta2, double eps, int nthreads);

// SGD with (Nesterov) momentum; u may be null when momentum == 0.
template <class Real>
void sgd_update(size_t n, Real* w, const Real* g, Real* u, double lr, double momentum, bool nesterov,
                int nthreads);

// RMSprop (no momentum, not centred).
template <class Real>
void rmsprop_update(size_t n, Real* w, const Real* g, Real* s, double lr, double rho, double eps, int nthreads);

}  // namespace fusedlstm
