// Registers the module: the functions of NativeAddon in src/native/binding.ts
// and the MappedFile class.
#include <fcntl.h>
#include <sys/file.h>
#include <napi.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "args.h"
#include "crc32c.h"
#include "durable_image.h"
#include "errors.h"
#include "faults.h"
#include "mapped_file.h"

namespace eddy {
namespace {

void JS_init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value storageError = info[0].IsObject() ? info[0].As<Napi::Object>().Get("StorageError") : env.Undefined();
  if (env.IsExceptionPending()) return;
  if (!storageError.IsFunction()) {
    Napi::TypeError::New(env, "init expects { StorageError }").ThrowAsJavaScriptException();
    return;
  }
  SetStorageErrorClass(env, storageError.As<Napi::Function>());
  // Past RLIMIT_FSIZE the kernel sends SIGXFSZ, which kills the process by
  // default; ignored, the call fails with EFBIG and becomes FILE_TOO_LARGE.
  std::signal(SIGXFSZ, SIG_IGN);
}

template <uint32_t (*Extend)(uint32_t, const uint8_t*, size_t)>
Napi::Value JS_crc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  args::Bytes bytes;
  uint32_t seed;
  if (!args::Uint8Array(env, info[0], "bytes", &bytes) || !args::Uint32(env, info[1], "seed", &seed)) {
    return env.Undefined();
  }
  return Napi::Number::New(env, Extend(seed, bytes.data, bytes.length));
}

Napi::Value JS_crc32cImplementation(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), crc32c::Implementation());
}

// fsync of a directory: 0 or the errno, with the call that failed in *syscall.
int SyncDirectory(const std::string& path, const char** syscall) {
  int fd;
  if (int err = faults::Open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, &fd)) {
    *syscall = "open";
    return err;
  }
  int err = faults::Fsync(fd);
  close(fd);
  *syscall = "fsync";
  return err;
}

void JS_syncDirectory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!args::Path(env, info[0], "dirPath", &path)) return;
  const char* syscall = nullptr;
  if (int err = SyncDirectory(path, &syscall)) ThrowSystemError(env, ErrorDetail{err, syscall, path});
}

// Runs a file-system call on the libuv pool and settles a promise: undefined,
// or the typed error of the errno it returned (with the call that failed).
class FileWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<int(const std::string& path, const char** syscall)>;

  FileWorker(Napi::Env env, const char* name, std::string path, Work work)
      : Napi::AsyncWorker(env, name),
        path_(std::move(path)),
        work_(std::move(work)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  static Napi::Value Queue(Napi::Env env, const char* name, std::string path, Work work) {
    auto* worker = new FileWorker(env, name, std::move(path), std::move(work));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Napi::AsyncWorker::Queue();
    return promise;
  }

 protected:
  void Execute() override { err_ = work_(path_, &syscall_); }

  void OnOK() override {
    if (err_ == 0) {
      deferred_.Resolve(Env().Undefined());
    } else {
      deferred_.Reject(NewSystemError(Env(), ErrorDetail{err_, syscall_, path_}));
    }
  }

 private:
  std::string path_;
  Work work_;
  Napi::Promise::Deferred deferred_;
  const char* syscall_ = nullptr;
  int err_ = 0;
};

// A directory fsync can wait on a journal commit that writes back other
// files' data: off the JS thread when the caller can wait.
Napi::Value JS_syncDirectoryAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!args::Path(env, info[0], "dirPath", &path)) return env.Undefined();
  return FileWorker::Queue(env, "eddy:syncDirectory", std::move(path), SyncDirectory);
}

// Creates a file of `size` real blocks whose first page is already in the page
// cache, so that mapping it and writing its header later costs no journal wait.
// Run ahead of need on the libuv pool: on ext4 the first store into a
// preallocated ("unwritten") extent waits on the journal, measured here at
// 1 to 4 ms, which would otherwise stall the append that rolls the segment.
int Preallocate(const std::string& path, size_t size, const char** syscall) {
  int fd;
  if (int err = faults::Open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644, &fd)) {
    *syscall = "open";
    return err;
  }
  int err = faults::Fallocate(fd, size);
  *syscall = "fallocate";
  if (err == 0) {
    static const uint8_t zeros[4096] = {};
    size_t length = size < sizeof zeros ? size : sizeof zeros;
    ssize_t written;
    do {
      written = pwrite(fd, zeros, length, 0);
    } while (written < 0 && errno == EINTR);
    *syscall = "pwrite";
    err = written < 0 ? errno : (static_cast<size_t>(written) == length ? 0 : EIO);
  }
  close(fd);
  if (err != 0) unlink(path.c_str());
  return err;
}

Napi::Value JS_preallocateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  uint64_t size;
  if (!args::Path(env, info[0], "path", &path) || !args::Index(env, info[1], "sizeBytes", &size)) {
    return env.Undefined();
  }
  if (size == 0) {
    Napi::RangeError::New(env, "sizeBytes must be positive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return FileWorker::Queue(env, "eddy:preallocate", std::move(path),
                           [size](const std::string& file, const char** syscall) {
                             return Preallocate(file, static_cast<size_t>(size), syscall);
                           });
}

