// The safetensors reader (engine/train/safetensors.h) on any bytes: the 8-byte header length, the
// JSON header, the tensors' dtypes, shapes and offsets, the metadata and its data_crc32.
#include "engine/train/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sd::fuzz::expect_reader_refusal("input.safetensors", [&] {
    sd::decode_safetensors(sd::fuzz::as_text(data, size), "input.safetensors");
  });
  return 0;
}
