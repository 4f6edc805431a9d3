// Poly1305 in eight 64-bit lanes (see poly1305_lanes.h). Numbers mod p = 2^130 - 5 are three
// limbs of 44, 44 and 42 bits (radix 2^44), so AVX-512 IFMA's 52-bit multiply-add
// (vpmadd52luq / vpmadd52huq) forms each partial product's low and high half directly. A
// product limb at 2^132 or above folds back times 20 (2^132 = 4 * 2^130 = 4 * 5 mod p), which
// the key's limbs carry premultiplied. Carries are taken in parallel, once per block: the limbs
// stay below 2^45, well inside what the 52-bit multiplier reads. The last reduction, + s and the
// tag are scalar, per lane.
#include "poly1305_lanes.h"
#include "chacha.h"
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "blocks and keys are read as little-endian words");

namespace tuntap {
namespace {

constexpr uint64_t kMask44 = (uint64_t{1} << 44) - 1;
constexpr uint64_t kMask42 = (uint64_t{1} << 42) - 1;
constexpr uint64_t kHighBit = uint64_t{1} << 40;  // a whole block's 2^128, in the top limb (2^88)
constexpr size_t kTailBlocks = kPolyTailMax / 16;

inline uint64_t Le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// A group's four-message halves load as four 128-bit blocks each; unpacking the two halves'
// 64-bit words puts message m in vector lane 2 * (m % 4) + m / 4.
inline size_t LaneOf(size_t m) { return 2 * (m % 4) + m / 4; }

// Everything a group of up to eight messages needs in memory, wiped after the group.
struct Group {
  alignas(64) uint64_t r[3][kPolyLanes];   // r's limbs by vector lane (44, 44, 36 bits)
  alignas(64) uint64_t h[3][kPolyLanes];   // the accumulators when the blocks are done
  alignas(64) uint8_t tail[kPolyLanes][kPolyTailMax];  // tails, a partial block already padded
  alignas(64) uint64_t highBit[kPolyLanes];  // per vector lane, for the block at hand
  const uint8_t* data[kPolyLanes];
  size_t blocks[kPolyLanes];   // whole blocks read in place
  size_t total[kPolyLanes];    // and with the tail's blocks
  bool partial[kPolyLanes];    // the tail's last block is partial (no 2^128)
};

alignas(16) const uint8_t kZeroBlock[16] = {};

// h mod p, + s, as 16 little-endian bytes. Constant time: no branch on h.
void Finish(uint64_t h0, uint64_t h1, uint64_t h2, const uint8_t s[16], uint8_t tag[16]) {
  // Two full carry rounds bring every limb within its width (the lanes leave them below 2^45),
  // so h < 2^130 + a little; then h - p is taken when it does not go negative.
  for (int round = 0; round < 2; round++) {
    h1 += h0 >> 44; h0 &= kMask44;
    h2 += h1 >> 44; h1 &= kMask44;
    h0 += (h2 >> 42) * 5; h2 &= kMask42;
  }
  h1 += h0 >> 44; h0 &= kMask44;
  h2 += h1 >> 44; h1 &= kMask44;
  // g = h + 5 - 2^130; h >= p exactly when g does not borrow (bit 63 of g2 clear).
  uint64_t g0 = h0 + 5;
  uint64_t g1 = h1 + (g0 >> 44);
  g0 &= kMask44;
  uint64_t g2 = h2 + (g1 >> 44) - (uint64_t{1} << 42);
  g1 &= kMask44;
  uint64_t useG = (g2 >> 63) - 1;  // all ones when h >= p
  h0 = (h0 & ~useG) | (g0 & useG);
  h1 = (h1 & ~useG) | (g1 & useG);
  h2 = (h2 & ~useG) | (g2 & useG & kMask42);
  // (h mod 2^128) + s, in two 64-bit words (GCC kept 128-bit integers in stack slots).
  uint64_t lo = h0 | (h1 << 44), hi = (h1 >> 20) | (h2 << 24);
  uint64_t s0 = Le64(s), s1 = Le64(s + 8);
  lo += s0;
  hi += s1 + (lo < s0);
  std::memcpy(tag, &lo, 8);
  std::memcpy(tag + 8, &hi, 8);
}

#if defined(__x86_64__)
// GCC 12's _mm512_set1_epi64 and _mm512_setzero_si512 start from an "undefined" vector and warn.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define POLY_TARGET __attribute__((target("avx512f,avx512ifma")))

// Sixteen-byte blocks at a..d as one register, a in the low 128 bits.
POLY_TARGET inline __m512i Load4(const uint8_t* a, const uint8_t* b, const uint8_t* c, const uint8_t* d) {
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(c)), 2);
  return _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(d)), 3);
}

struct Lanes {
  __m512i h0, h1, h2;         // accumulators
  __m512i r0, r1, r2;         // the key
  __m512i s1, s2;             // 20 * r1, 20 * r2: limbs that fold back from 2^132 up
};

