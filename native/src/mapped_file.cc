#include "mapped_file.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "args.h"
#include "crc32c.h"
#include "entries.h"
#include "errors.h"

namespace eddy {
namespace {

// What a failed Mapping::Sync becomes in JavaScript.
Napi::Value FlushError(Napi::Env env, int result, int poisonErrno, const std::string& path) {
  if (result == Mapping::kPoisoned) {
    ErrorDetail detail{poisonErrno, "msync", path};
    return NewStorageError(env, "FSYNC_FAILED",
                           "an earlier flush of " + path + " failed (" + ErrnoName(poisonErrno) +
                               "); the file accepts no more writes or flushes",
                           detail);
  }
  return NewSystemError(env, ErrorDetail{result, "msync", path});
}

// Holds the mapping so that close() (or GC of the handle) while the flush is
// queued or running cannot unmap the range under msync.
class FlushWorker : public Napi::AsyncWorker {
 public:
  FlushWorker(Napi::Env env, std::shared_ptr<Mapping> mapping, std::string path, size_t from, size_t to)
      : Napi::AsyncWorker(env, "eddy:flush"),
        mapping_(std::move(mapping)),
        path_(std::move(path)),
        from_(from),
        to_(to),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { result_ = mapping_->Sync(from_, to_); }

  void OnOK() override {
    if (result_ == 0) {
      deferred_.Resolve(Env().Undefined());
    } else {
      deferred_.Reject(FlushError(Env(), result_, mapping_->poisonErrno(), path_));
    }
  }

 private:
  std::shared_ptr<Mapping> mapping_;
  std::string path_;
  size_t from_;
  size_t to_;
  Napi::Promise::Deferred deferred_;
  int result_ = 0;
};

bool KeyTypeArg(Napi::Env env, const Napi::Value& value, entries::KeyType* out) {
  std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (name == "u32") {
    *out = entries::KeyType::kU32;
  } else if (name == "i64") {
    *out = entries::KeyType::kI64;
  } else {
    Napi::TypeError::New(env, "keyType must be 'u32' or 'i64'").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// Any integral number (entries::ClampKey says what becomes of the largest).
bool KeyArg(Napi::Env env, const Napi::Value& value, int64_t* out) {
  double d = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
  if (!(std::floor(d) == d)) {
    Napi::TypeError::New(env, "key must be an integer").ThrowAsJavaScriptException();
    return false;
  }
  *out = entries::ClampKey(d);
  return true;
}

// Entries [start, start + count * entryBytes) must lie inside the mapping.
bool EntriesArgs(const Napi::CallbackInfo& info, size_t size, uint64_t* start, uint64_t* entryBytes,
                 uint64_t* count, entries::KeyType* type, size_t valueBytes) {
  Napi::Env env = info.Env();
  if (!args::Index(env, info[0], "start", start) || !args::Index(env, info[1], "entryBytes", entryBytes) ||
      !args::Index(env, info[2], "count", count) || !KeyTypeArg(env, info[3], type)) {
    return false;
  }
  std::string problem = entries::LayoutProblem(size, *start, *entryBytes, *type, valueBytes);
  if (!problem.empty()) {
    Napi::RangeError::New(env, problem).ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

}  // namespace

Napi::Function MappedFile::Define(Napi::Env env) {
  return DefineClass(env, "MappedFile",
                     {
                         InstanceAccessor<&MappedFile::JS_sizeBytes>("sizeBytes"),
                         InstanceAccessor<&MappedFile::JS_writePosition, &MappedFile::JS_setWritePosition>(
                             "writePosition"),
                         InstanceAccessor<&MappedFile::JS_closed>("closed"),
                         InstanceMethod<&MappedFile::JS_buffer>("buffer"),
                         InstanceMethod<&MappedFile::JS_append>("append"),
                         InstanceMethod<&MappedFile::JS_appendBatch>("appendBatch"),
                         InstanceMethod<&MappedFile::JS_zero>("zero"),
                         InstanceMethod<&MappedFile::JS_flush>("flush"),
                         InstanceMethod<&MappedFile::JS_flushAsync>("flushAsync"),
                         InstanceMethod<&MappedFile::JS_floorEntry>("floorEntry"),
                         InstanceMethod<&MappedFile::JS_countEntries>("countEntries"),
                         InstanceMethod<&MappedFile::JS_crc32c>("crc32c"),
                         InstanceMethod<&MappedFile::JS_closeDescriptor>("closeDescriptor"),
                         InstanceMethod<&MappedFile::JS_readAhead>("readAhead"),
                         InstanceMethod<&MappedFile::JS_releaseResident>("releaseResident"),
                         InstanceMethod<&MappedFile::JS_close>("close"),
                     });
}

MappedFile::MappedFile(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MappedFile>(info) {
  Napi::Env env = info.Env();
  bool create;
  uint64_t size = 0;
  if (!args::Path(env, info[0], "path", &path_) || !args::Boolean(env, info[2], "create", &create)) return;
  if (create) {
    if (!args::Index(env, info[1], "sizeBytes", &size)) return;
    if (size == 0) {
      Napi::RangeError::New(env, "sizeBytes must be positive").ThrowAsJavaScriptException();
      return;
    }
  }
  MapResult result = Mapping::Map(path_, size, create);
  if (result.err == Mapping::kEmptyFile) {
    ThrowStorageError(env, "STORAGE_ERROR", "mmap failed for " + path_ + ": empty file",
                      ErrorDetail{0, result.syscall, path_});
    return;
  }
  if (result.err != 0) {
    ThrowSystemError(env, ErrorDetail{result.err, result.syscall, path_});
    return;
  }
  mapping_ = std::move(result.mapping);
  size_ = mapping_->size();
}

Mapping* MappedFile::Live(Napi::Env env) {
  if (!mapping_) {
    ThrowStorageError(env, "CLOSED", "mapped file " + path_ + " is closed", ErrorDetail{0, nullptr, path_});
  }
  return mapping_.get();
}

bool MappedFile::RangeArgs(const Napi::CallbackInfo& info, size_t first, uint64_t* from, uint64_t* to) {
  Napi::Env env = info.Env();
  return args::Index(env, info[first], "from", from) && args::Index(env, info[first + 1], "to", to) &&
         args::Range(env, *from, *to, size_);
}

Napi::Value MappedFile::JS_sizeBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(size_));
}

Napi::Value MappedFile::JS_writePosition(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(writePosition_));
}

void MappedFile::JS_setWritePosition(const Napi::CallbackInfo& info, const Napi::Value& value) {
  Napi::Env env = info.Env();
  uint64_t position;
  if (Live(env) == nullptr || !args::Index(env, value, "writePosition", &position)) return;
  if (position > size_) {
    Napi::RangeError::New(env, "writePosition " + std::to_string(position) + " is past the end of the mapping (" +
                                   std::to_string(size_) + " bytes)")
        .ThrowAsJavaScriptException();
    return;
  }
  writePosition_ = position;
}

Napi::Value MappedFile::JS_closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !mapping_);
}

Napi::Value MappedFile::JS_buffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  if (mapping == nullptr) return env.Undefined();
  // Each buffer owns a reference, so the memory stays mapped for as long as
  // JavaScript can reach it, whatever happens to the handle or the file.
  auto* ref = new std::shared_ptr<Mapping>(mapping_);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, mapping->data(), mapping->size(),
      [](Napi::Env finalizeEnv, void*, std::shared_ptr<Mapping>* hint) {
        Napi::MemoryManagement::AdjustExternalMemory(finalizeEnv, -static_cast<int64_t>((*hint)->size()));
        delete hint;
      },
      ref);
  if (env.IsExceptionPending()) {
    delete ref;  // not adopted: the finalizer never runs for a buffer that was not created
    return env.Undefined();
  }
  // An unreachable buffer is what keeps a deleted segment's disk space in use
  // (the inode lives while mapped): telling V8 its size makes it collect sooner.
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(mapping->size()));
  return buffer;
}

