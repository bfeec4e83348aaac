// threads.h — a small persistent pool over std::thread (no OpenMP runtime to ship).
//
// parallel_for(n, fn, ctx, nthreads) calls fn(ctx, i) for i in [0, n) on up to
// nthreads threads (the caller's included) and returns when all are done. A
// plain function pointer + context crosses this interface so that the ISA files
// need no std::function. If another Python thread is already using the pool, the
// work runs on the calling thread alone: results never depend on it, because
// callers split work so that each i writes its own outputs.
// Exceptions thrown by fn on a worker are rethrown on the caller's thread.
#pragma once

namespace fusedlstm {

using TaskFn = void (*)(void* ctx, int i);

void parallel_for(int n, TaskFn fn, void* ctx, int nthreads);

// Thread count used by kernels: set_num_threads(n) or, by default, the CPUs this
// process may run on (affinity mask and cgroup CPU quota), not the host's count.
int num_threads();
void set_num_threads(int n);
int default_num_threads();

}  // namespace fusedlstm
