// The safetensors reader and writer (engine/train/safetensors.h) and the atomic file write under it.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/train/atomic_file.h"
#include "engine/train/safetensors.h"
#include "test_apps_util.h"

namespace {

using sd::NamedTensor;

std::vector<NamedTensor> sample_tensors() {
  return {NamedTensor{"conv1.weight", {2, 1, 1, 3}, {1.5f, -2.0f, 0.0f, 3.25f, -0.0f, 1e-30f}},
          NamedTensor{"fc.bias", {3}, {0.1f, 0.2f, 0.3f}},
          NamedTensor{"scalar", {}, {42.0f}}};
}

// A file as another writer (the Python package) would make it: given header text, given data.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string floats(std::initializer_list<float> v) {
  return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * sizeof(float));
}

std::string decode_error(const std::string& bytes) {
  try {
    sd::decode_safetensors(bytes, "x.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes, values, order and metadata", "[safetensors]") {
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> meta = {{"depth", "8"}, {"note", "quotes \" and\nnewline"}};
  const std::string bytes = sd::encode_safetensors(tensors, meta);

  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK(header_len % 8 == 0);  // padded so that the data is 8-byte aligned
  CHECK(bytes.size() == 8 + header_len + (6 + 3 + 1) * sizeof(float));
  const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  CHECK(header["fc.bias"]["dtype"] == "F32");
  CHECK(header["fc.bias"]["data_offsets"] == nlohmann::json::array({24, 36}));
  CHECK(header["__metadata__"]["depth"] == "8");

  const sd::Safetensors back = sd::decode_safetensors(bytes, "mem");
  REQUIRE(back.tensors.size() == tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    CHECK(back.tensors[i].name == tensors[i].name);
    CHECK(back.tensors[i].shape == tensors[i].shape);
    CHECK(std::memcmp(back.tensors[i].data.data(), tensors[i].data.data(), tensors[i].data.size() * 4) == 0);
  }
  std::map<std::string, std::string> with_checksum = meta;
  with_checksum["data_crc32"] = fmt::format("{:08x}", sd::crc32_of(bytes.substr(8 + header_len)));
  CHECK(back.metadata == with_checksum);
  CHECK(back.checksum_verified);
}

TEST_CASE("safetensors CRC-32 is zlib's, a mismatch is refused, a file without one reads unverified", "[safetensors]") {
  CHECK(sd::crc32_of("123456789") == 0xCBF43926u);  // the standard check value of CRC-32
  CHECK(sd::crc32_of("") == 0u);
  std::string bytes = sd::encode_safetensors(sample_tensors(), {{"data_crc32", "stale"}});  // replaced
  CHECK(sd::decode_safetensors(bytes, "mem").checksum_verified);
  bytes[bytes.size() - 5] ^= char(0x10);
  CHECK_THAT(decode_error(bytes), Catch::StartsWith("x.safetensors: corrupt: the data's CRC-32 is ") &&
                                      Catch::Contains("changed after it was written"));
  const sd::Safetensors other = sd::decode_safetensors(sd::test::without_checksum(bytes), "mem");
  CHECK_FALSE(other.checksum_verified);
  CHECK(other.tensors.size() == 3);
}

TEST_CASE("safetensors reads a file written by another tool, in data order", "[safetensors]") {
  // Key order in the JSON differs from the data order; no padding, no metadata.
  const std::string header = R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const sd::Safetensors st = sd::decode_safetensors(raw_file(header, floats({1, 2, 3})), "py.safetensors");
  REQUIRE(st.tensors.size() == 2);
  CHECK(st.tensors[0].name == "a");
  CHECK(st.tensors[0].data == std::vector<float>{1, 2});
  CHECK(st.tensors[1].name == "b");
  CHECK(st.tensors[1].data == std::vector<float>{3});
  CHECK(st.metadata.empty());
}

TEST_CASE("safetensors rejects malformed files with one line naming the file", "[safetensors]") {
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  struct Case {
    const char* what;
    std::string bytes;
    const char* expect;
  };
  std::string huge_len(8, '\0');
  huge_len[6] = 1;  // 2^48 bytes of header
  const Case cases[] = {
      {"too short", "abc", "too short"},
      {"header length beyond file", huge_len + "{}", "exceeds"},
      {"truncated data", raw_file(ok_header, floats({1})), "truncated"},
      {"bad JSON", raw_file(R"({"a": {"dtype": )", ""), "bad JSON"},
      {"not an object", raw_file("[1, 2]   ", ""), "not a JSON object"},
      {"unknown dtype", raw_file(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", floats({1})),
       "unknown dtype 'Q7'"},
      {"unsupported dtype", raw_file(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", floats({1})),
       "only F32"},
      {"shape disagrees", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", floats({1, 2})),
       "needs 12 bytes"},
      {"offsets reversed", raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", floats({1, 2})),
       "data_offsets [8, 0]"},
      {"overlap",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                floats({1, 2})),
       "overlap"},
      {"negative dim", raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", floats({1})),
       "not a size"},
      {"missing fields", raw_file(R"({"a":{"dtype":"F32"}})", ""), "lacks"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const std::string msg = decode_error(c.bytes);
    CHECK(msg.rfind("x.safetensors: ", 0) == 0);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("safetensors refuses to write inconsistent tensors", "[safetensors]") {
  CHECK_THROWS_AS(sd::encode_safetensors(std::vector<NamedTensor>{{"a", {3}, {1, 2}}}, {}), std::invalid_argument);
  CHECK_THROWS_AS(sd::encode_safetensors(std::vector<NamedTensor>{{"a", {1}, {1}}, {"a", {1}, {2}}}, {}),
                  std::invalid_argument);
}

TEST_CASE("safetensors files on disk: save, load, and errors that name the path", "[safetensors]") {
  const sd::test::TempDir dir;
  const auto path = dir.path() / "model.safetensors";
  sd::save_safetensors(path, sample_tensors(), {{"k", "v"}});
  const sd::Safetensors st = sd::load_safetensors(path);
  CHECK(st.tensors.size() == 3);
  CHECK(st.metadata.at("k") == "v");

  CHECK_THROWS_WITH(sd::load_safetensors(dir.path() / "absent.safetensors"), Catch::Contains("absent.safetensors: no such file"));
  CHECK_THROWS_WITH(sd::load_safetensors(dir.path()), Catch::Contains("is a directory"));
}

TEST_CASE("atomic write replaces a file whole and leaves no temporary behind", "[safetensors]") {
  const sd::test::TempDir dir;
  const auto path = dir.path() / "f.txt";
  sd::write_file_atomically(path, "first");
  sd::write_file_atomically(path, "second, longer");
  CHECK(sd::test::read_file(path) == "second, longer");
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 1);

  // A failed write (here: the target's directory is a file) throws naming the target and never
  // touches an existing file.
  CHECK_THROWS_WITH(sd::write_file_atomically(path / "sub", "x"), Catch::Contains("f.txt/sub"));
  CHECK(sd::test::read_file(path) == "second, longer");
}

TEST_CASE("append and writable-directory checks name the path", "[safetensors]") {
  const sd::test::TempDir dir;
  const auto log = dir.path() / "log.jsonl";
  sd::append_to_file(log, "a\n");
  sd::append_to_file(log, "b\n");
  CHECK(sd::test::read_file(log) == "a\nb\n");

  sd::ensure_writable_directory(dir.path() / "new" / "deeper");
  CHECK(std::filesystem::is_directory(dir.path() / "new" / "deeper"));
  CHECK_THROWS_WITH(sd::ensure_writable_directory(log / "run"), Catch::Contains("log.jsonl/run"));
}
