// Shared by the libFuzzer harnesses of native/fuzz/: reading a harness's
// parameters off the front of an input, handing the parser an allocation of
// exactly the bytes it may read, and failing loudly when a property breaks.
//
// Parameters come first and the bytes under test last, so a seed is a few
// parameter bytes followed by a slice of a real file (scripts/fuzz-native-seeds.mjs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace eddy::fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // Little-endian, whatever the host; missing bytes read as zero, so every
  // input is usable, however short.
  uint64_t Take(size_t bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; i++) {
      if (at_ < size_) value |= static_cast<uint64_t>(data_[at_++]) << (8 * i);
    }
    return value;
  }
  uint8_t Byte() { return static_cast<uint8_t>(Take(1)); }

  const uint8_t* rest() const { return data_ + at_; }
  size_t restSize() const { return size_ - at_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

// A heap copy of `size` bytes at `misalign` (0..7) bytes past an aligned
// allocation that ends where the bytes end: AddressSanitizer reports a read
// of even one byte past them, and odd addresses reach the parsers as mmap'd
// file offsets do (entries start 64 bytes into a page, batches anywhere).
class Exact {
 public:
  Exact(const uint8_t* bytes, size_t size, size_t misalign = 0)
      : storage_(new uint8_t[misalign + size]), data_(storage_.get() + misalign), size_(size) {
    if (size > 0) std::memcpy(data_, bytes, size);
  }
  const uint8_t* data() const { return data_; }
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<uint8_t[]> storage_;
  uint8_t* data_;
  size_t size_;
};

// A broken property is a crash to libFuzzer (abort is a deadly signal to it),
// so the input that broke it is saved and the run fails.
[[noreturn]] inline void Fail(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
  std::abort();
}

}  // namespace eddy::fuzz

#define FUZZ_CHECK(condition) \
  ((condition) ? static_cast<void>(0) : ::eddy::fuzz::Fail(__FILE__, __LINE__, #condition))
