// Process-wide memory allocator settings for programs that handle large tensors.
#ifndef SEGREL_CORE_COMMON_ALLOCATOR_H_
#define SEGREL_CORE_COMMON_ALLOCATOR_H_

namespace segrel {

// glibc serves every allocation above 32 MiB (a 16-channel 96x96x64 activation is 38 MiB) with a fresh mmap and
// returns it on free, so each new tensor costs page faults and zeroing: a third of an explanation's time on 2
// cores. This keeps freed memory in the heap for reuse instead, and has every thread allocate from that one heap
// (a thread's own arena would mmap large tensors anyway). The process's resident size then stays at its peak. Call
// once at the start of main, before any thread starts (the one-heap setting holds only if no other arena exists
// yet) and before any tensor exists.
void ReuseFreedMemory();

// Gives the free memory held in the heap back to the kernel (malloc_trim), wherever it lies. Reused memory
// fragments: tensors of one stage (a window's explained forward pass) leave holes that the next stage's tensors do
// not fit, and the heap grows. Called between windows and between stages, it bounds the resident size by what is
// live, for a few page faults per window.
void ReleaseFreedMemory();

}  // namespace segrel

#endif  // SEGREL_CORE_COMMON_ALLOCATOR_H_
