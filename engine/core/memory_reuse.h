#pragma once
// Keeps the large host buffers that a training step frees within the process, for the next step to
// reuse. The CPU reference allocates a step's activations and gradients afresh at every step
// (megabytes each: 8 MiB per tensor for ResNet-110 at batch 128), and so do the host copies of
// device tensors. glibc's malloc serves blocks that large from mmap and unmaps them when freed, so
// every step paid the kernel for fresh pages: page faults and zeroing were a third of the CPU time of
// a ResNet-110 step on the CPU (24.8 -> 15.5 CPU s for the emulated ResNet-110 step test, 725 000 ->
// 255 000 page faults). Called first by every program and test program; peak memory is unchanged
// (what is kept is what the previous step used). A no-op where the C library is not glibc, and
// under the sanitizers' allocators, which do not take these settings.
namespace sd {

void keep_freed_memory_for_reuse();

}  // namespace sd
