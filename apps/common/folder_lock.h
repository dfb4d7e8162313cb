#pragma once
// One process at a time in a run folder or a sweep folder. Two sd_train on the same --out would
// interleave their epochs in metrics.jsonl; two sd_sweep on one folder would submit its runs twice.
// The lock is an advisory flock(2) on "<folder>/.lock", held for the life of the FolderLock: the
// kernel releases it when the process ends, however it ends, so a crash never leaves a stale lock.
// The file keeps the holder's PID and command so that the refusal can name who holds it.
#include <filesystem>
#include <string>

namespace sd::apps {

class FolderLock {
 public:
  // Creates `folder` if needed and takes its lock without waiting. Throws std::runtime_error, one
  // line: "<what> <folder> is in use by PID <pid> (<command>); wait for it to end or use another
  // folder" when another process holds it, or naming the file and errno when it cannot be opened.
  FolderLock(const std::filesystem::path& folder, const std::string& what, const std::string& command);
  ~FolderLock();
  FolderLock(FolderLock&& other) noexcept;
  FolderLock& operator=(FolderLock&&) = delete;
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  static std::filesystem::path file_in(const std::filesystem::path& folder) { return folder / ".lock"; }

 private:
  int fd_ = -1;
};

}  // namespace sd::apps
