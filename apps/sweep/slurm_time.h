#pragma once
// The tasks' time limit as the site's options give it (--slurm-arg=--time=..., or SBATCH_TIMELIMIT),
// and the rule that keeps the time-limit warning (--time-signal) from coming so soon after a task
// starts that it cannot train and checkpoint before it: a task that is warned before its first
// checkpoint ends without progress and requeues itself for ever.
//
// slurmctld sends the warning in its time-limit pass (every 30 s) once the time left is within the
// asked seconds plus 30 s, so a warning may come up to 30 s early; a start also loads its data and
// plans its convolutions before it trains. With a limit of 4 minutes or more the warning must
// therefore leave each start at least 2 minutes; a shorter limit (a debug partition's, the tests'
// one minute) cannot leave that much with any warning, and there it must leave at least half of it.
#include <optional>
#include <string>
#include <vector>

namespace sd::apps {

// Seconds of a Slurm time ("90" minutes, "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"), as
// Slurm counts a job's limit: whole minutes, seconds rounded up. Nothing for no limit ("UNLIMITED",
// "INFINITE", "-1", "0"). Throws UsageError for anything else, naming `option`.
std::optional<int> slurm_time_seconds(const std::string& text, const std::string& option);

// The largest --time-signal that a limit of `limit_seconds` allows.
int largest_time_signal(int limit_seconds);

// Throws UsageError when `signal_seconds` (the default unless `given`) comes too soon for the time
// limit the site's options (or SBATCH_TIMELIMIT) set; where neither sets one, the partition's
// default applies, which sd_sweep cannot see, and nothing is checked.
void check_time_signal(int signal_seconds, bool given, const std::vector<std::string>& site_args);

}  // namespace sd::apps
