// System calls that tests can make fail on demand (see injectFault in
// src/native/binding.ts). Every wrapper returns 0 on success or an errno value.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace eddy::faults {

enum class Operation { kOpen, kFallocate, kMmap, kMsync, kFsync, kCount };

bool ParseOperation(const std::string& name, Operation* out);

// After `afterCalls` more successful calls of `op`, every call fails with `err`.
void Inject(Operation op, int err, uint64_t afterCalls);
void ClearAll();

int Open(const char* path, int flags, mode_t mode, int* fd);
int Fallocate(int fd, size_t length);
int Mmap(int fd, size_t length, void** addr);
int Msync(void* addr, size_t length);
int Fsync(int fd);

}  // namespace eddy::faults
