// threads.cpp — the persistent worker pool behind parallel_for.
//
// Per-time-step GEMMs of an LSTM open a parallel region every few tens of
// microseconds, so workers spin briefly on an epoch counter before sleeping on
// a condition variable, and the caller takes work items itself: it never waits
// for a worker that has not woken up yet (items are claimed from an atomic
// counter; a late worker finds none left and backs out).
//
// Workers run each job under the caller's FP mode (MXCSR / FPCR: flush to
// zero, rounding): a kernel gives the same bits whichever thread computed which part.
//
// Only one parallel_for uses the pool at a time; a second caller (another
// Python thread, or a nested call from inside fn) runs its items alone.
// Workers are detached and the pool is never freed: at interpreter exit they
// may be asleep in a wait, and tearing them down there buys nothing. After
// fork() the child starts with an empty pool (the parent's threads do not exist
// there).
#include "threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#define FUSEDLSTM_LINUX 1
#else
#define FUSEDLSTM_LINUX 0
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FUSEDLSTM_POSIX 1
#else
#define FUSEDLSTM_POSIX 0
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "fp_mode.h"

namespace fusedlstm {
namespace {

constexpr int kMaxThreads = 256;
// Long enough to bridge the gap between two time steps of a small LSTM, short
// enough not to steal a shared core for long once the work has stopped.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

class Pool {
 public:
  void run(int n, TaskFn fn, void* ctx, int nthreads);

 private:
  void ensure_workers(int count);
  void worker_main(int id);
  void work();

  std::mutex mu_;  // guards sleeping, spawning and error_
  std::condition_variable cv_;
  std::atomic<bool> busy_{false};
  std::atomic<unsigned long long> epoch_{0};  // bumped once per job (never wraps)
  std::atomic<int> sleepers_{0};
  int nworkers_ = 0;  // spawned so far (only the pool owner changes it)

  // The current job (written by the owner before the epoch bump).
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_ = 0;
  int want_workers_ = 0;            // workers with id < this may join
  FpMode fp_mode_ = 0;              // the caller's MXCSR / FPCR
  std::atomic<int> next_{0};        // next item to claim
  std::atomic<unsigned long long> open_{0};  // epoch of the job workers may join, 0: none
  std::atomic<int> active_{0};      // workers inside the job
  std::exception_ptr error_;
};

void Pool::ensure_workers(int count) {
  while (nworkers_ < count) {
    const int id = nworkers_;
    std::thread([this, id] { worker_main(id); }).detach();
    ++nworkers_;
  }
}

void Pool::work() {
  for (;;) {
    const int i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) return;
    try {
      fn_(ctx_, i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_, std::memory_order_relaxed);  // stop handing out items
    }
  }
}

void Pool::worker_main(int id) {
  unsigned long long seen = epoch_.load(std::memory_order_acquire);
  for (;;) {
    // Wait for a new epoch: spin first, then sleep.
    const auto t0 = std::chrono::steady_clock::now();
    unsigned long long e;
    for (int k = 0;; ++k) {
      e = epoch_.load(std::memory_order_acquire);
      if (e != seen) break;
      if ((k & 63) == 63 && std::chrono::steady_clock::now() - t0 > kSpin) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1);  // seq_cst: pairs with the owner's epoch bump
        cv_.wait(lk, [&] { return epoch_.load() != seen; });
        sleepers_.fetch_sub(1);
        e = epoch_.load(std::memory_order_acquire);
        break;
      }
      cpu_relax();
    }
    seen = e;
    // Join only the job of epoch e, and only while its owner has not closed it:
    // the owner closes (open_ = 0) and then waits for active_ to drop to zero,
    // so with both sides seq_cst either we see it closed or it waits for us. A
    // worker woken late for an old epoch backs out without touching the fields
    // of a newer job.
    active_.fetch_add(1);
    if (open_.load() == e && id < want_workers_) {
      const FpMode own = fp_mode_get();
      fp_mode_set(fp_mode_);
      work();
      fp_mode_set(own);
    }
    active_.fetch_sub(1);
  }
}

