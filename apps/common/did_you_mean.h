#pragma once
// "did you mean --epochs?": the option a mistyped flag most likely meant, for the one-line error
// of every program (apps/common/app_main.cpp).
#include <optional>
#include <string>
#include <vector>

namespace sd::apps {

// The optimal string alignment distance (Levenshtein with adjacent transpositions): "--epoch" and
// "--epochs" are 1 apart, "--lr-setps" and "--lr-steps" 1, "--dpeth" and "--depth" 1.
int edit_distance(const std::string& a, const std::string& b);

// Among `known` ("--epochs", ...), the one `given` most likely meant: the nearest by edit_distance
// when it is close (at most 2 edits, and at most a third of the name), or else the only option
// that `given` begins (a cut-short "--warm" for "--warmup"); nothing when none is convincing.
std::optional<std::string> closest_option(const std::string& given, const std::vector<std::string>& known);

// "unknown option --epoch (did you mean --epochs?)", "unknown options --foo, --epoch (did you mean
// --epochs?)"; for arguments that are no flag, "unexpected argument 3". `extras`: what the command
// line held that no option took, in command-line order.
std::string unknown_arguments_message(const std::vector<std::string>& extras, const std::vector<std::string>& known);

}  // namespace sd::apps
