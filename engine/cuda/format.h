#pragma once
// Messages for .cu files. nvcc cannot compile fmt 9's compile-time format-string checks, so files
// that nvcc compiles build their messages with sd::cuda::cat(a, b, c...) (operator<< on each
// piece) instead; .cpp files use fmt as everywhere else.
#include <sstream>
#include <string>

namespace sd::cuda {

template <class... Pieces>
std::string cat(const Pieces&... pieces) {
  std::ostringstream s;
  (s << ... << pieces);
  return s.str();
}

}  // namespace sd::cuda
