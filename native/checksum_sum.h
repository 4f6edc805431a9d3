// The one's-complement byte sum behind checksumRanges (checksum.cc), vectorised where the CPU can.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tuntap {

// One's-complement sum of b[0..n) as big-endian 16-bit words (an odd tail padded with zero),
// folded to 16 bits.
uint32_t SumBytes(const uint8_t* b, size_t n);

}  // namespace tuntap
