#pragma once
// MD5 (RFC 1321), only to compare data files with the digests their publisher lists (CIFAR-10's
// official MD5s): not for anything that needs a secure hash.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace sd::apps {

class Md5 {
 public:
  Md5();
  void update(std::string_view bytes);
  std::string hex_digest();  // 32 lower-case hex digits; ends the computation

 private:
  void block(const unsigned char* p);
  uint32_t h_[4];
  unsigned char buffer_[64];
  uint64_t length_ = 0;  // bytes seen
};

std::string md5_hex(std::string_view bytes);
// Throws std::runtime_error naming the file when it cannot be read.
std::string md5_of_file(const std::filesystem::path& path);

}  // namespace sd::apps
