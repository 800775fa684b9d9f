// entries::CountValid over arbitrary index-file bytes. It decides, at every
// open of a segment's .index and .timeindex (IndexFile.open ->
// MappedFile.countEntries), how many entries the log trusts; the file may be
// torn, zeroed, flipped or written by anyone.
//
// Input: one layout byte (index_layout.h), then the entries region of an index
// file, i.e. what follows its 64-byte header. Capacity is the whole entries
// that fit, as IndexFile computes it; a partial entry at the end is never read.
//
// Checks: the count never exceeds the capacity, no byte past the capacity is
// read (AddressSanitizer), every counted entry is non-zero and strictly above
// the previous one in key and value, and the count stops only at an entry that
// breaks that rule: what docs/storage-format.md calls the valid prefix.
#include <cstddef>
#include <cstdint>

#include "entries.h"
#include "fuzz_input.h"
#include "index_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eddy;
  fuzz::Input input(data, size);
  fuzz::IndexLayout layout = fuzz::LayoutFrom(input.Byte());
  size_t capacity = input.restSize() / layout.entryBytes;
  fuzz::Exact entries(input.rest(), capacity * layout.entryBytes);

  size_t count = entries::CountValid(entries.data(), layout.entryBytes, capacity, layout.type);

  FUZZ_CHECK(count <= capacity);
  for (size_t i = 0; i < count; i++) FUZZ_CHECK(fuzz::Continues(entries.data(), layout.entryBytes, i, layout.type));
  if (count < capacity) FUZZ_CHECK(!fuzz::Continues(entries.data(), layout.entryBytes, count, layout.type));
  // A capacity below the count must cut it exactly there: IndexFile asks for
  // no more than the file's capacity, which may end inside the valid prefix.
  if (count > 0) {
    size_t shorter = count - 1;
    FUZZ_CHECK(entries::CountValid(entries.data(), layout.entryBytes, shorter, layout.type) == shorter);
  }
  return 0;
}
