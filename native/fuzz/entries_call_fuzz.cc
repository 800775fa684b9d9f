// MappedFile.floorEntry and MappedFile.countEntries as the addon runs them
// (JS_floorEntry and JS_countEntries in native/src/mapped_file.cc), without
// N-API: the argument checks (entries::LayoutProblem, EntriesThatFit,
// ClampKey), then the search, over a "mapping" holding exactly the file's
// bytes. TypeScript passes well-formed arguments today; this proves that no
// arguments the C++ accepts can make it read outside the mapping, whatever
// the file holds, which is the promise of args.h.
//
// Input: a flags byte (bit 0 the key type, bit 1 floorEntry rather than
// countEntries), then start, entryBytes and count (u64 each, reduced to the
// integers args::Index lets through), the key (the bits of a double, as JS
// passes it), then the file's bytes: the mapping.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "entries.h"
#include "fuzz_input.h"

namespace {

// args::Index accepts integers from 0 to 2^53 - 1; a reduction keeps the
// small values (which are the interesting ones) as they are.
constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;
uint64_t Index(uint64_t raw) { return raw % (kMaxSafeInteger + 1); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eddy;
  fuzz::Input input(data, size);
  uint8_t flags = input.Byte();
  entries::KeyType type = (flags & 1) ? entries::KeyType::kI64 : entries::KeyType::kU32;
  bool floor = (flags & 2) != 0;
  uint64_t start = Index(input.Take(8));
  uint64_t entryBytes = Index(input.Take(8));
  uint64_t count = Index(input.Take(8));
  uint64_t keyBits = input.Take(8);
  double key;
  std::memcpy(&key, &keyBits, sizeof key);
  fuzz::Exact mapping(input.rest(), input.restSize());

  // Each entry holds a u32 value after its key for countEntries; floorEntry reads keys only.
  std::string problem = entries::LayoutProblem(mapping.size(), start, entryBytes, type, floor ? 0 : 4);
  if (!problem.empty()) return 0;  // a RangeError: nothing read
  FUZZ_CHECK(entryBytes >= entries::KeyBytes(type) && start <= mapping.size());
  uint64_t fit = entries::EntriesThatFit(mapping.size(), start, entryBytes);
  FUZZ_CHECK(fit <= (mapping.size() - start) / entryBytes);

  if (floor) {
    if (!(std::floor(key) == key)) return 0;  // KeyArg's TypeError
    int64_t clamped = entries::ClampKey(key);
    // The clamp must keep the order of keys (or the floor of a stored key
    // would change) and be exact wherever int64 can hold the double.
    if (key >= -9223372036854775808.0 && key < 9223372036854775808.0) {
      FUZZ_CHECK(static_cast<double>(clamped) == key);
    } else {
      FUZZ_CHECK(clamped == (key > 0 ? INT64_MAX : INT64_MIN));
    }
    if (count > fit) return 0;  // the overrun RangeError
    int64_t found = entries::Floor(mapping.data() + start, entryBytes, count, type, clamped);
    FUZZ_CHECK(found >= -1 && found < static_cast<int64_t>(count));
  } else {
    size_t capacity = count < fit ? count : fit;
    size_t valid = entries::CountValid(mapping.data() + start, entryBytes, capacity, type);
    FUZZ_CHECK(valid <= capacity);
  }
  return 0;
}
