# The test programs' precompiled headers: Catch2's single header, fmt and nlohmann/json (all three
# header-only here) and the standard headers most test files include are parsed once per test program
# instead of once per test file (docs/TESTING.md measures what it saves). C++ files only: nvcc
# compiles its own .cu files without them. (Catch2's runner, tests/catch_main.cpp, is a library of
# its own: CATCH_CONFIG_MAIN must come before Catch2's header.)
function(sd_precompile_test_headers target)
  set(headers catch2/catch.hpp fmt/format.h nlohmann/json.hpp
              algorithm cmath cstdint cstring functional memory string vector)
  list(TRANSFORM headers REPLACE "(.+)" "$<$<COMPILE_LANGUAGE:CXX>:<\\1$<ANGLE-R>>")
  target_precompile_headers(${target} PRIVATE ${headers})
endfunction()
