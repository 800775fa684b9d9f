// errno -> StorageError (src/native/errors.ts). The class is handed over by
// init() and kept per environment, so each worker thread has its own.
#pragma once

#include <napi.h>

#include <string>

namespace eddy {

struct ErrorDetail {
  int err = 0;                    // errno value; 0 when the error is not from a system call
  const char* syscall = nullptr;  // omitted when null
  std::string path;               // omitted when empty
};

void SetStorageErrorClass(Napi::Env env, Napi::Function storageError);

// 'ENOSPC' for ENOSPC, 'E<n>' for errnos outside the table.
std::string ErrnoName(int err);
// The inverse of ErrnoName; 0 if the name is not recognised.
int ErrnoFromName(const std::string& name);

// Never empty and leaves no exception pending: if constructing the
// StorageError throws, that exception is returned instead.
Napi::Value NewStorageError(Napi::Env env, const char* code, const std::string& message,
                            const ErrorDetail& detail);
// `<syscall> failed for <path>: <strerror> (<ERRNO>)`, with the code for the errno.
Napi::Value NewSystemError(Napi::Env env, const ErrorDetail& detail);

void ThrowStorageError(Napi::Env env, const char* code, const std::string& message,
                       const ErrorDetail& detail);
void ThrowSystemError(Napi::Env env, const ErrorDetail& detail);

}  // namespace eddy
