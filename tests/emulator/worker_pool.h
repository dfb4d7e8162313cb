#pragma once
// The persistent worker threads that run thread blocks. The thread that executes a kernel (the
// host thread, at a synchronisation point) takes blocks too; `workers` counts it, so workers = 1
// runs everything on the calling thread.
#include "tests/emulator/block_runner.h"

namespace sd::emu {

// Runs every block of `job`; returns when all are done.
void run_grid(GridJob& job);
// Changes the number of worker threads (joins the old ones first). Not while a grid runs.
void set_worker_count(int workers);

}  // namespace sd::emu
