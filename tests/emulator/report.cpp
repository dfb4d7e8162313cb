#include "tests/emulator/report.h"

#include <unistd.h>

#include <cstdlib>

namespace sd::emu {

namespace {
void write_line(const std::string& m) {
  const std::string line = "sdnet emulated device: " + m + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t w = ::write(2, line.data() + done, line.size() - done);
    if (w <= 0) break;
    done += size_t(w);
  }
}
}  // namespace

void fatal(const std::string& message) {
  write_line(message);
  std::abort();
}

void warn(const std::string& message) { write_line(message); }

}  // namespace sd::emu
