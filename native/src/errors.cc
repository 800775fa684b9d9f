#include "errors.h"

#include <cerrno>
#include <cstring>

namespace eddy {
namespace {

struct InstanceData {
  Napi::FunctionReference storageError;
};

#define EDDY_ERRNO(name) {name, #name}
constexpr struct {
  int err;
  const char* name;
} kErrnoNames[] = {
    EDDY_ERRNO(ENOSPC),  EDDY_ERRNO(EDQUOT),     EDDY_ERRNO(EFBIG),       EDDY_ERRNO(EIO),
    EDDY_ERRNO(EACCES),  EDDY_ERRNO(EPERM),      EDDY_ERRNO(EROFS),       EDDY_ERRNO(ENOENT),
    EDDY_ERRNO(EEXIST),  EDDY_ERRNO(EMFILE),     EDDY_ERRNO(ENFILE),      EDDY_ERRNO(ENOMEM),
    EDDY_ERRNO(EINVAL),  EDDY_ERRNO(EBADF),      EDDY_ERRNO(EISDIR),      EDDY_ERRNO(ENOTDIR),
    EDDY_ERRNO(EAGAIN),  EDDY_ERRNO(EOPNOTSUPP), EDDY_ERRNO(ENODEV),      EDDY_ERRNO(EBUSY),
    EDDY_ERRNO(ETXTBSY), EDDY_ERRNO(EXDEV),      EDDY_ERRNO(ENAMETOOLONG), EDDY_ERRNO(ELOOP),
    EDDY_ERRNO(EINTR),
};
#undef EDDY_ERRNO

const char* CodeForErrno(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return "STORAGE_FULL";
    case EFBIG:
      return "FILE_TOO_LARGE";
    case EIO:
      return "IO_ERROR";
    case EACCES:
    case EPERM:
    case EROFS:
      return "PERMISSION_DENIED";
    case ENOENT:
      return "NOT_FOUND";
    case EEXIST:
      return "ALREADY_EXISTS";
    case EMFILE:
    case ENFILE:
      return "TOO_MANY_OPEN_FILES";
    case ENOMEM:
      return "OUT_OF_MEMORY";
    default:
      return "STORAGE_ERROR";
  }
}

}  // namespace

void SetStorageErrorClass(Napi::Env env, Napi::Function storageError) {
  auto* data = env.GetInstanceData<InstanceData>();
  if (data == nullptr) {
    data = new InstanceData();
    env.SetInstanceData(data);
  }
  data->storageError = Napi::Persistent(storageError);
}

std::string ErrnoName(int err) {
  for (const auto& entry : kErrnoNames) {
    if (entry.err == err) return entry.name;
  }
  return "E" + std::to_string(err);
}

int ErrnoFromName(const std::string& name) {
  for (const auto& entry : kErrnoNames) {
    if (name == entry.name) return entry.err;
  }
  if (name.size() < 2 || name.size() > 5 || name[0] != 'E') return 0;
  int err = 0;
  for (size_t i = 1; i < name.size(); i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    err = err * 10 + (name[i] - '0');
  }
  return err;
}

Napi::Value NewStorageError(Napi::Env env, const char* code, const std::string& message,
                            const ErrorDetail& detail) {
  auto* data = env.GetInstanceData<InstanceData>();
  if (data == nullptr || data->storageError.IsEmpty()) {
    return Napi::Error::New(env, message + " (eddy native addon: init() was not called)").Value();
  }
  Napi::Object fields = Napi::Object::New(env);
  if (detail.err != 0) fields.Set("errno", ErrnoName(detail.err));
  if (detail.syscall != nullptr) fields.Set("syscall", detail.syscall);
  if (!detail.path.empty()) fields.Set("path", detail.path);
  Napi::Value error;
  if (!env.IsExceptionPending()) {
    error = data->storageError.New({Napi::String::New(env, code), Napi::String::New(env, message), fields});
  }
  if (env.IsExceptionPending()) return env.GetAndClearPendingException().Value();
  return error;
}

Napi::Value NewSystemError(Napi::Env env, const ErrorDetail& detail) {
  std::string message = std::string(detail.syscall) + " failed for " + detail.path + ": " +
                        std::strerror(detail.err) + " (" + ErrnoName(detail.err) + ")";
  return NewStorageError(env, CodeForErrno(detail.err), message, detail);
}

void ThrowStorageError(Napi::Env env, const char* code, const std::string& message,
                       const ErrorDetail& detail) {
  napi_throw(env, NewStorageError(env, code, message, detail));
}

void ThrowSystemError(Napi::Env env, const ErrorDetail& detail) {
  napi_throw(env, NewSystemError(env, detail));
}

}  // namespace eddy
