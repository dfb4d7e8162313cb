// The CIFAR-100 binary reader (engine/data/cifar100.h), as the CIFAR-10 target: the record count
// the size suggests, and one more.
#include "engine/data/cifar100.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path path = sd::fuzz::scratch_dir() / "train.bin";
  sd::fuzz::write_file(path, sd::fuzz::as_text(data, size));
  const size_t records = size / sd::kCifar100RecordBytes;
  for (size_t asked : {records, records + 1})
    sd::fuzz::expect_reader_refusal(path.string(), [&] { sd::read_cifar100_file(path, asked); });
  return 0;
}
