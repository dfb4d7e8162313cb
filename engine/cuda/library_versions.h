#pragma once
// The versions of the libraries the engine was built against (headers) and runs with (the shared
// libraries found at run time), side by side. A binary built here runs on another machine with
// other libraries (cuDNN 9.19 headers here, a 9.14 runtime on the GPU machine): a runtime older than
// the headers it was compiled for may lack what they promise, so that is worth a warning (not an
// error: minor releases are usually compatible, and this one is known to work).
//
// The struct and its text are plain C++ (tests check them anywhere); query_version_numbers asks
// the libraries.
#include <string>
#include <vector>

namespace sd::cuda {

// Encodings as the libraries report them: cuDNN and cuBLAS major·10000 + minor·100 + patch
// (91900 = 9.19.0), CUDA major·1000 + minor·10 (13000 = 13.0).
struct VersionNumbers {
  int cudnn_header = 0, cudnn_runtime = 0;
  int cublas_header = 0, cublas_runtime = 0;
  int cuda_runtime = 0;  // the CUDA runtime linked in (static: the toolkit's)
  int cuda_driver = 0;   // the newest CUDA version the installed driver supports
};

std::string cudnn_version_text(int v);   // 91900 → "9.19.0"
std::string cublas_version_text(int v);  // 130100 → "13.1.0"
std::string cuda_version_text(int v);    // 13000 → "13.0"

// "cuDNN 9.14.0 (built with 9.19.0 headers), cuBLAS 13.1.0 (headers 13.1.0), CUDA runtime 13.0, driver supports 13.0"
std::string describe(const VersionNumbers& v);

// One line per library whose runtime is older than what the build expects (the cuDNN or cuBLAS
// headers; for the driver, the CUDA runtime), e.g. "cuDNN runtime 9.14.0 is older than the 9.19.0
// headers this build was compiled with". Empty when all is well.
std::vector<std::string> version_warnings(const VersionNumbers& v);

// Asks cuDNN, cuBLAS and the CUDA runtime; 0 for what cannot be told. cuBLAS only where a GPU is
// present (its runtime stays 0 without one: loading it is the cost, engine/cuda/cublas_on_demand.cpp).
// A runtime of 0 is not compared with the headers.
VersionNumbers query_version_numbers();

}  // namespace sd::cuda
