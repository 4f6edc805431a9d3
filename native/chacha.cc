// ChaCha20 keystream blocks in vector lanes (see chacha.h). Each lane of a register holds the
// same state word of a different block, so a quarter round is twelve vector instructions for
// all blocks at once; the lanes are transposed into whole blocks at the end. The width is
// chosen at run time: AVX-512 where the CPU has it, AVX2, else one block at a time.
#include "chacha.h"
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "state words are stored as little-endian bytes");

namespace tuntap {
namespace {

// "expand 32-byte k"
constexpr uint32_t kSigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};

// The initial state of block `counter`: constants, key, counter, nonce.
inline void InitialState(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12], uint32_t s[16]) {
  std::memcpy(s, kSigma, 16);
  std::memcpy(s + 4, key, 32);
  s[12] = counter;
  std::memcpy(s + 13, nonce, 12);
}

// Key material left on the stack is cleared before returning (a volatile byte loop over the
// lanes' 1 KiB of state cost more than the cipher).
inline void Wipe(void* p, size_t n) { WipeSecret(p, n); }

// ---- one block at a time ----
inline uint32_t Rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

inline void QuarterRound(uint32_t x[16], int a, int b, int c, int d) {
  x[a] += x[b]; x[d] = Rotl(x[d] ^ x[a], 16);
  x[c] += x[d]; x[b] = Rotl(x[b] ^ x[c], 12);
  x[a] += x[b]; x[d] = Rotl(x[d] ^ x[a], 8);
  x[c] += x[d]; x[b] = Rotl(x[b] ^ x[c], 7);
}

// Not inlined: its working block must lie below ChaChaStreams' frame, where ScrubPassFrames reaches.
__attribute__((noinline)) void PortableBlocks(const uint32_t s[16], uint8_t* out, size_t blocks) {
  for (size_t n = 0; n < blocks; n++) {
    uint32_t x[16];
    std::memcpy(x, s, sizeof x);
    x[12] += static_cast<uint32_t>(n);
    for (int i = 0; i < 10; i++) {
      QuarterRound(x, 0, 4, 8, 12); QuarterRound(x, 1, 5, 9, 13); QuarterRound(x, 2, 6, 10, 14); QuarterRound(x, 3, 7, 11, 15);
      QuarterRound(x, 0, 5, 10, 15); QuarterRound(x, 1, 6, 11, 12); QuarterRound(x, 2, 7, 8, 13); QuarterRound(x, 3, 4, 9, 14);
    }
    for (int i = 0; i < 16; i++) x[i] += s[i];
    x[12] += static_cast<uint32_t>(n);
    std::memcpy(out + 64 * n, x, 64);
  }
}

// The double round over vectors of any width: V is the register type, the three operations are
// the width's own intrinsics (macros, so each target's function inlines its own).
#define CHACHA_QR(x, a, b, c, d, ADD, XOR, ROL)                                              \
  x[a] = ADD(x[a], x[b]); x[d] = ROL(XOR(x[d], x[a]), 16);                                \
  x[c] = ADD(x[c], x[d]); x[b] = ROL(XOR(x[b], x[c]), 12);                                \
  x[a] = ADD(x[a], x[b]); x[d] = ROL(XOR(x[d], x[a]), 8);                                 \
  x[c] = ADD(x[c], x[d]); x[b] = ROL(XOR(x[b], x[c]), 7);
// Unrolled: in a loop GCC renamed the sixteen registers with sixteen moves per double round.
#define CHACHA_ROUNDS(x, ADD, XOR, ROL)                                                        \
  _Pragma("GCC unroll 10")                                                                     \
  for (int round = 0; round < 10; round++) {                                                   \
    CHACHA_QR(x, 0, 4, 8, 12, ADD, XOR, ROL) CHACHA_QR(x, 1, 5, 9, 13, ADD, XOR, ROL)          \
    CHACHA_QR(x, 2, 6, 10, 14, ADD, XOR, ROL) CHACHA_QR(x, 3, 7, 11, 15, ADD, XOR, ROL)        \
    CHACHA_QR(x, 0, 5, 10, 15, ADD, XOR, ROL) CHACHA_QR(x, 1, 6, 11, 12, ADD, XOR, ROL)        \
    CHACHA_QR(x, 2, 7, 8, 13, ADD, XOR, ROL) CHACHA_QR(x, 3, 4, 9, 14, ADD, XOR, ROL)          \
  }

