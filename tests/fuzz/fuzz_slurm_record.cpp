// A sweep's Slurm record, <sweep>/slurm/jobs.json, as a resumed `sd_sweep --launcher slurm` reads it
// (apps/sweep/slurm_jobs.h: read_slurm_record, then the settings check and each run's task).
#include "apps/sweep/slurm_jobs.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const fs::path sweep = sd::fuzz::scratch_dir();
  fs::create_directories(sd::apps::slurm_record_path(sweep).parent_path());
  sd::fuzz::write_file(sd::apps::slurm_record_path(sweep), sd::fuzz::as_text(data, size));
  sd::fuzz::expect_reader_refusal(sweep.string(), [&] {
    const std::optional<sd::apps::SlurmRecord> record = sd::apps::read_slurm_record(sweep);
    if (!record) return;
    sd::apps::check_same_settings(sweep, record->settings, nlohmann::json{{"depths", {8}}, {"seeds", {1}}});
    for (const sd::apps::SlurmJob& job : record->jobs)
      for (const std::string& run : job.runs) (void)sd::apps::task_of(job, run);
  });
  return 0;
}
