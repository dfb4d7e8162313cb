#include "engine/core/memory_reuse.h"

#include <cstdlib>  // defines __GLIBC__ under glibc
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sd {

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  // From the heap up to mmap's largest threshold (32 MiB on 64 bits; set, it also stops glibc moving
  // it), and no trimming of the heap's top: freed blocks stay for the next step.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace sd
