// Poly1305 (RFC 8439 section 2.5) of several messages side by side, one message per 64-bit lane
// of an AVX-512 register, each lane a plain Horner loop h = (h + m) * r with its own key. No
// powers of r are computed: OpenSSL's vector Poly1305 computes them for every message, and for
// a small packet that setup costs more than the blocks themselves.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tuntap {

// One message: `blocks` whole 16-byte blocks read where they are, then tailLen (0..32) bytes
// from `tail`: whole blocks, and a last partial block padded with a 1 byte as the RFC says.
// An AEAD tag passes its last partial block zero-padded and the lengths block as a 32-byte tail.
struct PolyMessage {
  const uint8_t* key;   // 32 bytes: r (clamped here) || s
  const uint8_t* data;  // blocks * 16 bytes
  size_t blocks;
  const uint8_t* tail;  // tailLen bytes (may be null when tailLen is 0)
  size_t tailLen;
  uint8_t* tag;         // 16 bytes, written once its group of eight has been read
};

constexpr size_t kPolyLanes = 8;
constexpr size_t kPolyTailMax = 32;

// The CPU has AVX-512F and IFMA (vpmadd52luq/huq); without them the caller keeps OpenSSL's.
bool PolyLanesAvailable();

// Tags of messages[0..count) (any count; eight at a time). Requires PolyLanesAvailable().
// The keys' limbs and the accumulators left on the stack are wiped before returning.
void PolyLanes(const PolyMessage* messages, size_t count);

}  // namespace tuntap
