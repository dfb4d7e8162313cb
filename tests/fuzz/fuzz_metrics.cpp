// A run's metrics.jsonl and summary.json as sd_sweep's aggregation reads them (apps/sweep/aggregate.h:
// read_run, then the cells' statistics, sweep.json and sweep.md), as a resumed sweep counts the
// epochs (inspect_run) and as `sd_train --resume` trims the lines after its checkpoint
// (keep_metrics_through). The input is metrics.jsonl, then optionally a line "--8<--" and summary.json.
#include "apps/common/run_log.h"
#include "apps/sweep/aggregate.h"
#include "apps/sweep/run_state.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const std::string_view bytes = sd::fuzz::as_text(data, size);
  const fs::path sweep = sd::fuzz::scratch_dir();
  sd::apps::GridPoint point{8, "lin_decay", 0.5, 1};
  const fs::path dir = sweep / "runs" / point.run_name();
  fs::create_directories(dir);
  sd::fuzz::write_file(dir / "metrics.jsonl", sd::fuzz::part(bytes, 0));
  sd::fuzz::write_file(dir / "summary.json", sd::fuzz::part(bytes, 1));
  constexpr int kEpochs = 3;
  sd::fuzz::expect_reader_refusal(dir.string(), [&] {
    std::vector<sd::apps::RunResult> runs{sd::apps::read_run(sweep, point, kEpochs)};
    const std::string quantity = sd::apps::curve_quantity(runs);
    const std::vector<sd::apps::CellResult> cells = sd::apps::aggregate_cells(runs, quantity);
    (void)sd::apps::sweep_json(runs, cells, quantity, nlohmann::json::object()).dump();
    (void)sd::apps::sweep_markdown(runs, cells, "fuzz");
  });
  sd::RunConfig wanted;
  wanted.train.epochs = kEpochs;
  sd::fuzz::write_file(dir / "last.safetensors", "");
  sd::fuzz::expect_reader_refusal(dir.string(), [&] { sd::apps::inspect_run(dir, wanted); });
  fs::remove(dir / "last.safetensors");
  sd::fuzz::expect_reader_refusal(dir.string(), [&] { sd::apps::keep_metrics_through(dir, 2); });
  return 0;
}
