// block_cache.cpp — see block_cache.h.
#include "block_cache.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "common.h"
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FUSEDLSTM_POSIX 1
#else
#define FUSEDLSTM_POSIX 0
#endif

namespace fusedlstm {
namespace {

constexpr size_t kMinBytes = size_t(256) << 10;  // smaller blocks: malloc's heap reuses them well
constexpr size_t kMaxBlocks = 32;

struct Block {
  void* p;
  size_t bytes;
};

struct Cache {
  std::mutex mu;
  std::vector<Block> blocks;  // oldest first
  size_t total = 0;
};

Cache* g_cache = nullptr;
std::once_flag g_once;

#if FUSEDLSTM_POSIX
// The child of a fork may inherit the mutex locked by a thread that does not
// exist there: it starts with an empty cache (the parent's blocks stay mapped, unused).
void fresh_cache_after_fork() {
  g_cache = new Cache();
  g_cache->blocks.reserve(kMaxBlocks + 1);
}
#endif

Cache& cache() {
  std::call_once(g_once, [] {
    g_cache = new Cache();
    g_cache->blocks.reserve(kMaxBlocks + 1);
#if FUSEDLSTM_POSIX
    pthread_atfork(nullptr, nullptr, fresh_cache_after_fork);
#endif
  });
  return *g_cache;
}

// At most a quarter of the memory this process may use, and 1 GiB.
size_t cap_bytes() {
  static const size_t cap = std::min(size_t(1) << 30, memory_limit_bytes() / 4);
  return cap;
}

}  // namespace

void* block_alloc(size_t bytes, size_t* got) {
  if (bytes >= kMinBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    // The smallest block that fits without wasting more than a quarter of it.
    size_t best = c.blocks.size();
    for (size_t i = 0; i < c.blocks.size(); ++i) {
      const size_t b = c.blocks[i].bytes;
      if (b >= bytes && b - bytes <= b / 4 && (best == c.blocks.size() || b < c.blocks[best].bytes)) best = i;
    }
    if (best < c.blocks.size()) {
      void* p = c.blocks[best].p;
      *got = c.blocks[best].bytes;
      c.total -= c.blocks[best].bytes;
      c.blocks.erase(c.blocks.begin() + std::ptrdiff_t(best));
      return p;
    }
  }
  *got = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, *got);
  if (!p) throw std::bad_alloc();
  return p;
}

void block_free(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (bytes < kMinBytes || bytes > cap_bytes()) {
    std::free(p);
    return;
  }
  std::vector<void*> evicted;
  try {
    evicted.reserve(kMaxBlocks + 1);  // no allocation under the lock, none that can fail later
  } catch (...) {
    std::free(p);
    return;
  }
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    try {
      c.blocks.push_back({p, bytes});
    } catch (...) {
      std::free(p);
      return;
    }
    c.total += bytes;
    while (c.total > cap_bytes() || c.blocks.size() > kMaxBlocks) {
      evicted.push_back(c.blocks.front().p);
      c.total -= c.blocks.front().bytes;
      c.blocks.erase(c.blocks.begin());
    }
  }
  for (void* q : evicted) std::free(q);
}

size_t block_cache_clear() noexcept {
  std::vector<Block> all;
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    all.swap(c.blocks);
    c.total = 0;
  }
  size_t n = 0;
  for (const Block& b : all) {
    n += b.bytes;
    std::free(b.p);
  }
  return n;
}

size_t block_cache_bytes() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  return c.total;
}

}  // namespace fusedlstm
