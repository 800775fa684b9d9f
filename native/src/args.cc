#include "args.h"

#include <cmath>

namespace eddy::args {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

bool Fail(Napi::Env env, bool range, const std::string& message) {
  if (range) {
    Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  } else {
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  }
  return false;
}

bool Integer(Napi::Env env, const Napi::Value& value, const char* name, double max, double* out) {
  if (!value.IsNumber()) return Fail(env, false, std::string(name) + " must be a number");
  double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max && std::floor(d) == d)) {
    return Fail(env, true, std::string(name) + " must be an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)) +
                               ", got " + value.ToString().Utf8Value());
  }
  *out = d;
  return true;
}

}  // namespace

bool Index(Napi::Env env, const Napi::Value& value, const char* name, uint64_t* out) {
  double d;
  if (!Integer(env, value, name, kMaxSafeInteger, &d)) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

bool Uint32(Napi::Env env, const Napi::Value& value, const char* name, uint32_t* out) {
  double d;
  if (!Integer(env, value, name, 4294967295.0, &d)) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

bool Uint8Array(Napi::Env env, const Napi::Value& value, const char* name, Bytes* out) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return Fail(env, false, std::string(name) + " must be a Uint8Array");
  }
  auto array = value.As<Napi::Uint8Array>();
  out->data = array.Data();
  out->length = array.ByteLength();
  return true;
}

bool Path(Napi::Env env, const Napi::Value& value, const char* name, std::string* out) {
  if (!value.IsString()) return Fail(env, false, std::string(name) + " must be a string");
  *out = value.As<Napi::String>().Utf8Value();
  if (out->empty() || out->find('\0') != std::string::npos) {
    return Fail(env, false, std::string(name) + " must be a non-empty string without NUL characters");
  }
  return true;
}

bool Boolean(Napi::Env env, const Napi::Value& value, const char* name, bool* out) {
  if (!value.IsBoolean()) return Fail(env, false, std::string(name) + " must be a boolean");
  *out = value.As<Napi::Boolean>().Value();
  return true;
}

bool Range(Napi::Env env, uint64_t from, uint64_t to, size_t size) {
  if (from <= to && to <= size) return true;
  return Fail(env, true, "range [" + std::to_string(from) + ", " + std::to_string(to) +
                             ") is outside the mapping of " + std::to_string(size) + " bytes");
}

}  // namespace eddy::args
