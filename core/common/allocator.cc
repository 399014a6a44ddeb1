#include "core/common/allocator.h"

#include <malloc.h>

namespace segrel {

void ReuseFreedMemory() {
  mallopt(M_MMAP_MAX, 0);               // large blocks from the heap, not from mmap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);   // keep up to 1 GiB of free heap top instead of returning it
  mallopt(M_TOP_PAD, 64 << 20);         // grow the heap in 64 MiB steps
}

void ReleaseFreedMemory() { malloc_trim(0); }

}  // namespace segrel
