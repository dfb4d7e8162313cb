#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "engine/core/memory_reuse.h"

// Catch2's runner, with the allocator policy every sdnet program starts with (engine/core/memory_reuse.h).
int main(int argc, char* argv[]) {
  sd::keep_freed_memory_for_reuse();
  return Catch::Session().run(argc, argv);
}