// h = (h + m) * r, partly reduced, for the eight blocks in a (messages 0..3) and b (4..7).
POLY_TARGET inline void Block(Lanes& l, __m512i a, __m512i b, __m512i highBit) {
  const __m512i mask44 = _mm512_set1_epi64(static_cast<long long>(kMask44));
  const __m512i mask42 = _mm512_set1_epi64(static_cast<long long>(kMask42));
  const __m512i zero = _mm512_setzero_si512();
  __m512i lo = _mm512_unpacklo_epi64(a, b), hi = _mm512_unpackhi_epi64(a, b);
  __m512i h0 = _mm512_add_epi64(l.h0, _mm512_and_si512(lo, mask44));
  __m512i h1 = _mm512_add_epi64(l.h1, _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(lo, 44), _mm512_slli_epi64(hi, 20)), mask44));
  __m512i h2 = _mm512_add_epi64(l.h2, _mm512_or_si512(_mm512_srli_epi64(hi, 24), highBit));
  // Low halves land at limbs 0, 1, 2; high halves 52 bits up, i.e. 8 bits into the next limb
  // (the top limb's 10 bits past 2^130: times 5).
  __m512i d0 = _mm512_madd52lo_epu64(zero, h0, l.r0), e0 = _mm512_madd52hi_epu64(zero, h0, l.r0);
  __m512i d1 = _mm512_madd52lo_epu64(zero, h0, l.r1), e1 = _mm512_madd52hi_epu64(zero, h0, l.r1);
  __m512i d2 = _mm512_madd52lo_epu64(zero, h0, l.r2), e2 = _mm512_madd52hi_epu64(zero, h0, l.r2);
  d0 = _mm512_madd52lo_epu64(d0, h1, l.s2); e0 = _mm512_madd52hi_epu64(e0, h1, l.s2);
  d1 = _mm512_madd52lo_epu64(d1, h1, l.r0); e1 = _mm512_madd52hi_epu64(e1, h1, l.r0);
  d2 = _mm512_madd52lo_epu64(d2, h1, l.r1); e2 = _mm512_madd52hi_epu64(e2, h1, l.r1);
  d0 = _mm512_madd52lo_epu64(d0, h2, l.s1); e0 = _mm512_madd52hi_epu64(e0, h2, l.s1);
  d1 = _mm512_madd52lo_epu64(d1, h2, l.s2); e1 = _mm512_madd52hi_epu64(e1, h2, l.s2);
  d2 = _mm512_madd52lo_epu64(d2, h2, l.r0); e2 = _mm512_madd52hi_epu64(e2, h2, l.r0);
  d1 = _mm512_add_epi64(d1, _mm512_slli_epi64(e0, 8));
  d2 = _mm512_add_epi64(d2, _mm512_slli_epi64(e1, 8));
  d0 = _mm512_add_epi64(d0, _mm512_add_epi64(_mm512_slli_epi64(e2, 10), _mm512_slli_epi64(e2, 12)));
  // One carry per limb, all three at once.
  __m512i c0 = _mm512_srli_epi64(d0, 44), c1 = _mm512_srli_epi64(d1, 44), c2 = _mm512_srli_epi64(d2, 42);
  l.h0 = _mm512_add_epi64(_mm512_and_si512(d0, mask44), _mm512_add_epi64(c2, _mm512_slli_epi64(c2, 2)));
  l.h1 = _mm512_add_epi64(_mm512_and_si512(d1, mask44), c0);
  l.h2 = _mm512_add_epi64(_mm512_and_si512(d2, mask42), c1);
}

POLY_TARGET inline __m512i Row(const uint64_t* p) { return _mm512_load_si512(p); }

