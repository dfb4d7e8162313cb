#pragma once
// Ctrl-C and SIGTERM during training: the first one asks the trainer to stop after the current step
// (it then writes last.safetensors and exits 130 with a line saying how to resume); a second one,
// for a user who will not wait, ends the process at once. Either way no checkpoint is ever broken:
// they are replaced atomically.
#include <atomic>

namespace sd::apps {

// Installs the handlers and returns the flag they set; the flag is what Trainer::run polls.
const std::atomic<bool>& install_stop_handlers();

// The signal that set the flag (SIGINT or SIGTERM), 0 when none.
int stop_signal();

// Sets the flag without a signal (sd_train --stop-after); a later signal then quits at once.
void request_stop();

}  // namespace sd::apps
