// What the entry harnesses share: the layout byte that opens their inputs and
// a reading of entries written independently of entries.cc, to check it by.
#pragma once

#include <cstddef>
#include <cstdint>

#include "entries.h"

namespace eddy::fuzz {

struct IndexLayout {
  entries::KeyType type;
  size_t entryBytes;
};

// Bit 0: the key type (0 u32 as in .index files, 1 i64 as in .timeindex
// files); bits 1-3: padding after the u32 value. The log uses no padding, but
// the addon accepts any entryBytes that holds key and value, so the fuzzer
// tries those too. Layout byte 0x00 is the offset index, 0x01 the time index.
inline IndexLayout LayoutFrom(uint8_t byte) {
  entries::KeyType type = (byte & 1) ? entries::KeyType::kI64 : entries::KeyType::kU32;
  return {type, entries::KeyBytes(type) + 4 + ((byte >> 1) & 7)};
}

inline uint64_t ReadLE(const uint8_t* p, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; i++) value |= static_cast<uint64_t>(p[i]) << (8 * i);
  return value;
}

// The key of an entry as the index files define it (docs/storage-format.md):
// an unsigned 32-bit relative offset or a signed 64-bit timestamp.
inline int64_t KeyOf(const uint8_t* entry, entries::KeyType type) {
  if (type == entries::KeyType::kU32) return static_cast<int64_t>(ReadLE(entry, 4));
  return static_cast<int64_t>(ReadLE(entry, 8));
}

inline uint32_t ValueOf(const uint8_t* entry, entries::KeyType type) {
  return static_cast<uint32_t>(ReadLE(entry + entries::KeyBytes(type), 4));
}

// Whether entry `i` may follow the entries before it in a valid prefix.
inline bool Continues(const uint8_t* base, size_t entryBytes, size_t i, entries::KeyType type) {
  const uint8_t* entry = base + i * entryBytes;
  bool zero = true;
  for (size_t b = 0; b < entryBytes; b++) zero = zero && entry[b] == 0;
  if (zero) return false;
  if (i == 0) return true;
  const uint8_t* previous = entry - entryBytes;
  return KeyOf(entry, type) > KeyOf(previous, type) && ValueOf(entry, type) > ValueOf(previous, type);
}

}  // namespace eddy::fuzz
