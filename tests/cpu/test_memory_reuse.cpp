// The allocator policy every program starts with (engine/core/memory_reuse.h): a step-sized buffer
// comes from the heap, not from a mapping of its own, and freeing it keeps the memory for the next.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <vector>

#include "engine/core/memory_reuse.h"

#if defined(__GLIBC__)
#include <malloc.h>

TEST_CASE("a freed step-sized buffer stays in the process for the next step", "[memory]") {
  sd::keep_freed_memory_for_reuse();  // as every program and test program starts
  constexpr size_t kStepTensor = size_t(8) << 20;  // ResNet-110's activation at batch 128: 8 MiB
  const struct mallinfo2 start = mallinfo2();
  void* first = std::malloc(kStepTensor);
  REQUIRE(first != nullptr);
  const struct mallinfo2 held = mallinfo2();
  CHECK(held.hblkhd == start.hblkhd);  // no mapping of its own (glibc's default maps blocks this large)
  std::free(first);
  const struct mallinfo2 freed = mallinfo2();
  CHECK(freed.arena >= held.arena);  // the heap keeps it (the default trims the heap's top)
  void* second = std::malloc(kStepTensor);
  CHECK(second == first);  // the next step's buffer is the same memory, its pages already there
  std::free(second);
}
#endif
