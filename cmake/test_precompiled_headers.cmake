# The test programs' precompiled header: Catch2's single header and the standard headers most test
# files include are parsed once per test program instead of once per test file (docs/TESTING.md
# measures what it saves). Not fmt or nlohmann/json: a header that large costs every small test file
# more to load than the few files using them save. C++ files only: nvcc compiles its own .cu files
# without it. (Catch2's runner, tests/catch_main.cpp, is a library of its own: CATCH_CONFIG_MAIN
# must come before Catch2's header.)
function(sd_precompile_test_headers target)
  set(headers catch2/catch.hpp algorithm cmath cstdint cstring functional memory string vector)
  list(TRANSFORM headers REPLACE "(.+)" "$<$<COMPILE_LANGUAGE:CXX>:<\\1$<ANGLE-R>>")
  target_precompile_headers(${target} PRIVATE ${headers})
endfunction()
