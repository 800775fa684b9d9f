// crc32c::Extend and crc32c::ExtendSoftware over arbitrary bytes: every
// batch read from a segment, every file header, checkpoint slot and
// subscription state slot is checked by one of them before it is believed,
// so they run over whatever is on disk, at any offset and length.
//
// Input: a repeat count, a misalignment (low 3 bits), a seed (u32), a split
// point (u32), then the payload. The bytes checksummed are the payload
// repeated 1 + repeat times (at most 64 KiB), so that a short input still
// reaches the SSE4.2 path's three-stream blocks (3 x 256 bytes and
// 3 x 8 KiB), placed `misalignment` bytes past an aligned address.
//
// Checks: the hardware path (when the CPU has SSE4.2, as Extend picks it) and
// the slicing-by-8 software path agree; resuming from a CRC over a prefix
// gives the CRC of the whole (Extend(Extend(s, a), b) == Extend(s, a ‖ b),
// which the addon relies on for appendBatch and readers for header + body);
// and up to 4 KiB, both match a bit-at-a-time CRC written from the
// definition, itself checked against the standard check value at start.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "crc32c.h"
#include "fuzz_input.h"

namespace {

constexpr size_t kBytesMax = 64 * 1024;
constexpr size_t kBitwiseBytesMax = 4096;

// CRC-32C from its definition (RFC 3720, appendix B.4): reflected, the
// polynomial 0x1EDC6F41 bit-reversed, initial and final inversion.
uint32_t Bitwise(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The check value of CRC-32C: if the oracle were wrong, agreeing with it would prove nothing.
  static const uint8_t kCheck[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  FUZZ_CHECK(Bitwise(0, kCheck, sizeof kCheck) == 0xE3069283u);
  std::fprintf(stderr, "crc32c implementation: %s\n", eddy::crc32c::Implementation());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace eddy;
  fuzz::Input input(data, size);
  size_t repeat = 1 + input.Byte();
  size_t misalign = input.Byte() & 7;
  auto seed = static_cast<uint32_t>(input.Take(4));
  auto split = static_cast<uint32_t>(input.Take(4));

  size_t payload = input.restSize();
  size_t length = payload * repeat < kBytesMax ? payload * repeat : kBytesMax;
  std::vector<uint8_t> tiled(length);
  for (size_t i = 0; i < length; i++) tiled[i] = input.rest()[i % payload];
  fuzz::Exact bytes(tiled.data(), length, misalign);

  uint32_t whole = crc32c::Extend(seed, bytes.data(), length);
  uint32_t software = crc32c::ExtendSoftware(seed, bytes.data(), length);
  FUZZ_CHECK(whole == software);

  size_t at = length == 0 ? 0 : split % (length + 1);
  uint32_t resumed = crc32c::Extend(crc32c::Extend(seed, bytes.data(), at), bytes.data() + at, length - at);
  FUZZ_CHECK(resumed == whole);
  uint32_t resumedSoftware =
      crc32c::ExtendSoftware(crc32c::ExtendSoftware(seed, bytes.data(), at), bytes.data() + at, length - at);
  FUZZ_CHECK(resumedSoftware == whole);

  if (length <= kBitwiseBytesMax) FUZZ_CHECK(Bitwise(seed, bytes.data(), length) == whole);
  return 0;
}
