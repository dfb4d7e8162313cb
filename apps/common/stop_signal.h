#pragma once
// Signals that end a training run cleanly. The first of them asks the trainer to stop after the
// current step (it then writes last.safetensors and exits with a line saying how to resume); a
// second SIGINT or SIGTERM, for a user who will not wait, ends the process at once. Either way no
// checkpoint is ever broken: they are replaced atomically.
//   SIGINT, SIGTERM  Ctrl-C, kill, a scheduler cancelling the job: exit status 130
//   SIGPIPE          the reader of stdout went away (`sd_train ... | head`): stops like SIGINT;
//                    later writes to the closed pipe are ignored, never taken for a second signal
//   SIGUSR1          a batch scheduler's warning that the job's wall-clock limit is near (Slurm:
//                    --signal=USR1@seconds): stops like --time-limit, exit status 75
#include <atomic>

namespace sd::apps {

// Installs the handlers and returns the flag they set; the flag is what Trainer::run polls.
const std::atomic<bool>& install_stop_handlers();

// The signal that set the flag (SIGINT, SIGTERM, SIGPIPE or SIGUSR1), 0 when none.
int stop_signal();

// Whether the stop is the scheduler's time-limit warning (SIGUSR1): the run ends as one whose
// --time-limit ran out, to be continued by the next job.
bool stopped_for_time_limit();

// Sets the flag without a signal (sd_train --stop-after); a later signal then quits at once.
void request_stop();

// The handlers' lines (on stderr) are also written to `fd` (train.log, opened for appending), which
// must stay open until the process ends; -1 stops that. The handlers cannot go through std::cerr.
void copy_stop_messages_to(int fd);

}  // namespace sd::apps