// 4x4 transposes of 32-bit words inside each 128-bit lane, for any width: u[g][k]'s 128-bit
// lane L then holds words 4g..4g+3 of block 4L+k (the width's own unpack intrinsics).
#define CHACHA_TRANSPOSE(x, u, V, LO32, HI32, LO64, HI64)                                     \
  for (int g = 0; g < 4; g++) {                                                                \
    V t0 = LO32(x[4 * g], x[4 * g + 1]), t1 = HI32(x[4 * g], x[4 * g + 1]);                    \
    V t2 = LO32(x[4 * g + 2], x[4 * g + 3]), t3 = HI32(x[4 * g + 2], x[4 * g + 3]);            \
    u[g][0] = LO64(t0, t2); u[g][1] = HI64(t0, t2);                                            \
    u[g][2] = LO64(t1, t3); u[g][3] = HI64(t1, t3);                                            \
  }

#if defined(__x86_64__)
// GCC 12's _mm512_set1_epi32 starts from an "undefined" vector and warns about it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// ---- eight blocks in 256-bit lanes ----
__attribute__((target("avx2"))) inline __m256i Rol256(__m256i v, int n) {
  return _mm256_or_si256(_mm256_slli_epi32(v, n), _mm256_srli_epi32(v, 32 - n));
}

// Lane l of a pass is the block whose initial state is words[i * width + l] (i = 0..15); it is
// stored at dest[l] for l < lanes.
__attribute__((target("avx2"))) void Avx2Pass(const uint32_t* words, uint8_t* const* dest, size_t lanes) {
  __m256i x[16];
  for (int i = 0; i < 16; i++) x[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(words + 8 * i));
  CHACHA_ROUNDS(x, _mm256_add_epi32, _mm256_xor_si256, Rol256)
  for (int i = 0; i < 16; i++) x[i] = _mm256_add_epi32(x[i], _mm256_load_si256(reinterpret_cast<const __m256i*>(words + 8 * i)));
  __m256i u[4][4];
  CHACHA_TRANSPOSE(x, u, __m256i, _mm256_unpacklo_epi32, _mm256_unpackhi_epi32, _mm256_unpacklo_epi64, _mm256_unpackhi_epi64)
  for (size_t l = 0; l < lanes; l++) {
    size_t k = l & 3;
    __m256i lo, hi;
    if (l < 4) {
      lo = _mm256_permute2x128_si256(u[0][k], u[1][k], 0x20); hi = _mm256_permute2x128_si256(u[2][k], u[3][k], 0x20);
    } else {
      lo = _mm256_permute2x128_si256(u[0][k], u[1][k], 0x31); hi = _mm256_permute2x128_si256(u[2][k], u[3][k], 0x31);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dest[l]), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dest[l] + 32), hi);
  }
}

// As the eight-lane pass, sixteen lanes wide.
__attribute__((target("avx512f"))) void Avx512Pass(const uint32_t* words, uint8_t* const* dest, size_t lanes) {
  __m512i x[16];
  for (int i = 0; i < 16; i++) x[i] = _mm512_load_si512(words + 16 * i);
#define ROL512(v, n) _mm512_rol_epi32(v, n)
  CHACHA_ROUNDS(x, _mm512_add_epi32, _mm512_xor_si512, ROL512)
#undef ROL512
  for (int i = 0; i < 16; i++) x[i] = _mm512_add_epi32(x[i], _mm512_load_si512(words + 16 * i));
  // Then two rounds of 128-bit shuffles gather a block's four pieces into one register.
  __m512i u[4][4];
  CHACHA_TRANSPOSE(x, u, __m512i, _mm512_unpacklo_epi32, _mm512_unpackhi_epi32, _mm512_unpacklo_epi64, _mm512_unpackhi_epi64)
  for (size_t k = 0; k < 4 && k < lanes; k++) {
    __m512i p = _mm512_shuffle_i32x4(u[0][k], u[1][k], 0x44), q = _mm512_shuffle_i32x4(u[2][k], u[3][k], 0x44);
    __m512i r = _mm512_shuffle_i32x4(u[0][k], u[1][k], 0xee), t = _mm512_shuffle_i32x4(u[2][k], u[3][k], 0xee);
    const __m512i block[4] = {_mm512_shuffle_i32x4(p, q, 0x88), _mm512_shuffle_i32x4(p, q, 0xdd),
                              _mm512_shuffle_i32x4(r, t, 0x88), _mm512_shuffle_i32x4(r, t, 0xdd)};
    for (size_t l = 0; l < 4; l++) {
      if (4 * l + k < lanes) _mm512_storeu_si512(dest[4 * l + k], block[l]);
    }
  }
}
// Lanes first .. first+n-1 (of sixteen) get state s for blocks s[12]+b0, s[12]+b0+1, ...: a
// masked row write per state word instead of a scalar store per word and lane.
__attribute__((target("avx512f"))) void Avx512Fill(uint32_t* words, const uint32_t s[16], size_t first, size_t n, uint32_t b0) {
  const __mmask16 mask = static_cast<__mmask16>(((1u << n) - 1) << first);
  for (int i = 0; i < 16; i++) {
    __m512i v = _mm512_set1_epi32(static_cast<int>(s[i]));
    if (i == 12) {
      const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      v = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(s[12] + b0 - static_cast<uint32_t>(first))), lanes);
    }
    _mm512_store_si512(words + 16 * i, _mm512_mask_mov_epi32(_mm512_load_si512(words + 16 * i), mask, v));
  }
}
#pragma GCC diagnostic pop
#endif

