#include "apps/common/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace sd::apps {
namespace {

// The holder's "<pid> <command>" line; empty while the holder is between taking the lock and
// writing it (a moment), after a holder released it, or when the file cannot be read.
std::string holder_of(int fd) {
  std::string text(512, '\0');
  const ssize_t n = pread(fd, text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

}  // namespace

FolderLock::FolderLock(const std::filesystem::path& folder, const std::string& what, const std::string& command) {
  std::filesystem::create_directories(folder);
  const auto path = file_in(folder);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) {
      ::close(fd_);
      fd_ = -1;
      throw std::runtime_error(fmt::format("cannot lock {}: {}", path.string(), std::strerror(error)));
    }
    // The holder writes its line right after taking the lock: a refusal in that moment waits for it
    // (up to half a second) rather than naming no one.
    std::string holder = holder_of(fd_);
    for (int i = 0; holder.empty() && i < 50; ++i) {
      ::usleep(10'000);
      holder = holder_of(fd_);
    }
    ::close(fd_);
    fd_ = -1;
    const auto space = holder.find(' ');
    const std::string who = holder.empty() ? std::string("another process")
                            : space == std::string::npos
                                ? "PID " + holder
                                : fmt::format("PID {} ({})", holder.substr(0, space), holder.substr(space + 1));
    throw std::runtime_error(fmt::format("{} {} is in use by {}; wait for it to end or use another folder", what,
                                         folder.string(), who));
  }
  // Ours now: record who holds it. A failure to write only makes a later refusal less specific.
  const std::string line = fmt::format("{} {}\n", ::getpid(), command);
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(fd_, line.data(), line.size(), 0);
  }
}

FolderLock::~FolderLock() {
  if (fd_ < 0) return;
  // Emptied before release, so that the next holder's refusals never name this process while that
  // holder is between its lock and its own line.
  [[maybe_unused]] const int emptied = ::ftruncate(fd_, 0);
  ::close(fd_);  // closing the last descriptor releases the flock
}

FolderLock::FolderLock(FolderLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

}  // namespace sd::apps
