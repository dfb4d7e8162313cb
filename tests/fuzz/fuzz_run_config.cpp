// A run folder's config.json as a resumed sweep reads it (apps/sweep/run_state.h: inspect_run
// compares the run's settings with the sweep's before resuming it) and as its report reads the
// environment the run recorded (apps/sweep/run_environment.h).
#include "apps/sweep/run_environment.h"
#include "apps/sweep/run_state.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const fs::path dir = sd::fuzz::scratch_dir() / "run";
  static const bool made = [&] {
    fs::create_directories(dir);
    sd::fuzz::write_file(dir / "last.safetensors", "");  // a started run: its config.json is read
    return true;
  }();
  (void)made;
  sd::fuzz::write_file(dir / "config.json", sd::fuzz::as_text(data, size));
  sd::fuzz::expect_reader_refusal(dir.string(), [&] { sd::apps::inspect_run(dir, sd::RunConfig{}); });
  sd::apps::PlannedRun run;
  run.dir = dir;
  sd::fuzz::expect_reader_refusal(dir.string(), [&] { sd::apps::runs_environment({run}); });
  return 0;
}
