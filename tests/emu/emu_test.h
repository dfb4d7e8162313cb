#pragma once
// Helpers of the emulator's own tests (sd_emu_tests only): device buffers, and "death tests" —
// a misuse the emulated device must report by aborting runs in a child process (this test binary
// again, running one hidden case), whose exit and stderr the parent checks.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>

namespace sd::emu_test {

struct Death {
  bool aborted = false;  // killed by SIGABRT
  std::string output;    // stdout and stderr
};

// Runs the hidden test case `name` (tagged [.death]) in a child process.
inline Death run_hidden_case(const std::string& name, const std::string& env = "") {
  char self[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw std::runtime_error("cannot find this test binary");
  const std::string cmd = env + " '" + std::string(self, size_t(n)) + "' '" + name + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed");
  Death d;
  std::array<char, 4096> buf{};
  size_t got = 0;
  while ((got = fread(buf.data(), 1, buf.size(), p)) > 0) d.output.append(buf.data(), got);
  const int status = pclose(p);
  // The shell reports a child killed by signal s as exit status 128 + s.
  d.aborted = (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
              (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGABRT);
  return d;
}

// Runs the hidden case and checks that it aborted with every one of `expected` in its output.
#define SD_CHECK_DEATH(case_name, ...)                                              \
  do {                                                                              \
    const ::sd::emu_test::Death sd_death_ = ::sd::emu_test::run_hidden_case(case_name); \
    INFO(case_name << ":\n" << sd_death_.output);                                  \
    CHECK(sd_death_.aborted);                                                       \
    for (const char* sd_expected_ : {__VA_ARGS__})                                  \
      CHECK_THAT(sd_death_.output, Catch::Contains(sd_expected_));                  \
  } while (0)

template <class T>
T* device_alloc(size_t count) {
  void* p = nullptr;
  if (cudaMalloc(&p, count * sizeof(T)) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> download(const T* p, size_t count) {
  std::vector<T> v(count);
  if (cudaDeviceSynchronize() != cudaSuccess || cudaMemcpy(v.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess)
    throw std::runtime_error("download failed");
  return v;
}

template <class T>
void upload(T* p, const std::vector<T>& v) {
  if (cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess)
    throw std::runtime_error("upload failed");
}

}  // namespace sd::emu_test
