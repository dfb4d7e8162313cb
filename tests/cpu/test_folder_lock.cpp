// apps/common/folder_lock: one process at a time in a folder, named when it refuses, and no stale
// lock after a crash.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "apps/common/folder_lock.h"

using sd::apps::FolderLock;
namespace fs = std::filesystem;

namespace {

fs::path fresh_folder(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("sd_folder_lock_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

std::string refusal(const fs::path& dir) {
  try {
    FolderLock second(dir, "run folder", "sd_train --out x");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a folder lock refuses a second holder, naming the first, until it is released", "[folder_lock]") {
  const fs::path dir = fresh_folder("refuse");
  {
    std::optional<FolderLock> first;
    first.emplace(dir, "run folder", "sd_train --depth 8");
    CHECK(fs::exists(FolderLock::file_in(dir)));
    const std::string message = refusal(dir);
    CHECK(message == "run folder " + dir.string() + " is in use by PID " + std::to_string(::getpid()) +
                         " (sd_train --depth 8); wait for it to end or use another folder");
    FolderLock moved(std::move(*first));  // moving keeps the lock held
    first.reset();
    CHECK(refusal(dir) != "no error");
  }
  CHECK(refusal(dir) == "no error");
  fs::remove_all(dir);
}

TEST_CASE("a process that dies holding a folder lock leaves no stale lock", "[folder_lock]") {
  const fs::path dir = fresh_folder("crash");
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    auto* held = new FolderLock(dir, "sweep folder", "sd_sweep");  // never destroyed: the process dies
    (void)held;
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(ready[1], &byte, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
  CHECK(refusal(dir).find("is in use by PID " + std::to_string(child) + " (sd_sweep)") != std::string::npos);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(refusal(dir) == "no error");
  fs::remove_all(dir);
}
