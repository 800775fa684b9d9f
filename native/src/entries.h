// Searches over arrays of fixed-size index entries: a little-endian key (u32
// or signed i64) at offset 0, then a little-endian u32 value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace eddy::entries {

enum class KeyType { kU32, kI64 };

inline size_t KeyBytes(KeyType type) { return type == KeyType::kU32 ? 4 : 8; }

// Index of the last of `count` entries whose key is <= key, or -1. Both key
// types compare as int64, which holds every u32 exactly.
int64_t Floor(const uint8_t* base, size_t entryBytes, size_t count, KeyType type, int64_t key);

// Length of the prefix (at most `capacity` entries) whose entries are not all
// zero bytes and strictly increase in both key and value.
size_t CountValid(const uint8_t* base, size_t entryBytes, size_t capacity, KeyType type);

}  // namespace eddy::entries
