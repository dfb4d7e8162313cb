#pragma once
// How the emulated device reports a misuse it cannot turn into an error code (a fault, a divergent
// barrier, a host pointer in a kernel): one message on stderr, "sdnet emulated device: ...", then
// abort(), as a GPU kernel fault ends the process's CUDA context.
#include <string>

namespace sd::emu {

[[noreturn]] void fatal(const std::string& message);
// Prints a warning line (for calls that also return an error code).
void warn(const std::string& message);

}  // namespace sd::emu