Napi::Value MappedFile::JS_append(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  args::Bytes head, body;
  if (!args::Uint8Array(env, info[0], "head", &head)) return env.Undefined();
  if (!info[1].IsUndefined() && !args::Uint8Array(env, info[1], "body", &body)) return env.Undefined();
  return Append(env, head, body);
}

// One call per batch on the append path: the CRC over the header (less its own
// four bytes), the key and the payload is computed here and stored into the
// header before the copy, where three crc32c calls from JavaScript plus the
// append cost more than the checksum itself for small batches (measured).
Napi::Value MappedFile::JS_appendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  args::Bytes head, body;
  uint32_t crcAt;
  if (!args::Uint8Array(env, info[0], "head", &head) || !args::Uint8Array(env, info[1], "body", &body) ||
      !args::Uint32(env, info[2], "crcAt", &crcAt)) {
    return env.Undefined();
  }
  if (static_cast<size_t>(crcAt) + 4 > head.length) {
    Napi::RangeError::New(env, "crcAt " + std::to_string(crcAt) + " is outside a head of " +
                                   std::to_string(head.length) + " bytes")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t crc = crc32c::Extend(0, head.data, crcAt);
  crc = crc32c::Extend(crc, head.data + crcAt + 4, head.length - crcAt - 4);
  crc = crc32c::Extend(crc, body.data, body.length);
  uint8_t* field = const_cast<uint8_t*>(head.data) + crcAt;
  for (int i = 0; i < 4; i++) field[i] = static_cast<uint8_t>(crc >> (8 * i));
  return Append(env, head, body);
}