void Pool::run(int n, TaskFn fn, void* ctx, int nthreads) {
  const int nt = std::min(std::min(nthreads, n), kMaxThreads);
  bool expected = false;
  if (nt <= 1 || !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
    for (int i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  try {
    std::lock_guard<std::mutex> lk(mu_);
    ensure_workers(nt - 1);
  } catch (...) {
    // No thread could be started (resource limits): the caller does it all.
    busy_.store(false, std::memory_order_release);
    for (int i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  want_workers_ = nt - 1;
  fp_mode_ = fp_mode_get();
  error_ = nullptr;
  next_.store(0, std::memory_order_relaxed);
  const unsigned long long e = epoch_.load(std::memory_order_relaxed) + 1;
  open_.store(e);
  epoch_.store(e);  // seq_cst: publishes the job; pairs with sleepers_ below
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(mu_);  // a sleeper is in wait() or will see the new epoch
    cv_.notify_all();
  }
  work();
  open_.store(0);
  while (active_.load() != 0) cpu_relax();
  std::exception_ptr err = error_;
  error_ = nullptr;
  busy_.store(false, std::memory_order_release);
  if (err) std::rethrow_exception(err);
}

Pool* g_pool = nullptr;
std::once_flag g_pool_once;

#if FUSEDLSTM_POSIX
void forget_pool_after_fork() {
  // The parent's workers do not exist in the child; its mutex may even be held.
  g_pool = new Pool();
}
#endif

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool = new Pool();
#if FUSEDLSTM_POSIX
    pthread_atfork(nullptr, nullptr, forget_pool_after_fork);
#endif
  });
  return *g_pool;
}

// Whole CPUs granted by the cgroup quota (v2 cpu.max, or v1 cfs quota/period),
// or 0 when unlimited or unknown (always, off Linux: no cgroups there).
int cgroup_cpu_limit() {
#if !FUSEDLSTM_LINUX
  return 0;
#else
  auto ceil_div = [](long long q, long long p) { return int((q + p - 1) / p); };
  std::string rel;  // this process's cgroup v2 path, from "0::/path"
  {
    std::ifstream f("/proc/self/cgroup");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("0::", 0) == 0) rel = line.substr(3);
  }
  for (const std::string& dir : {"/sys/fs/cgroup" + rel, std::string("/sys/fs/cgroup")}) {
    std::ifstream f(dir + "/cpu.max");
    std::string quota;
    long long period = 0;
    if (f >> quota >> period) {
      if (quota == "max" || period <= 0) return 0;
      try {
        const long long q = std::stoll(quota);
        return q > 0 ? ceil_div(q, period) : 0;
      } catch (...) {
        return 0;
      }
    }
  }
  for (const char* dir : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
    std::ifstream fq(std::string(dir) + "/cpu.cfs_quota_us"), fp(std::string(dir) + "/cpu.cfs_period_us");
    long long q = 0, p = 0;
    if (fq >> q && fp >> p) return (q > 0 && p > 0) ? ceil_div(q, p) : 0;
  }
  return 0;
#endif
}

int compute_default_threads() {
  int n = 0;
#if FUSEDLSTM_LINUX
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n <= 0) n = int(std::thread::hardware_concurrency());
  const int quota = cgroup_cpu_limit();
  if (quota > 0) n = std::min(n, quota);
  return std::max(1, std::min(n, kMaxThreads));
}

std::atomic<int> g_threads{0};  // 0: not set, use the default

}  // namespace

void parallel_for(int n, TaskFn fn, void* ctx, int nthreads) {
  if (n <= 0) return;
  if (nthreads <= 1 || n == 1) {
    for (int i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  pool().run(n, fn, ctx, nthreads);
}

int default_num_threads() {
  static const int n = compute_default_threads();
  return n;
}

int num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_num_threads();
}

void set_num_threads(int n) {
  if (n < 1)
    throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  g_threads.store(std::min(n, kMaxThreads), std::memory_order_relaxed);
}

}  // namespace fusedlstm
