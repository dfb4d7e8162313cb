// The CIFAR-10 binary reader (engine/data/cifar10.h) on a file of any size: the record count asked
// is the one the size suggests (the reader's size check passes and every label is read) and, to
// keep the size check itself covered, one more.
#include "engine/data/cifar10.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path path = sd::fuzz::scratch_dir() / "data_batch_1.bin";
  sd::fuzz::write_file(path, sd::fuzz::as_text(data, size));
  const size_t records = size / sd::kCifar10RecordBytes;
  for (size_t asked : {records, records + 1})
    sd::fuzz::expect_reader_refusal(path.string(), [&] { sd::read_cifar10_file(path, asked); });
  return 0;
}
