// Searches over arrays of fixed-size index entries: a little-endian key (u32
// or signed i64) at offset 0, then a little-endian u32 value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace eddy::entries {

enum class KeyType { kU32, kI64 };

inline size_t KeyBytes(KeyType type) { return type == KeyType::kU32 ? 4 : 8; }

// Index of the last of `count` entries whose key is <= key, or -1. Both key
// types compare as int64, which holds every u32 exactly.
int64_t Floor(const uint8_t* base, size_t entryBytes, size_t count, KeyType type, int64_t key);

// Length of the prefix (at most `capacity` entries) whose entries are not all
// zero bytes and strictly increase in both key and value.
size_t CountValid(const uint8_t* base, size_t entryBytes, size_t capacity, KeyType type);

// The checks MappedFile makes before a search reads a mapping of
// `mappingBytes`, kept free of N-API so that native/fuzz/ runs them as the
// addon does. Entries of `entryBytes` at `start`, each a key of `type` then at
// least `valueBytes` more: "" when they may be searched, else why not (the
// addon throws it as a RangeError).
std::string LayoutProblem(size_t mappingBytes, uint64_t start, uint64_t entryBytes, KeyType type,
                          size_t valueBytes);

// Whole entries between `start` and the end of the mapping, for a layout
// LayoutProblem accepted (so start <= mappingBytes and entryBytes > 0).
uint64_t EntriesThatFit(size_t mappingBytes, uint64_t start, uint64_t entryBytes);

// An integral key as int64: keys beyond the int64 range clamp, which leaves
// the floor of every stored key unchanged.
int64_t ClampKey(double key);

}  // namespace eddy::entries