// The blocks of group g (one to eight messages), to g.h.
POLY_TARGET __attribute__((noinline)) void RunGroup(Group& g) {
  Lanes l;
  l.r0 = Row(g.r[0]);
  l.r1 = Row(g.r[1]);
  l.r2 = Row(g.r[2]);
  l.s1 = _mm512_add_epi64(_mm512_slli_epi64(l.r1, 4), _mm512_slli_epi64(l.r1, 2));
  l.s2 = _mm512_add_epi64(_mm512_slli_epi64(l.r2, 4), _mm512_slli_epi64(l.r2, 2));
  l.h0 = l.h1 = l.h2 = _mm512_setzero_si512();
  size_t common = g.blocks[0], longest = 0;
  for (size_t m = 0; m < kPolyLanes; m++) {
    if (g.blocks[m] < common) common = g.blocks[m];
    if (g.total[m] > longest) longest = g.total[m];
  }
  // Every lane has a whole block in place: no masks, no choices.
  const __m512i highBit = _mm512_set1_epi64(static_cast<long long>(kHighBit));
  const uint8_t* const* p = g.data;
  for (size_t off = 0; off < 16 * common; off += 16) {
    Block(l, Load4(p[0] + off, p[1] + off, p[2] + off, p[3] + off),
          Load4(p[4] + off, p[5] + off, p[6] + off, p[7] + off), highBit);
  }
  // The rest block by block: each lane's next block from its data, its tail, or none (masked).
  for (size_t b = common; b < longest; b++) {
    const uint8_t* at[kPolyLanes];
    __mmask8 active = 0;
    for (size_t m = 0; m < kPolyLanes; m++) {
      size_t v = LaneOf(m);
      bool on = b < g.total[m];
      at[m] = b < g.blocks[m] ? g.data[m] + 16 * b : on ? g.tail[m] + 16 * (b - g.blocks[m]) : kZeroBlock;
      g.highBit[v] = on && !(g.partial[m] && b + 1 == g.total[m]) ? kHighBit : 0;
      active = static_cast<__mmask8>(active | (on ? 1u << v : 0u));
    }
    __m512i h0 = l.h0, h1 = l.h1, h2 = l.h2;
    Block(l, Load4(at[0], at[1], at[2], at[3]), Load4(at[4], at[5], at[6], at[7]), Row(g.highBit));
    l.h0 = _mm512_mask_mov_epi64(h0, active, l.h0);
    l.h1 = _mm512_mask_mov_epi64(h1, active, l.h1);
    l.h2 = _mm512_mask_mov_epi64(h2, active, l.h2);
  }
  _mm512_store_si512(g.h[0], l.h0);
  _mm512_store_si512(g.h[1], l.h1);
  _mm512_store_si512(g.h[2], l.h2);
}
#undef POLY_TARGET
#pragma GCC diagnostic pop
#endif

// Messages [0, n) of `messages` (n <= 8) laid into a group; unused lanes run on zero blocks.
void Lay(Group& g, const PolyMessage* messages, size_t n) {
  for (size_t m = 0; m < kPolyLanes; m++) {
    size_t v = LaneOf(m);
    if (m >= n) {
      g.data[m] = kZeroBlock;
      g.blocks[m] = g.total[m] = 0;
      g.partial[m] = false;
      g.r[0][v] = g.r[1][v] = g.r[2][v] = 0;
      continue;
    }
    const PolyMessage& msg = messages[m];
    uint64_t t0 = Le64(msg.key) & 0x0ffffffc0fffffffULL, t1 = Le64(msg.key + 8) & 0x0ffffffc0ffffffcULL;
    g.r[0][v] = t0 & kMask44;
    g.r[1][v] = ((t0 >> 44) | (t1 << 20)) & kMask44;
    g.r[2][v] = t1 >> 24;
    size_t tailLen = msg.tailLen < kPolyTailMax ? msg.tailLen : kPolyTailMax;
    std::memset(g.tail[m], 0, kPolyTailMax);
    if (tailLen > 0) std::memcpy(g.tail[m], msg.tail, tailLen);
    g.partial[m] = tailLen % 16 != 0;
    if (g.partial[m]) g.tail[m][tailLen] = 1;
    g.data[m] = msg.blocks > 0 ? msg.data : kZeroBlock;
    g.blocks[m] = msg.blocks;
    g.total[m] = msg.blocks + (tailLen + 15) / 16;
  }
  static_assert(kTailBlocks * 16 == kPolyTailMax, "the tail is whole blocks of room");
}

bool Detect() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
#else
  return false;
#endif
}

// Not inlined: its frame (the group's keys, accumulators and tails, and whatever the compiler
// spills) lies below PolyLanes', where one clearing reaches it and the vector code's below it.
__attribute__((noinline)) void TagGroups(const PolyMessage* messages, size_t count) {
#if defined(__x86_64__)
  Group g;
  for (size_t first = 0; first < count; first += kPolyLanes) {
    size_t n = count - first < kPolyLanes ? count - first : kPolyLanes;
    Lay(g, messages + first, n);
    RunGroup(g);
    for (size_t m = 0; m < n; m++) {
      size_t v = LaneOf(m);
      Finish(g.h[0][v], g.h[1][v], g.h[2][v], messages[first + m].key + 16, messages[first + m].tag);
    }
  }
#else
  (void)messages;
  (void)count;
#endif
}

// TagGroups' and RunGroup's frames together (1.2 KiB with GCC 12 -O2; the -O1 sanitizer build's
// are larger).
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kLaneFrameBytes = 16384;
#else
constexpr size_t kLaneFrameBytes = 2048;
#endif

}  // namespace

bool PolyLanesAvailable() {
  static const bool available = Detect();
  return available;
}

void PolyLanes(const PolyMessage* messages, size_t count) {
  TagGroups(messages, count);
  // Never a tail call (see ScrubPassFrames in chacha.cc): the clearing must start below this frame.
  ClearStackBelow<kLaneFrameBytes>();
  asm volatile("" : : : "memory");
}

}  // namespace tuntap
