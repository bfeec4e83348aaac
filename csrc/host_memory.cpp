// host_memory.cpp — how much memory this process can plausibly get, for the
// MemoryError raised before a huge allocation (check_memory in common.h).
//
// The OS calls differ: Linux has sysconf(_SC_PHYS_PAGES) and the cgroup limit
// a container sets (v2 memory.max, v1 memory.limit_in_bytes); macOS has the
// hw.memsize sysctl and no cgroups. Elsewhere: no limit known.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>

#if defined(__linux__)
#include <unistd.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

#include "common.h"

namespace fusedlstm {
namespace {

size_t physical_memory_bytes() {
#if defined(__linux__)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) return size_t(pages) * size_t(page);
#elif defined(__APPLE__)
  uint64_t bytes = 0;
  size_t len = sizeof(bytes);
  if (sysctlbyname("hw.memsize", &bytes, &len, nullptr, 0) == 0 && bytes > 0) return size_t(bytes);
#endif
  return std::numeric_limits<size_t>::max();
}

// The container's memory limit, or SIZE_MAX when there is none.
size_t cgroup_memory_limit() {
  size_t lim = std::numeric_limits<size_t>::max();
#if defined(__linux__)
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (FILE* f = std::fopen(path, "r")) {
      unsigned long long v = 0;
      if (std::fscanf(f, "%llu", &v) == 1 && v > 0 && v < lim) lim = size_t(v);
      std::fclose(f);
    }
  }
#endif
  return lim;
}

}  // namespace

size_t memory_limit_bytes() {
  static const size_t limit = [] {
    const size_t phys = physical_memory_bytes(), cg = cgroup_memory_limit();
    return cg < phys ? cg : phys;
  }();
  return limit;
}

}  // namespace fusedlstm