// The passes leave keystream on the stack where no variable of ours can be wiped: the vectors
// the compiler spills (rows of state, the transposed blocks; all sixteen under AVX2's sixteen
// registers, and every one in the -O1 sanitizer build). Their frames lie just below the caller's,
// so one clearing of that much stack after a call's last pass covers all of them.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kPassFrameBytes = 16384;  // -O1 and redzones: larger frames
#else
constexpr size_t kPassFrameBytes = 3072;   // the largest pass frame is 2.2 KiB (AVX-512, GCC 12 -O2)
#endif
// Never a tail call: from a jump, the clearing would start at the caller's frame, not below it.
__attribute__((always_inline)) inline void ScrubPassFrames() {
  ClearStackBelow<kPassFrameBytes>();
  asm volatile("" : : : "memory");
}

ChaChaWidth Detect() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return ChaChaWidth::Avx512;
  if (__builtin_cpu_supports("avx2")) return ChaChaWidth::Avx2;
#endif
  return ChaChaWidth::Portable;
}

ChaChaWidth inUse = ChaChaBest();

}  // namespace

ChaChaWidth ChaChaBest() {
  static const ChaChaWidth best = Detect();
  return best;
}

ChaChaWidth ChaChaInUse() { return inUse; }

bool ChaChaUse(ChaChaWidth width) {
  if (static_cast<int>(width) > static_cast<int>(ChaChaBest())) return false;
  inUse = width;
  return true;
}

// Lays the blocks of all streams into lanes, `width` at a time, each lane with its own state
// (key, counter, nonce), and runs a pass whenever the lanes are full: the blocks of several
// packets share a pass instead of each packet rounding up to whole passes of its own.
void ChaChaStreams(const ChaChaStream* streams, size_t count) {
  const ChaChaWidth width = inUse;
#if defined(__x86_64__)
  if (width != ChaChaWidth::Portable) {
    const size_t w = static_cast<size_t>(width);
    alignas(64) uint32_t words[16 * 16] = {};
    uint8_t* dest[16];
    size_t lanes = 0;
    auto run = [&] {
      if (width == ChaChaWidth::Avx512) {
        Avx512Pass(words, dest, lanes);
      } else {
        Avx2Pass(words, dest, lanes);
      }
      lanes = 0;
    };
    for (size_t j = 0; j < count; j++) {
      const ChaChaStream& st = streams[j];
      uint32_t s[16];
      InitialState(st.key, st.counter, st.nonce, s);
      for (size_t b = 0; b < st.blocks;) {
        size_t n = st.blocks - b < w - lanes ? st.blocks - b : w - lanes;
        if (width == ChaChaWidth::Avx512) {
          Avx512Fill(words, s, lanes, n, static_cast<uint32_t>(b));
        } else {
          for (size_t l = 0; l < n; l++) {
            for (int i = 0; i < 16; i++) words[i * w + lanes + l] = s[i];
            words[12 * w + lanes + l] += static_cast<uint32_t>(b + l);
          }
        }
        for (size_t l = 0; l < n; l++) dest[lanes + l] = st.out + 64 * (b + l);
        b += n;
        lanes += n;
        if (lanes == w) run();
      }
      Wipe(s, sizeof s);
    }
    if (lanes > 0) run();
    Wipe(words, sizeof words);
    ScrubPassFrames();
    return;
  }
#endif
  for (size_t j = 0; j < count; j++) {
    uint32_t s[16];
    InitialState(streams[j].key, streams[j].counter, streams[j].nonce, s);
    PortableBlocks(s, streams[j].out, streams[j].blocks);
    Wipe(s, sizeof s);
  }
  ScrubPassFrames();
}

}  // namespace tuntap
