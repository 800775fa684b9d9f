#include "crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace eddy::crc32c {
namespace {

constexpr uint32_t kPoly = 0x82F63B78;  // reflected Castagnoli polynomial

using Table = std::array<uint32_t, 256>;

// Slicing-by-8: kSlices[k][b] is the CRC of byte b followed by k zero bytes.
constexpr std::array<Table, 8> MakeSlices() {
  std::array<Table, 8> slices{};
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t crc = b;
    for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (kPoly & (0u - (crc & 1)));
    slices[0][b] = crc;
  }
  for (uint32_t b = 0; b < 256; b++) {
    for (int k = 1; k < 8; k++) slices[k][b] = (slices[k - 1][b] >> 8) ^ slices[0][slices[k - 1][b] & 0xFF];
  }
  return slices;
}

constexpr std::array<Table, 8> kSlices = MakeSlices();

inline uint64_t LoadLE64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

// `crc` here and below is the raw register (pre- and post-inverted by callers).
uint32_t SoftwareRaw(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t w = LoadLE64(p) ^ crc;
    crc = kSlices[7][w & 0xFF] ^ kSlices[6][(w >> 8) & 0xFF] ^ kSlices[5][(w >> 16) & 0xFF] ^
          kSlices[4][(w >> 24) & 0xFF] ^ kSlices[3][(w >> 32) & 0xFF] ^ kSlices[2][(w >> 40) & 0xFF] ^
          kSlices[1][(w >> 48) & 0xFF] ^ kSlices[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = kSlices[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)

// The crc32 instruction has a latency of 3 cycles but a throughput of 1, so
// three independent streams over adjacent blocks run ~3x faster; the block
// CRCs are then combined by "appending" zeros to the earlier ones, which is a
// linear map over GF(2) precomputed below as byte-wise tables (after Mark
// Adler's crc32c.c).
constexpr size_t kLongBlock = 8192;
constexpr size_t kShortBlock = 256;

using Matrix = std::array<uint32_t, 32>;  // column n: the image of bit n

constexpr uint32_t Times(const Matrix& m, uint32_t v) {
  uint32_t sum = 0;
  for (int n = 0; v != 0; n++, v >>= 1) {
    if (v & 1) sum ^= m[n];
  }
  return sum;
}

constexpr Matrix Square(const Matrix& m) {
  Matrix sq{};
  for (int n = 0; n < 32; n++) sq[n] = Times(m, m[n]);
  return sq;
}

// The operator that feeds `bytes` zero bytes (a power of two) into the register.
constexpr Matrix ZerosOperator(size_t bytes) {
  Matrix op{};
  op[0] = kPoly;  // one zero bit
  for (int n = 1; n < 32; n++) op[n] = 1u << (n - 1);
  for (size_t bits = 1; bits < bytes * 8; bits *= 2) op = Square(op);
  return op;
}

using ShiftTables = std::array<Table, 4>;

constexpr ShiftTables MakeShiftTables(size_t bytes) {
  Matrix op = ZerosOperator(bytes);
  ShiftTables tables{};
  for (uint32_t b = 0; b < 256; b++) {
    for (int k = 0; k < 4; k++) tables[k][b] = Times(op, b << (8 * k));
  }
  return tables;
}

constexpr ShiftTables kLongShift = MakeShiftTables(kLongBlock);
constexpr ShiftTables kShortShift = MakeShiftTables(kShortBlock);

inline uint32_t Shift(const ShiftTables& t, uint32_t crc) {
  return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^ t[3][crc >> 24];
}

template <size_t kBlock>
__attribute__((target("sse4.2"))) inline uint32_t ThreeStreams(uint32_t crc, const uint8_t*& p, size_t& n,
                                                               const ShiftTables& shift) {
  while (n >= 3 * kBlock) {
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (const uint8_t* end = p + kBlock; p < end; p += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p, 8);
      std::memcpy(&w1, p + kBlock, 8);
      std::memcpy(&w2, p + 2 * kBlock, 8);
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    crc = Shift(shift, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    crc = Shift(shift, crc) ^ static_cast<uint32_t>(c2);
    p += 2 * kBlock;
    n -= 3 * kBlock;
  }
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t HardwareRaw(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ThreeStreams<kLongBlock>(crc, p, n, kLongShift);
  crc = ThreeStreams<kShortBlock>(crc, p, n, kShortShift);
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  crc = static_cast<uint32_t>(c);
  for (; n > 0; p++, n--) crc = _mm_crc32_u8(crc, *p);
  return crc;
}

bool HasSse42() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return has;
}

#endif  // __x86_64__

}  // namespace

uint32_t ExtendSoftware(uint32_t crc, const uint8_t* data, size_t length) {
  return ~SoftwareRaw(~crc, data, length);
}

uint32_t Extend(uint32_t crc, const uint8_t* data, size_t length) {
#if defined(__x86_64__)
  if (HasSse42()) return ~HardwareRaw(~crc, data, length);
#endif
  return ExtendSoftware(crc, data, length);
}

const char* Implementation() {
#if defined(__x86_64__)
  if (HasSse42()) return "sse4.2";
#endif
  return "software";
}

}  // namespace eddy::crc32c
