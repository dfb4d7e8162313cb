// cuBLAS loaded when first called, not when a program starts (the real CUDA build only: the emulated
// device has its own cuBLAS, tests/emulator/cublas.cpp).
//
// Why: linked the ordinary way, libcublas.so pulls in libcublasLt.so (540 MB), whose start-up
// initialisers cost every process about 0.4 s of CPU and 26 000 page faults before main() runs,
// measured with perf on the 2-core CI machine (CUDA 13.0) — whether or not the process ever touches
// a GPU. Every run on the CPU paid it: each sd_train, sd_eval and sd_sweep, and each of the test
// suite's several hundred processes. Only the classifier's GEMMs need cuBLAS.
//
// How: this file defines the cuBLAS functions the engine calls, under their own names (the header's
// declarations), as forwarders to the library's, which it opens with dlopen on the first call — the
// technique of Implib.so. The program is linked without libcublas, so nothing else defines these
// names; dlsym on the library's handle finds the library's own definitions (an executable exports
// none of its symbols unless linked with --export-dynamic, so the library cannot bind to these).
// A cuBLAS call the engine adds and this file lacks fails to link, naming the function.
//
// If the library cannot be opened, every forwarder answers CUBLAS_STATUS_NOT_INITIALIZED, and the
// status string of the error message (engine/cuda/check.cpp) is dlopen's reason.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <string>

#define SD_STRINGIFY_VALUE(x) #x
#define SD_STRINGIFY(x) SD_STRINGIFY_VALUE(x)

namespace {

// The soname of the cuBLAS these headers describe (libcublas.so.13 for CUDA 13); the run path that
// CMakeLists.txt gives every binary (<toolkit>/lib64) is searched, then the system's directories.
constexpr const char* kLibrary = "libcublas.so." SD_STRINGIFY(CUBLAS_VER_MAJOR);

struct Library {
  void* handle = nullptr;
  std::string why_not;  // dlopen's error when handle is null
};

const Library& library() {
  static const Library lib = [] {
    Library l;
    l.handle = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!l.handle) {
      const char* error = dlerror();
      l.why_not = std::string(kLibrary) + " could not be loaded: " + (error ? error : "no reason given");
    }
    return l;
  }();
  return lib;
}

// The library's definition of `name`, or null when the library (or the symbol) is missing.
template <typename Function>
Function* find(const char* name) {
  const Library& lib = library();
  return lib.handle ? reinterpret_cast<Function*>(dlsym(lib.handle, name)) : nullptr;
}

}  // namespace

// One forwarder per function: the pointer is looked up once (a thread-safe static), then each call
// costs one indirect jump.
#define SD_CUBLAS_FORWARD(name, params, args)                                                   \
  extern "C" cublasStatus_t CUBLASWINAPI name params {                                          \
    static decltype(&name) const function = find<decltype(name)>(#name);                          \
    return function ? function args : CUBLAS_STATUS_NOT_INITIALIZED;                            \
  }

SD_CUBLAS_FORWARD(cublasCreate_v2, (cublasHandle_t * handle), (handle))
SD_CUBLAS_FORWARD(cublasDestroy_v2, (cublasHandle_t handle), (handle))
SD_CUBLAS_FORWARD(cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t stream), (handle, stream))
SD_CUBLAS_FORWARD(cublasGetStream_v2, (cublasHandle_t handle, cudaStream_t * stream), (handle, stream))
SD_CUBLAS_FORWARD(cublasSetPointerMode_v2, (cublasHandle_t handle, cublasPointerMode_t mode), (handle, mode))
SD_CUBLAS_FORWARD(cublasSetMathMode, (cublasHandle_t handle, cublasMath_t mode), (handle, mode))
SD_CUBLAS_FORWARD(cublasGetMathMode, (cublasHandle_t handle, cublasMath_t * mode), (handle, mode))
SD_CUBLAS_FORWARD(cublasSetWorkspace_v2, (cublasHandle_t handle, void* workspace, size_t bytes),
                  (handle, workspace, bytes))
SD_CUBLAS_FORWARD(cublasGetProperty, (libraryPropertyType type, int* value), (type, value))
SD_CUBLAS_FORWARD(cublasSgemm_v2,
                  (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                   const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta, float* C,
                   int ldc),
                  (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc))

// The two status texts, for error messages: the library's own when it is loaded; without it, the
// status's number and, for the string, why the library is missing.
extern "C" const char* CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
  static decltype(&cublasGetStatusName) const function = find<decltype(cublasGetStatusName)>("cublasGetStatusName");
  if (function) return function(status);
  return status == CUBLAS_STATUS_NOT_INITIALIZED ? "CUBLAS_STATUS_NOT_INITIALIZED" : "CUBLAS_STATUS (cuBLAS not loaded)";
}

extern "C" const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  static decltype(&cublasGetStatusString) const function = find<decltype(cublasGetStatusString)>("cublasGetStatusString");
  return function ? function(status) : library().why_not.c_str();
}
