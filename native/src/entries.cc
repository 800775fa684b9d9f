#include "entries.h"

#include <cstring>

namespace eddy::entries {
namespace {

template <typename T>
T LoadLE(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if constexpr (sizeof v == 4) v = static_cast<T>(__builtin_bswap32(static_cast<uint32_t>(v)));
  if constexpr (sizeof v == 8) v = static_cast<T>(__builtin_bswap64(static_cast<uint64_t>(v)));
#endif
  return v;
}

int64_t Key(const uint8_t* entry, KeyType type) {
  return type == KeyType::kU32 ? LoadLE<uint32_t>(entry) : LoadLE<int64_t>(entry);
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

int64_t Floor(const uint8_t* base, size_t entryBytes, size_t count, KeyType type, int64_t key) {
  size_t lo = 0, hi = count;  // the answer's successor lies in [lo, hi]
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (Key(base + mid * entryBytes, type) <= key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return static_cast<int64_t>(lo) - 1;
}

size_t CountValid(const uint8_t* base, size_t entryBytes, size_t capacity, KeyType type) {
  const size_t valueOffset = KeyBytes(type);
  int64_t previousKey = 0;
  uint32_t previousValue = 0;
  size_t i = 0;
  for (; i < capacity; i++) {
    const uint8_t* entry = base + i * entryBytes;
    if (AllZero(entry, entryBytes)) break;
    int64_t key = Key(entry, type);
    uint32_t value = LoadLE<uint32_t>(entry + valueOffset);
    if (i > 0 && (key <= previousKey || value <= previousValue)) break;
    previousKey = key;
    previousValue = value;
  }
  return i;
}

std::string LayoutProblem(size_t mappingBytes, uint64_t start, uint64_t entryBytes, KeyType type,
                          size_t valueBytes) {
  if (entryBytes < valueBytes + KeyBytes(type)) {
    return "entryBytes " + std::to_string(entryBytes) + " is too small for the key type";
  }
  if (start > mappingBytes) return "start " + std::to_string(start) + " is past the end of the mapping";
  return "";
}

uint64_t EntriesThatFit(size_t mappingBytes, uint64_t start, uint64_t entryBytes) {
  return (mappingBytes - start) / entryBytes;
}

int64_t ClampKey(double key) {
  if (key >= 9223372036854775808.0) return INT64_MAX;
  if (key < -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(key);
}

}  // namespace eddy::entries
