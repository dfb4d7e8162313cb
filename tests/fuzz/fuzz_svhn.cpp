// The SVHN reader (engine/data/svhn.h) on any bytes: matio's MAT level-5 parsing (header, element
// tags, compressed elements, array flags, dimensions, names), the checks of X and y, the labels and
// the reader's own walk over the compressed elements.
#include "engine/data/svhn.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path path = sd::fuzz::scratch_dir() / "train_32x32.mat";
  sd::fuzz::write_file(path, sd::fuzz::as_text(data, size));
  sd::fuzz::expect_reader_refusal(path.string(), [&] { sd::read_svhn_file(path); });
  return 0;
}
