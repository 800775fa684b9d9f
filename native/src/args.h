// Argument checks shared by the module functions and MappedFile. TypeScript
// validates first; these re-check so that no JS value can make C++ touch
// memory outside a mapping. Each returns false with a TypeError or
// RangeError pending.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace eddy::args {

struct Bytes {
  const uint8_t* data = nullptr;
  size_t length = 0;
};

// A non-negative integer no larger than 2^53 - 1.
bool Index(Napi::Env env, const Napi::Value& value, const char* name, uint64_t* out);
// An integer in [0, 2^32).
bool Uint32(Napi::Env env, const Napi::Value& value, const char* name, uint32_t* out);
// A Uint8Array (a Buffer is one), honouring its byteOffset and byteLength.
bool Uint8Array(Napi::Env env, const Napi::Value& value, const char* name, Bytes* out);
// A string without NUL characters, which a C path would silently cut short.
bool Path(Napi::Env env, const Napi::Value& value, const char* name, std::string* out);
bool Boolean(Napi::Env env, const Napi::Value& value, const char* name, bool* out);
// 0 <= from <= to <= size.
bool Range(Napi::Env env, uint64_t from, uint64_t to, size_t size);

}  // namespace eddy::args
