// CRC32C (Castagnoli). `crc` is a previous result (0 to start), so
// Extend(Extend(0, a), b) == Extend(0, a ‖ b).
#pragma once

#include <cstddef>
#include <cstdint>

namespace eddy::crc32c {

// SSE4.2 when the CPU has it, otherwise the software path.
uint32_t Extend(uint32_t crc, const uint8_t* data, size_t length);
uint32_t ExtendSoftware(uint32_t crc, const uint8_t* data, size_t length);
// "sse4.2" or "software": what Extend uses.
const char* Implementation();

}  // namespace eddy::crc32c
