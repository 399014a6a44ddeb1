#include "core/common/allocator.h"

#include <malloc.h>

namespace segrel {

void ReuseFreedMemory() {
  mallopt(M_MMAP_MAX, 0);              // large blocks from the heap, not from mmap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // keep up to 1 GiB of free heap top instead of returning it
  mallopt(M_TOP_PAD, 64 << 20);        // grow the heap in 64 MiB steps
  // Every thread allocates from this heap: another thread's own arena grows in 64 MiB heaps (fixed when glibc is
  // built), so a larger tensor made there is mmapped whatever the settings above say, and unmapped when freed.
  // A server's worker ran 2-3x slower for it, most of it in the kernel.
  mallopt(M_ARENA_MAX, 1);
}

void ReleaseFreedMemory() { malloc_trim(0); }

}  // namespace segrel