// Takes an exclusive advisory lock on `path` (created if missing) for as long
// as the returned descriptor stays open; the kernel drops it when the process
// dies, however it dies. Two opens of one log, in one process or two, would
// otherwise both write to it.
Napi::Value JS_lockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!args::Path(env, info[0], "path", &path)) return env.Undefined();
  int fd;
  if (int err = faults::Open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644, &fd)) {
    ThrowSystemError(env, ErrorDetail{err, "open", path});
    return env.Undefined();
  }
  int result;
  do {
    result = flock(fd, LOCK_EX | LOCK_NB);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      ThrowStorageError(env, "LOCKED", path + " is locked: another process (or another open of the same log) uses it",
                        ErrorDetail{err, "flock", path});
    } else {
      ThrowSystemError(env, ErrorDetail{err, "flock", path});
    }
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// Releases a lock taken by lockFile.
void JS_unlockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd;
  if (!args::Uint32(env, info[0], "fd", &fd)) return;
  close(static_cast<int>(fd));
}

void JS_injectFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faults::Operation op;
  if (!info[0].IsString() || !faults::ParseOperation(info[0].As<Napi::String>().Utf8Value(), &op)) {
    Napi::TypeError::New(env, "operation must be one of 'open', 'fallocate', 'mmap', 'msync', 'fsync'")
        .ThrowAsJavaScriptException();
    return;
  }
  int err = info[1].IsString() ? ErrnoFromName(info[1].As<Napi::String>().Utf8Value()) : 0;
  if (err == 0) {
    Napi::TypeError::New(env, "errnoName must be an errno name such as 'ENOSPC'").ThrowAsJavaScriptException();
    return;
  }
  uint64_t afterCalls;
  if (!args::Index(env, info[2], "afterCalls", &afterCalls)) return;
  faults::Inject(op, err, afterCalls);
}

void JS_clearFaults(const Napi::CallbackInfo&) { faults::ClearAll(); }

// A failed durable_image call: its system error, or an Error saying what was misused.
void ThrowImageOutcome(Napi::Env env, const durable_image::Outcome& outcome) {
  if (outcome.err != 0) {
    ThrowSystemError(env, ErrorDetail{outcome.err, outcome.syscall, outcome.path});
  } else {
    Napi::Error::New(env, outcome.problem).ThrowAsJavaScriptException();
  }
}

void JS_startDurableImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string root, image;
  uint64_t cutAtSync = 0;
  if (!args::Path(env, info[0], "rootDir", &root) || !args::Path(env, info[1], "imageDir", &image) ||
      (!info[2].IsUndefined() && !args::Index(env, info[2], "cutAtSync", &cutAtSync))) {
    return;
  }
  durable_image::Outcome outcome = durable_image::Start(root, image, cutAtSync);
  if (!outcome.ok()) ThrowImageOutcome(env, outcome);
}

void JS_stopDurableImage(const Napi::CallbackInfo&) { durable_image::Stop(); }

Napi::Value JS_copyDurableImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string image, destination;
  uint64_t seed;
  if (!args::Path(env, info[0], "imageDir", &image) || !args::Path(env, info[1], "destinationDir", &destination) ||
      !args::Index(env, info[2], "seed", &seed)) {
    return env.Undefined();
  }
  durable_image::CopyStats stats;
  durable_image::Outcome outcome = durable_image::Copy(image, destination, seed, &stats);
  if (!outcome.ok()) {
    ThrowImageOutcome(env, outcome);
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("files", static_cast<double>(stats.files));
  result.Set("directories", static_cast<double>(stats.directories));
  result.Set("inFlightSyncs", static_cast<double>(stats.inFlightSyncs));
  result.Set("sectorsKept", static_cast<double>(stats.sectorsKept));
  result.Set("sectorsLost", static_cast<double>(stats.sectorsLost));
  result.Set("listingsKept", static_cast<double>(stats.listingsKept));
  result.Set("listingsLost", static_cast<double>(stats.listingsLost));
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New<JS_init>(env, "init"));
  exports.Set("crc32c", Napi::Function::New<JS_crc32c<crc32c::Extend>>(env, "crc32c"));
  exports.Set("crc32cSoftware", Napi::Function::New<JS_crc32c<crc32c::ExtendSoftware>>(env, "crc32cSoftware"));
  exports.Set("crc32cImplementation", Napi::Function::New<JS_crc32cImplementation>(env, "crc32cImplementation"));
  exports.Set("syncDirectory", Napi::Function::New<JS_syncDirectory>(env, "syncDirectory"));
  exports.Set("syncDirectoryAsync", Napi::Function::New<JS_syncDirectoryAsync>(env, "syncDirectoryAsync"));
  exports.Set("preallocateAsync", Napi::Function::New<JS_preallocateAsync>(env, "preallocateAsync"));
  exports.Set("lockFile", Napi::Function::New<JS_lockFile>(env, "lockFile"));
  exports.Set("unlockFile", Napi::Function::New<JS_unlockFile>(env, "unlockFile"));
  exports.Set("injectFault", Napi::Function::New<JS_injectFault>(env, "injectFault"));
  exports.Set("clearFaults", Napi::Function::New<JS_clearFaults>(env, "clearFaults"));
  exports.Set("startDurableImage", Napi::Function::New<JS_startDurableImage>(env, "startDurableImage"));
  exports.Set("stopDurableImage", Napi::Function::New<JS_stopDurableImage>(env, "stopDurableImage"));
  exports.Set("copyDurableImage", Napi::Function::New<JS_copyDurableImage>(env, "copyDurableImage"));
  exports.Set("MappedFile", MappedFile::Define(env));
  return exports;
}

}  // namespace
}  // namespace eddy

// The macro pastes the name into an identifier, so it must be unqualified.
using eddy::Init;
NODE_API_MODULE(eddy_native, Init)
