// ChaCha20 keystream blocks (RFC 8439 section 2.3) for several streams at once: the wide vector
// code runs sixteen (AVX-512) or eight (AVX2) blocks side by side, one block per lane, each lane
// with its own key, counter and nonce, so the blocks of several packets fill one pass. A pass
// costs the same however many of its lanes are used; OpenSSL's ChaCha20 rounds each call up to
// whole passes (a 1420-byte packet's 24 blocks cost two 16-block passes, two packets' 48 cost
// three here).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string.h>

namespace tuntap {

// Clears key material and keystream before it is let go of. glibc's explicit_bzero is memset
// (vector stores) behind a barrier the compiler cannot drop; OpenSSL_cleanse stores 8 bytes a
// step, and wiping a batch's keystream that way was over 1% of each busy tunnel process.
inline void WipeSecret(void* p, size_t n) { explicit_bzero(p, n); }

// Zeroes `Bytes` of stack just below the caller's frame, where dead frames (spilled vectors of a
// finished call) keep what no variable of ours can wipe. Not instrumented: ASan's redzones and
// frame record above the array would leave the top of that stack uncleared.
template <size_t Bytes>
__attribute__((noinline, no_sanitize("address"))) void ClearStackBelow() {
  uint8_t area[Bytes];
  WipeSecret(area, sizeof area);
  asm volatile("" : : "r"(area) : "memory");
}

enum class ChaChaWidth { Portable = 1, Avx2 = 8, Avx512 = 16 };

// Blocks counter, counter+1, ... (mod 2^32, as OpenSSL's ChaCha20_ctr32) of one key and
// 96-bit nonce, written to out[0 .. 64*blocks).
struct ChaChaStream {
  const uint8_t* key;    // 32 bytes
  const uint8_t* nonce;  // 12 bytes
  uint32_t counter;
  size_t blocks;
  uint8_t* out;
};

void ChaChaStreams(const ChaChaStream* streams, size_t count);

// The widest code this CPU runs; ChaChaUse narrows it (tests run every width) and returns false
// for a width the CPU lacks.
ChaChaWidth ChaChaBest();
ChaChaWidth ChaChaInUse();
bool ChaChaUse(ChaChaWidth width);

}  // namespace tuntap