Napi::Value MappedFile::Append(Napi::Env env, const args::Bytes& head, const args::Bytes& body) {
  Mapping* mapping = Live(env);
  if (mapping == nullptr) return env.Undefined();
  if (int poisonErrno = mapping->poisonErrno()) {
    napi_throw(env, FlushError(env, Mapping::kPoisoned, poisonErrno, path_));
    return env.Undefined();
  }
  size_t room = size_ - writePosition_;
  if (head.length > room || body.length > room - head.length) {
    Napi::RangeError::New(env, "append of " + std::to_string(head.length + body.length) + " bytes at " +
                                   std::to_string(writePosition_) + " overruns the mapping of " +
                                   std::to_string(size_) + " bytes")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  size_t start = writePosition_;
  if (int err = mapping->Write(start, head.data, head.length, body.data, body.length)) {
    ThrowSystemError(env, ErrorDetail{err, "pwritev", path_});
    return env.Undefined();
  }
  writePosition_ = start + head.length + body.length;
  return Napi::Number::New(env, static_cast<double>(start));
}

Napi::Value MappedFile::JS_zero(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  uint64_t from, to;
  if (mapping == nullptr || !RangeArgs(info, 0, &from, &to)) return env.Undefined();
  std::memset(mapping->data() + from, 0, to - from);
  return env.Undefined();
}

Napi::Value MappedFile::JS_flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  uint64_t from, to;
  if (mapping == nullptr || !RangeArgs(info, 0, &from, &to)) return env.Undefined();
  int result = mapping->Sync(from, to);
  if (result != 0) napi_throw(env, FlushError(env, result, mapping->poisonErrno(), path_));
  return env.Undefined();
}

Napi::Value MappedFile::JS_flushAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t from, to;
  if (Live(env) == nullptr || !RangeArgs(info, 0, &from, &to)) {
    // No N-API call but this one may run while the exception is pending.
    Napi::Value error = env.GetAndClearPendingException().Value();
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(error);
    return deferred.Promise();
  }
  auto* worker = new FlushWorker(env, mapping_, path_, from, to);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value MappedFile::JS_floorEntry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  uint64_t start, entryBytes, count;
  entries::KeyType type;
  int64_t key;
  if (mapping == nullptr || !EntriesArgs(info, size_, &start, &entryBytes, &count, &type, 0) ||
      !KeyArg(env, info[4], &key)) {
    return env.Undefined();
  }
  if (count > entries::EntriesThatFit(size_, start, entryBytes)) {
    Napi::RangeError::New(env, std::to_string(count) + " entries of " + std::to_string(entryBytes) +
                                   " bytes at " + std::to_string(start) + " overrun the mapping of " +
                                   std::to_string(size_) + " bytes")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int64_t index = entries::Floor(mapping->data() + start, entryBytes, count, type, key);
  return Napi::Number::New(env, static_cast<double>(index));
}

Napi::Value MappedFile::JS_countEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  uint64_t start, entryBytes, capacity;
  entries::KeyType type;
  // Each entry holds a u32 value after its key.
  if (mapping == nullptr || !EntriesArgs(info, size_, &start, &entryBytes, &capacity, &type, 4)) {
    return env.Undefined();
  }
  uint64_t fit = entries::EntriesThatFit(size_, start, entryBytes);
  size_t count = entries::CountValid(mapping->data() + start, entryBytes, capacity < fit ? capacity : fit, type);
  return Napi::Number::New(env, static_cast<double>(count));
}

Napi::Value MappedFile::JS_crc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  uint64_t from, to;
  uint32_t seed;
  if (mapping == nullptr || !RangeArgs(info, 0, &from, &to) || !args::Uint32(env, info[2], "seed", &seed)) {
    return env.Undefined();
  }
  return Napi::Number::New(env, crc32c::Extend(seed, mapping->data() + from, to - from));
}

Napi::Value MappedFile::JS_closeDescriptor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  if (mapping != nullptr) mapping->CloseDescriptor();
  return env.Undefined();
}

Napi::Value MappedFile::JS_readAhead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  bool enabled;
  if (mapping == nullptr || !args::Boolean(env, info[0], "enabled", &enabled)) return env.Undefined();
  // Advice only: a kernel that refuses it leaves reads as they were, which is no reason to fail.
  return Napi::Boolean::New(env, mapping->SetReadAhead(enabled) == 0);
}

Napi::Value MappedFile::JS_releaseResident(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Live(env);
  if (mapping != nullptr) mapping->ReleaseResident();
  return env.Undefined();
}

Napi::Value MappedFile::JS_close(const Napi::CallbackInfo& info) {
  // Views may keep the mapping alive long after; they never need the descriptor.
  if (mapping_) mapping_->CloseDescriptor();
  mapping_.reset();
  return info.Env().Undefined();
}

}  // namespace eddy
