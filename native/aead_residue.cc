// Test hook, not a data path: aeadSealResidue / aeadOpenResidue take sealBatch's / openBatch's
// arguments, make the very call JS makes (AeadSealBatch / AeadOpenBatch), and then search the
// stack that call used for copies of what it had to wipe before returning. The direct AEAD keeps
// its key words, ChaCha lanes, Poly1305 state and keystream on the stack, where a search of the
// process's memory from JS finds nothing: the JS calls that follow overwrite those dead frames.
// Here nothing runs between the call's return and the search. The stack is cleared first, so a
// copy found is this call's. The hook never hands out a pointer or a copy: it answers counts.
#include "aead.h"
#include "chacha.h"
#include "common.h"
#include <alloca.h>
#include <cstring>

namespace tuntap {
namespace {

constexpr size_t kSearched = 128 * 1024;  // stack below the gap that the call may use; all of it searched
constexpr size_t kGap = 16 * 1024;        // between the hook and the call: the search's own frame lives here
constexpr size_t kMaxKeys = 16;           // keys and packets looked for (a test's batch is small)
constexpr size_t kMaxPackets = 16;
constexpr size_t kKeyBytes = 32;
constexpr size_t kBlock = 64;

using Word = uint32_t __attribute__((may_alias));
using Entry = Napi::Value (*)(const Napi::CallbackInfo&);

// Calls entry with kGap bytes reserved above it; *below = the lowest reserved byte, under which
// all of entry's frames lie.
__attribute__((noinline)) Napi::Value CallBelowGap(Entry entry, const Napi::CallbackInfo& info, uintptr_t* below) {
  auto* gap = static_cast<uint8_t*>(alloca(kGap));
  asm volatile("" : : "r"(gap) : "memory");
  *below = reinterpret_cast<uintptr_t>(gap);
  return entry(info);
}

// What is looked for. Keys and keystream are read where the batch holds them (the caller's
// buffers), never gathered into one piece here; block 0 of each packet (Poly1305's one-time key)
// is made before the call, in the hook's frame, above what is searched.
struct Targets {
  const uint8_t* keys[kMaxKeys];
  size_t nkeys = 0;
  const uint8_t* plain[kMaxPackets];   // block 1 of packet i's data = plain XOR cipher
  const uint8_t* cipher[kMaxPackets];
  size_t nstreams = 0;
  const uint8_t (*block0)[kBlock] = nullptr;
  size_t nblock0 = 0;
  const uint64_t (*rLimbs)[3] = nullptr;  // one per block 0
};

struct Found {
  uint32_t key = 0;        // the 32 key bytes in a row (key words, a ChaCha state)
  uint32_t keyLanes = 0;   // the key's words one lane apart (a ChaCha pass's rows, 8 or 16 lanes)
  uint32_t keystream = 0;  // a data block of the batch's keystream, or a whole block 0
  uint32_t polyKey = 0;    // the second half of block 0 (where a Poly1305 state keeps its s)
  uint32_t polyLimbs = 0;  // Poly1305's clamped r as the lanes keep it: 44-bit limbs, in a row or a row apart
};

// The clamped r of block 0 as poly1305_lanes.cc holds it: limbs of 44, 44 and 36 bits.
void RLimbs(const uint8_t block0[kBlock], uint64_t limbs[3]) {
  uint64_t t0, t1;
  std::memcpy(&t0, block0, 8);
  std::memcpy(&t1, block0 + 8, 8);
  t0 &= 0x0ffffffc0fffffffULL;
  t1 &= 0x0ffffffc0ffffffcULL;
  constexpr uint64_t kMask44 = (uint64_t{1} << 44) - 1;
  limbs[0] = t0 & kMask44;
  limbs[1] = ((t0 >> 44) | (t1 << 20)) & kMask44;
  limbs[2] = t1 >> 24;
}

inline uint32_t WordAt(const uint8_t* p) { return *reinterpret_cast<const Word*>(p); }
inline uint32_t Unaligned(const uint8_t* p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }

// no_sanitize: the searched bytes are dead frames, which ASan may still have marked as redzones.
__attribute__((noinline, no_sanitize("address"))) void Search(uintptr_t lo, uintptr_t hi, const Targets& t, Found* f) {
  static constexpr size_t kStrides[] = {4, 32, 64};  // in a row; one row of an 8- and a 16-lane pass
  for (uintptr_t at = lo; at + 4 <= hi; at += 4) {
    const auto* p = reinterpret_cast<const uint8_t*>(at);
    uint32_t w = WordAt(p);
    if (w == 0) continue;
    for (size_t k = 0; k < t.nkeys; k++) {
      if (w != Unaligned(t.keys[k])) continue;
      for (size_t stride : kStrides) {
        if (7 * stride + 4 > hi - at) continue;
        bool all = true;
        for (size_t j = 1; j < 8 && all; j++) all = WordAt(p + j * stride) == Unaligned(t.keys[k] + 4 * j);
        if (all) ++(stride == 4 ? f->key : f->keyLanes);
      }
    }
    if (kBlock > hi - at) continue;
    for (size_t s = 0; s < t.nstreams; s++) {
      bool all = true;
      for (size_t j = 0; j < kBlock && all; j += 4) all = WordAt(p + j) == (Unaligned(t.plain[s] + j) ^ Unaligned(t.cipher[s] + j));
      if (all) f->keystream++;
    }
    for (size_t b = 0; b < t.nblock0; b++) {
      bool half = true, whole = true;
      for (size_t j = 16; j < 32 && half; j += 4) half = WordAt(p + j - 16) == Unaligned(t.block0[b] + j);
      for (size_t j = 0; j < kBlock && whole; j += 4) whole = WordAt(p + j) == Unaligned(t.block0[b] + j);
      if (half) f->polyKey++;
      if (whole) f->keystream++;
    }
    // r's low two limbs as 64-bit words: next to each other, or one 8-lane row (64 bytes) apart.
    if (at % 8 != 0) continue;
    uint64_t q;
    __builtin_memcpy(&q, p, 8);
    for (size_t b = 0; b < t.nblock0; b++) {
      if (q != t.rLimbs[b][0]) continue;
      for (size_t stride : {size_t{8}, size_t{64}}) {
        if (stride + 8 > hi - at) continue;
        uint64_t next;
        __builtin_memcpy(&next, p + stride, 8);
        if (next == t.rLimbs[b][1]) f->polyLimbs++;
      }
    }
  }
}

Napi::Value Residue(const Napi::CallbackInfo& info, Entry entry) {
  Napi::Env env = info.Env();
  BatchArgs b;
  if (!ParseBatch(info, &b, 1)) return env.Undefined();  // its exception is the entry's own
  const size_t packets = b.count < kMaxPackets ? b.count : kMaxPackets;
  // Block 0 of each packet (counter 0, nonce = 4 zero bytes and the packet's counter).
  alignas(64) uint8_t block0[kMaxPackets][kBlock];
  uint8_t nonces[kMaxPackets][12] = {};
  ChaChaStream streams[kMaxPackets];
  for (size_t i = 0; i < packets; i++) {
    std::memcpy(nonces[i] + 4, b.counters.data + 8 * i, 8);
    size_t k = b.keyIndex ? b.keyIndex[i] : 0;
    streams[i] = ChaChaStream{b.keys.data + kKeyBytes * k, nonces[i], 0, 1, block0[i]};
  }
  ChaChaStreams(streams, packets);

  // Maps and zeroes the stack the call and the search will use: what earlier calls left there
  // cannot be taken for this call's residue, and reading it later cannot fault.
  ClearStackBelow<kSearched + 2 * kGap>();
  uintptr_t below = 0;
  Napi::Value result = CallBelowGap(entry, info, &below);
  if (env.IsExceptionPending()) {
    explicit_bzero(block0, sizeof block0);
    return env.Undefined();
  }
  Targets t;
  for (size_t k = 0; k < b.nkeys && t.nkeys < kMaxKeys; k++) t.keys[t.nkeys++] = b.keys.data + kKeyBytes * k;
  for (size_t i = 0; i < packets; i++) {
    // Packet i's first data block, where both its input and its output hold 64 bytes.
    uint32_t so = b.srcOff[i], dso = b.dstOff[i];
    if (b.dstLen[i] >= kBlock && Within(so, kBlock, b.src.length) && Within(dso, kBlock, b.dst.length) &&
        b.srcLen[i] >= kBlock) {
      t.plain[t.nstreams] = b.src.data + so;
      t.cipher[t.nstreams++] = b.dst.data + dso;
    }
  }
  uint64_t rLimbs[kMaxPackets][3];
  for (size_t i = 0; i < packets; i++) RLimbs(block0[i], rLimbs[i]);
  t.block0 = block0;
  t.nblock0 = packets;
  t.rLimbs = rLimbs;
  Found f;
  Search(below - kSearched, below, t, &f);
  explicit_bzero(block0, sizeof block0);
  explicit_bzero(rLimbs, sizeof rLimbs);

  Napi::Object out = Napi::Object::New(env);
  out.Set("result", result);
  out.Set("keyCopies", Napi::Number::New(env, f.key));
  out.Set("keyLaneCopies", Napi::Number::New(env, f.keyLanes));
  out.Set("keystreamCopies", Napi::Number::New(env, f.keystream));
  out.Set("polyKeyCopies", Napi::Number::New(env, f.polyKey));
  out.Set("polyLimbCopies", Napi::Number::New(env, f.polyLimbs));
  out.Set("searchedBytes", Napi::Number::New(env, static_cast<double>(kSearched)));
  return out;
}

// aeadSealResidue(...sealBatch's arguments) / aeadOpenResidue(...openBatch's) → { result (what
// the call returned), keyCopies, keyLaneCopies, keystreamCopies, polyKeyCopies, polyLimbCopies,
// searchedBytes }.
Napi::Value SealResidue(const Napi::CallbackInfo& info) { return Residue(info, AeadSealBatch); }
Napi::Value OpenResidue(const Napi::CallbackInfo& info) { return Residue(info, AeadOpenBatch); }

}  // namespace

void InitAeadResidue(Napi::Env env, Napi::Object exports) {
  exports.Set("aeadSealResidue", Napi::Function::New(env, SealResidue, "aeadSealResidue"));
  exports.Set("aeadOpenResidue", Napi::Function::New(env, OpenResidue, "aeadOpenResidue"));
}

}  // namespace tuntap
