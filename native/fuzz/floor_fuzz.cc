// entries::Floor, the binary search behind every lookup by offset or time
// (IndexFile.floor -> MappedFile.floorEntry). It runs over the valid prefix
// CountValid found at open, but the mapping is shared with the file: a bit
// flipped or a page zeroed on disk while the log runs changes the entries
// under it, so it must be safe over any bytes, not only sorted ones.
//
// Input: one layout byte (index_layout.h), the key searched for (i64, little
// endian), then the entries region of an index file.
//
// Checks, over all the entries whatever they hold: the answer is in [-1,
// count) and brackets the key (the entry it names is <= key, the next one is
// > key), which is what a binary search promises even over unsorted data and
// all the TypeScript lookup relies on before it verifies the batch it lands
// on. Over the valid prefix (sorted by construction): the answer equals a
// linear scan, and each stored key (and the value just below it) is found at
// its own entry (and the one before).
#include <cstddef>
#include <cstdint>

#include "entries.h"
#include "fuzz_input.h"
#include "index_layout.h"

namespace {

using eddy::entries::KeyType;

void CheckBrackets(const uint8_t* base, size_t entryBytes, size_t count, KeyType type, int64_t key) {
  int64_t found = eddy::entries::Floor(base, entryBytes, count, type, key);
  FUZZ_CHECK(found >= -1 && found < static_cast<int64_t>(count));
  size_t next = static_cast<size_t>(found + 1);
  if (found >= 0) FUZZ_CHECK(eddy::fuzz::KeyOf(base + (next - 1) * entryBytes, type) <= key);
  if (next < count) FUZZ_CHECK(eddy::fuzz::KeyOf(base + next * entryBytes, type) > key);
}

int64_t LinearFloor(const uint8_t* base, size_t entryBytes, size_t count, KeyType type, int64_t key) {
  int64_t found = -1;
  for (size_t i = 0; i < count; i++) {
    if (eddy::fuzz::KeyOf(base + i * entryBytes, type) <= key) found = static_cast<int64_t>(i);
  }
  return found;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eddy;
  fuzz::Input input(data, size);
  fuzz::IndexLayout layout = fuzz::LayoutFrom(input.Byte());
  auto key = static_cast<int64_t>(input.Take(8));
  size_t count = input.restSize() / layout.entryBytes;
  fuzz::Exact entries(input.rest(), count * layout.entryBytes);
  const uint8_t* base = entries.data();

  CheckBrackets(base, layout.entryBytes, count, layout.type, key);

  size_t valid = entries::CountValid(base, layout.entryBytes, count, layout.type);
  FUZZ_CHECK(entries::Floor(base, layout.entryBytes, valid, layout.type, key) ==
             LinearFloor(base, layout.entryBytes, valid, layout.type, key));
  // Bounded so that one long input cannot slow the whole run down.
  size_t probes = valid < 256 ? valid : 256;
  for (size_t i = 0; i < probes; i++) {
    int64_t stored = fuzz::KeyOf(base + i * layout.entryBytes, layout.type);
    FUZZ_CHECK(entries::Floor(base, layout.entryBytes, valid, layout.type, stored) == static_cast<int64_t>(i));
    if (stored > INT64_MIN) {
      int64_t below = entries::Floor(base, layout.entryBytes, valid, layout.type, stored - 1);
      FUZZ_CHECK(below == static_cast<int64_t>(i) - 1);
    }
  }
  return 0;
}
