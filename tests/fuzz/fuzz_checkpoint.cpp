// A checkpoint as `sd_train --resume` and sd_eval load it (engine/train/checkpoint.h): the
// safetensors file, then its metadata (format, kind, the run's config and trainer state as JSON,
// the normalisation) and every tensor the model of that config needs, with its shape.
#include "engine/train/checkpoint.h"
#include "models/network/resnet_spec.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path path = sd::fuzz::scratch_dir() / "last.safetensors";
  sd::fuzz::write_file(path, sd::fuzz::as_text(data, size));
  sd::fuzz::expect_reader_refusal(path.string(), [&] { sd::load_checkpoint(path, sd::model_tensors); });
  return 0;
}
