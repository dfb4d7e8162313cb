#pragma once
// What sd_train leaves in its run folder besides the metrics and checkpoints (apps/common/run_log.h),
// so that the folder alone says what ran (docs/USAGE.md, "The run directory"):
//   train.log    a copy of everything the program printed, stdout and stderr, appended on resume
//                under a line naming the invocation
//   config.json  the run's settings (the checkpoint's "config") plus "invocation": the command
//                line, the source commit, the data folder and whether its files match the official
//                checksums, the device, execution mode and precision, the host and its GPUs, driver
//                and libraries (what sd_sweep's sweep.json reports); rewritten by every invocation,
//                so it stays current (after `--resume --epochs 3` it says 3)
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/train/checkpoint.h"

namespace sd::apps {

// From here to the program's exit, stdout and stderr are copied into `path` (appended), which first
// gets "=== <UTC time> <command>"; when stdout already goes to that very file (sd_sweep's runs), only
// the header is added. Throws std::runtime_error naming the file when it cannot be opened.
void copy_console_to(const std::filesystem::path& path, const std::string& command);

// The command line as one shell-quoted line: "sd_train --depth 8 --out 'my runs/a'".
std::string command_line(int argc, char** argv);

struct Invocation {
  std::string program;  // "sd_train"
  std::string command;  // command_line(argc, argv)
  std::string device;   // "cpu", "cuda:0"
  std::string device_name;
  std::string exec;     // "eager" | "graph"
  nlohmann::json data;  // data_provenance (apps/common/data_provenance.h)
  std::string host;     // the machine it runs on (a cluster's node)
  nlohmann::json environment;  // to_json(probe_environment()) there: its GPUs, driver and libraries
};

// config.json: to_json(run) with "invocation" added (the command, "commit", "started_utc", "device",
// "device_name", "exec", "precision", "data", "host", "environment").
nlohmann::json config_file_json(const RunConfig& run, const Invocation& invocation);

}  // namespace sd::apps
