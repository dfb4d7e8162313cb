# Files that include the same heavy headers compile together, in "unity" files that #include each
# of a group's sources in turn, so that those headers are parsed once per group, not once per file:
# CLI11 (header-only in Debian's 2.1: about 5 CPU seconds wherever it is included), nlohmann/json,
# fmt and the apps' headers were most of a clean build's time in the test programs and apps/
# (docs/TESTING.md measures it). The CPU library and the emulated engine (its kernels and the
# emulator) compile in batches too: both are built in every build directory, sanitizers' included.
# The nvcc-built engine compiles file by file. SD_UNITY_BUILD=OFF compiles every file on its own (the
# quickest rebuild after one change to a grouped file).
# What a group asks of its files: the names a file declares at namespace scope outside a namespace
# of its own (an anonymous namespace is one for the whole unity file) do not clash with another
# file's of the group, and a file's `using namespace` reaches the files after it. The compiler
# reports a clash; the fix is a shared helper (tests/cpu/test_apps_util.h) or a qualified name.
option(SD_UNITY_BUILD "Compile the test programs' and apps' heaviest files in groups (faster clean builds)" ON)

# sd_unity_groups(TARGET GROUP name file... [GROUP name file...]...): each GROUP's files (paths
# relative to the current source directory) compile as one unity file; the target's other files
# compile on their own.
function(sd_unity_groups target)
  if(NOT SD_UNITY_BUILD)
    return()
  endif()
  set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE GROUP)
  set(group "")
  foreach(arg ${ARGN})
    if(arg STREQUAL "GROUP")
      set(expect_name TRUE)
    elseif(expect_name)
      set(group ${arg})
      set(expect_name FALSE)
    else()
      if(NOT group)
        message(FATAL_ERROR "sd_unity_groups(${target}): a file before the first GROUP name")
      endif()
      set_source_files_properties(${arg} TARGET_DIRECTORY ${target} PROPERTIES UNITY_GROUP ${target}_${group})
    endif()
  endforeach()
endfunction()

# sd_unity_batches(TARGET): every C++ file of the target, in batches of a few files.
function(sd_unity_batches target)
  if(SD_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 6)
  endif()
endfunction()
