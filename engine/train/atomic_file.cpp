#include "engine/train/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace sd {

namespace {

std::string why() { return std::strerror(errno); }

// Closes the descriptor when it goes out of scope, so every error path below releases it.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports failure: close can be where a delayed write error (NFS, quota) shows.
  bool close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

void write_all(int fd, std::string_view bytes, const std::filesystem::path& shown) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(fmt::format("cannot write {}: {}", shown.string(), why()));
    }
    p += n;
    left -= size_t(n);
  }
}

std::filesystem::path parent_or_dot(const std::filesystem::path& path) {
  const std::filesystem::path parent = path.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  const std::filesystem::path dir = parent_or_dot(path);
  const std::filesystem::path tmp = dir / fmt::format(".{}.tmp.{}", path.filename().string(), ::getpid());
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", path.string(), why()));
    try {
      write_all(fd.get(), bytes, path);
      if (::fsync(fd.get()) != 0) throw std::runtime_error(fmt::format("cannot write {}: fsync: {}", path.string(), why()));
      if (!fd.close()) throw std::runtime_error(fmt::format("cannot write {}: close: {}", path.string(), why()));
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = why();
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write {}: rename: {}", path.string(), reason));
  }
  // Make the rename durable. A failure here cannot undo it and the data is already safe in the
  // file, so it is not worth an error that would stop a run.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
}

void append_to_file(const std::filesystem::path& path, std::string_view bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw std::runtime_error(fmt::format("cannot append to {}: {}", path.string(), why()));
  write_all(fd.get(), bytes, path);
  if (::fsync(fd.get()) != 0) throw std::runtime_error(fmt::format("cannot append to {}: fsync: {}", path.string(), why()));
  if (!fd.close()) throw std::runtime_error(fmt::format("cannot append to {}: close: {}", path.string(), why()));
}

void ensure_writable_directory(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot create directory {}: {}", dir.string(), ec.message()));
  if (!std::filesystem::is_directory(dir, ec))
    throw std::runtime_error(fmt::format("{} is not a directory", dir.string()));
  // Permissions alone do not say it (root, read-only mounts, ACLs): try to create a file.
  const std::filesystem::path probe = dir / fmt::format(".write-test.{}", ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("directory {} is not writable: {}", dir.string(), why()));
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace sd
