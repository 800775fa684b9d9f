// The JavaScript MappedFile class (NativeMappedFile in src/native/binding.ts).
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "args.h"
#include "mapping.h"

namespace eddy {

class MappedFile : public Napi::ObjectWrap<MappedFile> {
 public:
  static Napi::Function Define(Napi::Env env);

  // new MappedFile(path, sizeBytes, create)
  explicit MappedFile(const Napi::CallbackInfo& info);

 private:
  Napi::Value JS_sizeBytes(const Napi::CallbackInfo& info);
  Napi::Value JS_writePosition(const Napi::CallbackInfo& info);
  void JS_setWritePosition(const Napi::CallbackInfo& info, const Napi::Value& value);
  Napi::Value JS_closed(const Napi::CallbackInfo& info);
  Napi::Value JS_buffer(const Napi::CallbackInfo& info);
  Napi::Value JS_append(const Napi::CallbackInfo& info);
  Napi::Value JS_appendBatch(const Napi::CallbackInfo& info);
  Napi::Value JS_zero(const Napi::CallbackInfo& info);
  Napi::Value JS_flush(const Napi::CallbackInfo& info);
  Napi::Value JS_flushAsync(const Napi::CallbackInfo& info);
  Napi::Value JS_floorEntry(const Napi::CallbackInfo& info);
  Napi::Value JS_countEntries(const Napi::CallbackInfo& info);
  Napi::Value JS_crc32c(const Napi::CallbackInfo& info);
  Napi::Value JS_closeDescriptor(const Napi::CallbackInfo& info);
  Napi::Value JS_readAhead(const Napi::CallbackInfo& info);
  Napi::Value JS_releaseResident(const Napi::CallbackInfo& info);
  Napi::Value JS_close(const Napi::CallbackInfo& info);

  // Copies head then body at the write position: the position, or undefined with an error pending.
  Napi::Value Append(Napi::Env env, const args::Bytes& head, const args::Bytes& body);
  // The mapping, or null with a CLOSED StorageError pending.
  Mapping* Live(Napi::Env env);
  // Reads (from, to) at info[first], info[first + 1] and bounds-checks them.
  bool RangeArgs(const Napi::CallbackInfo& info, size_t first, uint64_t* from, uint64_t* to);

  std::string path_;
  std::shared_ptr<Mapping> mapping_;  // null once closed
  size_t size_ = 0;
  size_t writePosition_ = 0;
};

}  // namespace eddy
