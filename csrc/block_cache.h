// block_cache.h — large buffers kept for reuse between kernel calls.
//
// A training step allocates the same large buffers every call (the LSTM cache,
// dZ, packed weights): tens to hundreds of MB, which the C library maps fresh
// from the kernel each time and unmaps on free. Touching new pages then costs a
// page fault and a zeroed page per 4 KB (a tenth of a large forward pass). Freed
// blocks of at least kMinBytes are kept instead, up to a byte cap, and handed to
// the next request of about their size.
#pragma once
#include <cstddef>

namespace fusedlstm {

// At least `bytes`, 64-byte aligned, uninitialised; *got receives the block's
// size (a cached block may be up to a third larger). Throws std::bad_alloc.
void* block_alloc(size_t bytes, size_t* got);
// Returns a block_alloc block with the size *got received (to the cache or the system).
void block_free(void* p, size_t bytes) noexcept;
// Frees every cached block; returns the bytes released.
size_t block_cache_clear() noexcept;
// Bytes held in the cache now.
size_t block_cache_bytes() noexcept;

}  // namespace fusedlstm
