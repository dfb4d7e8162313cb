// How far a run is, from its last.safetensors header alone, as sd_sweep reads it to judge a Slurm
// task's progress (apps/sweep/run_state.h: checkpoint_progress), and whether its summary.json says
// it is complete (summary_complete, through inspect_run). The input is last.safetensors's bytes,
// then optionally a line "--8<--" and summary.json.
#include "apps/sweep/run_state.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const std::string_view bytes = sd::fuzz::as_text(data, size);
  const fs::path dir = sd::fuzz::scratch_dir() / "run";
  fs::create_directories(dir);
  sd::fuzz::write_file(dir / "last.safetensors", sd::fuzz::part(bytes, 0));
  sd::fuzz::write_file(dir / "summary.json", sd::fuzz::part(bytes, 1));
  sd::fuzz::expect_reader_refusal(dir.string(), [&] { (void)sd::apps::checkpoint_progress(dir); });
  sd::fuzz::expect_reader_refusal(dir.string(), [&] { sd::apps::inspect_run(dir, sd::RunConfig{}); });
  return 0;
}
