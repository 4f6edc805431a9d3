// ChaCha20-Poly1305 (RFC 8439) over a whole batch of packets in one call, with the OpenSSL that
// Node itself exports (symbols resolve from the node binary; no second crypto library).
// WireGuard's nonce is 4 zero bytes followed by the 64-bit little-endian message counter.
//
// Two ways to the same cipher. Where the node binary exports OpenSSL's ChaCha20 and Poly1305
// block functions (official Node builds link OpenSSL statically and export all of it), the AEAD
// is composed from them directly: the EVP layer's provider dispatch and parameter lookups cost
// more than the cipher for a small packet, and on an idle tunnel, where every wake-up starts
// with cold caches, they were most of a ping's sealing time. Otherwise (a Node built against a
// shared libcrypto, which exports only the public API) one EVP_CIPHER_CTX serves the call.
// On the direct path, consecutive packets whose outputs touch nothing the others read are
// sealed or opened as a group: keystreams made together (chacha.cc), tags computed side by
// side in vector lanes (poly1305_lanes.cc) where the CPU has AVX-512 IFMA, else OpenSSL's.
#include "common.h"
#include "aead.h"
#include "chacha.h"
#include "poly1305_lanes.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <dlfcn.h>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "key words and counters are read as little-endian");

namespace tuntap {
namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kTagLen = 16;

// Longest packet a batch takes: EVP counts bytes in an int, and no datagram comes near it.
constexpr size_t kMaxPacket = 1u << 24;

// The cipher is fetched from the provider once (an implicit fetch on every init costs more than
// sealing a small packet), and each thread keeps one context for all its calls.
const EVP_CIPHER* Cipher() {
  static const EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  return cipher ? cipher : EVP_chacha20_poly1305();
}

// The context object stays allocated per thread; what it holds for a cipher (the key, the
// keystream of a partial block) is freed with OPENSSL_clear_free when a batch ends (EvpAead).
struct Ctx {
  EVP_CIPHER_CTX* ctx;
  Ctx() {
    thread_local struct Holder {
      EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
      ~Holder() { if (ctx) EVP_CIPHER_CTX_free(ctx); }
    } holder;
    ctx = holder.ctx;
  }
};

// ---- the AEAD composed from OpenSSL's block functions ----
// Signatures as OpenSSL declares them internally (include/crypto/chacha.h, poly1305.h); the
// symbols are looked up at run time, so an addon built here still loads where they are absent.
struct Direct {
  using ChaChaFn = void (*)(unsigned char* out, const unsigned char* in, size_t len, const unsigned int key[8],
                            const unsigned int counter[4]);
  using PolyInitFn = void (*)(void* ctx, const unsigned char key[32]);
  using PolyUpdateFn = void (*)(void* ctx, const unsigned char* in, size_t len);
  using PolyFinalFn = void (*)(void* ctx, unsigned char mac[16]);
  ChaChaFn chacha = nullptr;
  PolyInitFn polyInit = nullptr;
  PolyUpdateFn polyUpdate = nullptr;
  PolyFinalFn polyFinal = nullptr;
  size_t polySize = 0;
  bool available = false;
};

constexpr size_t kPolyCtxMax = 512;

const Direct& Primitives() {
  static const Direct d = [] {
    Direct p;
    p.chacha = reinterpret_cast<Direct::ChaChaFn>(dlsym(RTLD_DEFAULT, "ChaCha20_ctr32"));
    auto ctxSize = reinterpret_cast<size_t (*)()>(dlsym(RTLD_DEFAULT, "Poly1305_ctx_size"));
    p.polyInit = reinterpret_cast<Direct::PolyInitFn>(dlsym(RTLD_DEFAULT, "Poly1305_Init"));
    p.polyUpdate = reinterpret_cast<Direct::PolyUpdateFn>(dlsym(RTLD_DEFAULT, "Poly1305_Update"));
    p.polyFinal = reinterpret_cast<Direct::PolyFinalFn>(dlsym(RTLD_DEFAULT, "Poly1305_Final"));
    p.polySize = ctxSize ? ctxSize() : 0;
    p.available = p.chacha && ctxSize && p.polyInit && p.polyUpdate && p.polyFinal && p.polySize <= kPolyCtxMax;
    return p;
  }();
  return d;
}

// Tests switch to EVP to check both paths against each other.
bool useDirect = true;

bool DirectInUse() { return useDirect && Primitives().available; }

// Keystream one ChaCha20 call makes for a packet: block 0 (Poly1305's key) and the first 31
// blocks of its data. OpenSSL's vector code costs about the same for one block as for a whole
// round of blocks (~155 ns on this AVX-512 machine for 1 or 16 blocks), so separate calls for
// the key block and a partial last block cost as much as the packet's data itself (1420 B:
// 1408 B of data + two 64-byte calls = 626 ns; one 1484-byte call = 320 ns). Longer packets
// take the rest straight from ChaCha20_ctr32.
constexpr size_t kStreamBytes = 2048;
constexpr size_t kStreamData = kStreamBytes - 64;
// Keystream blocks made together for consecutive packets (ChaChaStreams): room for a lane
// group's worth (kPolyLanes packets of up to 32 blocks), which are tagged together.
constexpr size_t kGroupBlocks = kPolyLanes * (kStreamBytes / 64);
alignas(64) const uint8_t kZeros[kStreamBytes] = {};

// On x86-64 with AVX-512 OpenSSL takes up to 512 bytes four blocks at a time (~155 ns per four)
// and more sixteen at a time (~160 ns per sixteen): asking for 513 bytes costs one round
// instead of two for a keystream of 257..512 bytes. Elsewhere the length asked is the length used.
size_t KeystreamCallLength(size_t n) {
#if defined(__x86_64__)
  static const bool wide = __builtin_cpu_supports("avx512f");
  if (wide && n > 256 && n <= 512) return 576;
#endif
  return n;
}

// Per-call state of the direct path: key words, the Poly1305 context, the keystream of the
// packet at hand. What was written of it is wiped when the call ends (only that: wiping all
// 2.6 KB after every batch showed in the profile).
struct DirectState {
  unsigned int key[8];
  alignas(64) unsigned char poly[kPolyCtxMax];
  alignas(64) uint8_t stream[kGroupBlocks * 64];
  size_t polyUsed = 0;
  size_t streamUsed = 0;
  ~DirectState() {
    WipeSecret(key, sizeof key);
    WipeSecret(poly, polyUsed);
    WipeSecret(stream, streamUsed);
  }
};

inline void Counter(unsigned int ctr[4], uint32_t block, const uint8_t nonce[12]) {
  ctr[0] = block;
  std::memcpy(ctr + 1, nonce, 12);
}

// Whose ChaCha20 makes the keystream: ours (chacha.cc, several packets' blocks in one pass)
// unless a test switched to OpenSSL's.
bool ownKeystream = true;

// Bytes of keystream a packet of len bytes of data takes from the stream buffer: block 0 and
// the first min(len, kStreamData) bytes of data (ChaChaXor makes the rest).
inline size_t StreamBytes(size_t len) { return 64 + (len < kStreamData ? len : kStreamData); }

// OpenSSL's way: st.stream gets this packet's keystream in one ChaCha20_ctr32 call.
void Keystream(const Direct& d, DirectState& st, size_t len, const uint8_t nonce[12]) {
  unsigned int ctr[4];
  Counter(ctr, 0, nonce);
  size_t n = KeystreamCallLength(StreamBytes(len));
  d.chacha(st.stream, kZeros, n, st.key, ctr);
  if (n > st.streamUsed) st.streamUsed = n;
}

// out[0..n) = in[0..n) XOR ks[0..n), 64 bytes a step in 16-byte vectors (SSE2 or NEON; a byte
// loop cost a quarter of the cipher). Each vector is its own variable: with the four in an
// array GCC kept them on the stack, and the store-to-load stalls made this XOR cost two thirds
// as much as the cipher itself. in and out may be the same bytes.
using Bytes16 = uint64_t __attribute__((vector_size(16)));
inline Bytes16 Load16(const uint8_t* p) { Bytes16 v; std::memcpy(&v, p, 16); return v; }
inline void Store16(uint8_t* p, Bytes16 v) { std::memcpy(p, &v, 16); }
void XorStream(uint8_t* out, const uint8_t* in, const uint8_t* ks, size_t n) {
  size_t j = 0;
  for (; j + 64 <= n; j += 64) {
    Bytes16 x0 = Load16(in + j) ^ Load16(ks + j), x1 = Load16(in + j + 16) ^ Load16(ks + j + 16);
    Bytes16 x2 = Load16(in + j + 32) ^ Load16(ks + j + 32), x3 = Load16(in + j + 48) ^ Load16(ks + j + 48);
    Store16(out + j, x0);
    Store16(out + j + 16, x1);
    Store16(out + j + 32, x2);
    Store16(out + j + 48, x3);
  }
  for (; j + 16 <= n; j += 16) Store16(out + j, Load16(in + j) ^ Load16(ks + j));
  for (; j + 8 <= n; j += 8) {
    uint64_t x, k;
    std::memcpy(&x, in + j, 8);
    std::memcpy(&k, ks + j, 8);
    x ^= k;
    std::memcpy(out + j, &x, 8);
  }
  for (; j < n; j++) out[j] = in[j] ^ ks[j];
}

// out[0..len) = in[0..len) XOR keystream from block 1 on (ks: this packet's keystream from
// block 0, then ChaCha20 straight on what it does not cover). in and out may be the same bytes.
void ChaChaXor(const Direct& d, DirectState& st, const uint8_t* ks, uint8_t* out, const uint8_t* in, size_t len,
               const uint8_t nonce[12]) {
  size_t covered = len < kStreamData ? len : kStreamData;
  XorStream(out, in, ks + 64, covered);
  if (len > covered) {
    unsigned int ctr[4];
    Counter(ctr, 1 + static_cast<uint32_t>(kStreamData / 64), nonce);
    d.chacha(out + covered, in + covered, len - covered, st.key, ctr);
  }
}

// What the AEAD's Poly1305 reads after ciphertext ct[0..len)'s whole blocks: the last partial
// block zero-padded, then the lengths block (AAD 0, then len); returns its length, 16 or 32.
size_t LastBlocks(const uint8_t* ct, size_t len, uint8_t last[32]) {
  size_t whole = len & ~size_t(15), rest = len - whole;
  std::memset(last, 0, 32);
  std::memcpy(last, ct + whole, rest);
  size_t lastLen = rest == 0 ? 16 : 32;
  uint64_t total = len;
  std::memcpy(last + lastLen - 8, &total, 8);  // little-endian (x86/arm LE), after 8 zero bytes of AAD length
  return lastLen;
}

// Poly1305 tag of (empty AAD, ciphertext ct[0..len)), keyed by block 0 of the keystream ks.
void Tag(const Direct& d, DirectState& st, const uint8_t* ks, const uint8_t* ct, size_t len, uint8_t tag[16]) {
  st.polyUsed = d.polySize;
  d.polyInit(st.poly, ks);
  // The whole blocks, then the last partial block, its zero padding and the lengths block in
  // one call: each call costs OpenSSL a blocks pass of its own (a 1420-byte packet made three).
  size_t whole = len & ~size_t(15);
  if (whole > 0) d.polyUpdate(st.poly, ct, whole);
  alignas(16) uint8_t last[32];
  d.polyUpdate(st.poly, last, LastBlocks(ct, len, last));
  d.polyFinal(st.poly, tag);
}

// Whose Poly1305 tags a group of packets: the lanes (poly1305_lanes.cc) where the CPU has them,
// unless a test switched to OpenSSL's, which always tags lone packets.
bool polyLanes = true;

}  // namespace

// Common argument layout of sealBatch/openBatch:
//  0 keys      Uint8Array, 32 bytes per key
//  1 keyIndex  Uint32Array (key of packet i) or null (every packet uses key 0)
//  2 src       bytes       3 srcOffsets Uint32Array   4 srcLengths Uint32Array
//  5 counters  BigUint64Array (or any bytes: 8 LE bytes per packet)
//  6 dst       bytes       7 dstOffsets Uint32Array   8 dstLengths Uint32Array (written)
//  9 count     number
// One N-API call per argument (ToBytes/ToWords): on an idle tunnel each call is one packet.
bool ParseBatch(const Napi::CallbackInfo& info, BatchArgs* a, size_t extra) {
  Napi::Env env = info.Env();
  if (info.Length() < 10 + extra) {
    Napi::TypeError::New(env, "aead batch: missing arguments").ThrowAsJavaScriptException();
    return false;
  }
  WordSpan srcOff, srcLen, dstOff, dstLen, keyIndex;
  if (!ToBytes(env, info[0], &a->keys) || a->keys.length % kKeyLen != 0 || a->keys.length == 0 ||
      !ToBytes(env, info[2], &a->src) || !ToBytes(env, info[5], &a->counters) || !ToBytes(env, info[6], &a->dst) ||
      !ToWords(env, info[3], &srcOff) || !ToWords(env, info[4], &srcLen) ||
      !ToWords(env, info[7], &dstOff) || !ToWords(env, info[8], &dstLen) || !info[9].IsNumber()) {
    Napi::TypeError::New(env, "aead batch: bad argument types").ThrowAsJavaScriptException();
    return false;
  }
  if (!IsNullish(env, info[1]) && !ToWords(env, info[1], &keyIndex)) {
    Napi::TypeError::New(env, "aead batch: keyIndex must be a Uint32Array or null").ThrowAsJavaScriptException();
    return false;
  }
  double c = info[9].As<Napi::Number>().DoubleValue();
  if (!(c >= 0) || std::trunc(c) != c || c > srcOff.count || c > srcLen.count || c > dstOff.count || c > dstLen.count ||
      c * 8 > a->counters.length || (keyIndex.data && c > keyIndex.count)) {
    Napi::RangeError::New(env, "aead batch: count exceeds an array").ThrowAsJavaScriptException();
    return false;
  }
  a->count = static_cast<size_t>(c);
  a->srcOff = srcOff.data;
  a->srcLen = srcLen.data;
  a->dstOff = dstOff.data;
  a->dstLen = dstLen.data;
  a->keyIndex = keyIndex.data;
  a->nkeys = a->keys.length / kKeyLen;
  for (size_t i = 0; i < a->count; i++) {
    if (a->keyIndex && a->keyIndex[i] >= a->nkeys) {
      Napi::RangeError::New(env, "aead batch: keyIndex out of range").ThrowAsJavaScriptException();
      return false;
    }
    if (a->srcLen[i] > kMaxPacket || !Within(a->srcOff[i], a->srcLen[i], a->src.length)) {
      Napi::RangeError::New(env, "aead batch: source packet outside its buffer (or over 16 MiB)").ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

namespace {

// Packet i's numbers, read once and checked again where they are used: the offset, length and
// key index arrays may share memory with dst (typed arrays may alias), so sealing one packet
// can change the numbers of the next after ParseBatch checked them.
struct Packet {
  const uint8_t* key;
  const uint8_t* in;
  size_t len;
  uint32_t dstOff;
};

inline bool Locate(const BatchArgs& a, size_t i, Packet* p) {
  uint32_t k = a.keyIndex ? a.keyIndex[i] : 0;
  uint32_t srcOff = a.srcOff[i], srcLen = a.srcLen[i];
  p->dstOff = a.dstOff[i];
  if (k >= a.nkeys || srcLen > kMaxPacket || !Within(srcOff, srcLen, a.src.length)) return false;
  p->key = a.keys.data + size_t(k) * kKeyLen;
  p->in = a.src.data + srcOff;
  p->len = srcLen;
  return true;
}

// Where packet p's output of outLength bytes goes, or nullptr when it does not fit dst.
inline uint8_t* Output(const BatchArgs& a, const Packet& p, size_t outLength) {
  return Within(p.dstOff, outLength, a.dst.length) ? a.dst.data + p.dstOff : nullptr;
}

inline void MakeNonce(const uint8_t* counters, size_t i, uint8_t nonce[12]) {
  std::memset(nonce, 0, 4);
  std::memcpy(nonce + 4, counters + i * 8, 8);  // counters are little-endian on the wire and in memory (x86/arm LE)
}

// WireGuard pads plaintext to a multiple of 16, but never beyond the MTU (padLimit; 0 = no padding).
inline size_t PaddedLength(size_t len, size_t padLimit) {
  if (padLimit == 0) return len;
  size_t padded = (len + 15) & ~size_t(15);
  if (padded > padLimit) padded = len > padLimit ? len : padLimit;
  return padded;
}

// The two backends seal and open one packet at a time behind the same calls (SetKey, Seal, Open);
// the batch loops are shared. SetKey comes only when a packet's key differs from the previous one's.
// A byte range [lo, hi) of the caller's memory; empty ranges meet nothing.
struct Span {
  uintptr_t lo = 0, hi = 0;
  Span() = default;
  Span(const void* p, size_t n) : lo(reinterpret_cast<uintptr_t>(p)), hi(lo + n) {}
  bool Meets(const Span& o) const { return lo < o.hi && o.lo < hi; }
};

class DirectAead {
 public:
  // The batch is read ahead to make the keystreams of the next packets together; `sealing`
  // says how a packet's length becomes its plaintext length (padded, or less the tag); `ok` is
  // openBatch's result array.
  DirectAead(const Direct& d, const BatchArgs& a, size_t padLimit, bool sealing, const uint8_t* ok = nullptr)
      : d_(d), a_(a), padLimit_(padLimit), sealing_(sealing) {
    grouping_ = polyLanes && ownKeystream && PolyLanesAvailable() && a.count > 1;
    if (!grouping_) return;
    // What the batch reads besides packet bytes, and what it writes besides packet output.
    const size_t n = a.count;
    read_[0] = Span(a.keys.data, a.nkeys * kKeyLen);
    read_[1] = Span(a.keyIndex, a.keyIndex ? 4 * n : 0);
    read_[2] = Span(a.srcOff, 4 * n);
    read_[3] = Span(a.srcLen, 4 * n);
    read_[4] = Span(a.dstOff, 4 * n);
    read_[5] = Span(a.counters.data, 8 * n);
    written_[0] = Span(a.dstLen, 4 * n);
    written_[1] = Span(ok, ok ? n : 0);
    // Packets are grouped only when these results cannot change anything the batch reads.
    for (const Span& w : written_) {
      for (const Span& r : read_) grouping_ = grouping_ && !w.Meets(r);
    }
    grouping_ = grouping_ && !written_[0].Meets(written_[1]);
  }
  void SetKey(const uint8_t* key) {
    std::memcpy(st_.key, key, kKeyLen);
    key_ = key;
  }

  // Packet i: in[0..len), zero-padded to `padded`, becomes out[0..padded) || tag.
  bool Seal(size_t i, const uint8_t nonce[12], const uint8_t* in, size_t len, uint8_t* out, size_t padded) {
    const uint8_t* ks = Encrypt(i, nonce, in, len, out, padded);
    Tag(d_, st_, ks, out, padded, out + padded);
    return true;
  }

  // Packet i: in[0..plain) || tag → out[0..plain) if authentic. The tag is checked first, so a
  // forgery's plaintext is never written.
  bool Open(size_t i, const uint8_t nonce[12], const uint8_t* in, size_t plain, uint8_t* out) {
    uint8_t tag[kTagLen];
    const uint8_t* ks = StreamFor(i, nonce, plain);
    Tag(d_, st_, ks, in, plain, tag);
    if (CRYPTO_memcmp(tag, in + plain, kTagLen) != 0) return false;
    ChaChaXor(d_, st_, ks, out, in, plain, nonce);
    return true;
  }

  // Packets i, i+1, ... sealed as a group when one forms (see FormGroup): each encrypted, then
  // all tagged side by side. Returns how many (0: none; the caller seals packet i alone).
  size_t SealGroup(size_t i) {
    Member g[kPolyLanes];
    size_t n = FormGroup(i, g);
    if (n == 0) return 0;
    GroupTags t;
    TagGroup(g, n, t);
    for (size_t m = 0; m < n; m++) a_.dstLen[g[m].i] = static_cast<uint32_t>(g[m].len + kTagLen);
    return n;
  }

  // Packets i, i+1, ... opened as a group when one forms: all tagged side by side, then each
  // authentic one decrypted (a forgery's plaintext is never written). Returns how many were
  // handled (0: none; the caller opens packet i alone); *good counts the authentic ones.
  size_t OpenGroup(size_t i, uint8_t* ok, size_t* good) {
    Member g[kPolyLanes];
    size_t n = FormGroup(i, g);
    if (n == 0) return 0;
    GroupTags t;
    TagGroup(g, n, t);
    for (size_t m = 0; m < n; m++) {
      Member& x = g[m];
      ok[x.i] = 0;
      a_.dstLen[x.i] = 0;
      if (CRYPTO_memcmp(t.tags[m], x.p.in + x.len, kTagLen) != 0) continue;
      if (x.p.key != key_) SetKey(x.p.key);
      ChaChaXor(d_, st_, StreamFor(x.i, x.nonce, x.len), x.out, x.p.in, x.len, x.nonce);
      ok[x.i] = 1;
      a_.dstLen[x.i] = static_cast<uint32_t>(x.len);
      ++*good;
    }
    return n;
  }

 private:
  // A packet of a group: where it is, its data length (padded plaintext or ciphertext), nonce
  // and output.
  struct Member {
    size_t i;
    Packet p;
    size_t len;
    uint8_t* out;
    uint8_t nonce[12];
  };

  // The lanes' inputs for a group: each packet's Poly1305 key (block 0's first half, copied
  // out: the next group's keystream may take its place), its tail, and for opening its tag.
  struct GroupTags {
    alignas(64) uint8_t keys[kPolyLanes][32];
    alignas(16) uint8_t tails[kPolyLanes][kPolyTailMax];
    uint8_t tags[kPolyLanes][kTagLen];
    PolyMessage messages[kPolyLanes];
    void Add(size_t m, const uint8_t* ks, const uint8_t* ct, size_t len, uint8_t* tag) {
      std::memcpy(keys[m], ks, 32);
      size_t tailLen = LastBlocks(ct, len, tails[m]);
      messages[m] = PolyMessage{keys[m], ct, len / 16, tails[m], tailLen, tag};
    }
    // A computed tag is the forgery's valid tag; it goes with the keys.
    ~GroupTags() {
      WipeSecret(keys, sizeof keys);
      WipeSecret(tags, sizeof tags);
    }
  };

  // Tags a group's members g[0..n) in lanes: sealing, each packet is encrypted first and its tag
  // goes after its ciphertext; opening, the ciphertext is tagged as it is, the tags left in t.tags.
  void TagGroup(Member* g, size_t n, GroupTags& t) {
    for (size_t m = 0; m < n; m++) {
      Member& x = g[m];
      if (x.p.key != key_) SetKey(x.p.key);
      if (sealing_) {
        t.Add(m, Encrypt(x.i, x.nonce, x.p.in, x.p.len, x.out, x.len), x.out, x.len, x.out + x.len);
      } else {
        t.Add(m, StreamFor(x.i, x.nonce, x.len), x.p.in, x.len, t.tags[m]);
      }
    }
    PolyLanes(t.messages, n);
  }

  // Up to kPolyLanes packets from i on, in order, that can be handled in any order: each
  // located with its output in dst, no output meeting another member's input or output, the
  // arrays the batch reads, or the result arrays. Their keystreams are made in one go. Returns
  // 0 when grouping is off or the lanes would not pay for so few packets.
  size_t FormGroup(size_t i, Member* g) {
    if (!grouping_) return 0;
    size_t n = 0, longest = 0, blocks = 0;
    for (size_t k = i; k < a_.count && n < kPolyLanes; k++) {
      Member& x = g[n];
      if (!Locate(a_, k, &x.p)) break;
      size_t outLen;
      if (sealing_) {
        x.len = PaddedLength(x.p.len, padLimit_);
        outLen = x.len + kTagLen;
      } else {
        if (x.p.len < kTagLen) break;
        x.len = outLen = x.p.len - kTagLen;
      }
      x.out = Output(a_, x.p, outLen);
      if (!x.out) break;
      Span in(x.p.in, x.p.len), out(x.out, outLen);
      bool apart = true;
      for (const Span& r : read_) apart = apart && !out.Meets(r);
      for (const Span& w : written_) apart = apart && !out.Meets(w) && !in.Meets(w);
      for (size_t m = 0; m < n && apart; m++) {
        Span otherIn(g[m].p.in, g[m].p.len), otherOut(g[m].out, sealing_ ? g[m].len + kTagLen : g[m].len);
        apart = !out.Meets(otherIn) && !out.Meets(otherOut) && !in.Meets(otherOut);
      }
      if (!apart) break;
      x.i = k;
      MakeNonce(a_.counters.data, k, x.nonce);
      size_t b = x.len / 16 + 2;
      longest = b > longest ? b : longest;
      blocks += b;
      n++;
    }
    if (!LanesPay(n, longest, blocks)) return 0;
    // The group's keystreams together, unless they were all made ahead already.
    if (!(i >= first_ && i - first_ + n <= count_)) MakeAhead(i, g[0].p.key, g[0].nonce, StreamBytes(g[0].len), n);
    return n;
  }

  // Lanes cost the longest packet's blocks once for the group (~11 ns a block of eight lanes
  // plus ~30 ns on this machine's AMD EPYC with AVX-512 IFMA); OpenSSL's Poly1305 costs each packet ~35 ns
  // of setup and ~2 ns a block (its IFMA path; measured with aeadPoly1305, 64 and 1420 bytes).
  static bool LanesPay(size_t n, size_t longest, size_t blocks) {
    return n >= 2 && 11 * longest + 30 < 35 * n + 2 * blocks;
  }

  // Packet i's data encrypted into out (seal's layout; see Seal); returns its keystream.
  const uint8_t* Encrypt(size_t i, const uint8_t nonce[12], const uint8_t* in, size_t len, uint8_t* out, size_t padded) {
    const uint8_t* ks = StreamFor(i, nonce, padded);
    auto ip = reinterpret_cast<uintptr_t>(in), op = reinterpret_cast<uintptr_t>(out);
    if (padded <= kStreamData && (op == ip || op + padded <= ip || ip + len <= op)) {
      // Straight from the input; the zero padding encrypts to the keystream itself.
      XorStream(out, in, ks + 64, len);
      std::memcpy(out + len, ks + 64 + len, padded - len);
    } else {
      // Overlapping or longer: laid out in the output and encrypted there.
      if (out != in) std::memmove(out, in, len);
      std::memset(out + len, 0, padded - len);
      ChaChaXor(d_, st_, ks, out, out, padded, nonce);
    }
    return ks;
  }

  // A packet whose keystream was made ahead: what it was made for, and where it is.
  struct Ahead {
    const uint8_t* key;
    uint8_t nonce[12];
    size_t bytes;
    uint8_t* stream;
  };

  // Packet i's keystream (block 0 on) for len bytes of data with the current key and `nonce`.
  // Made ahead with the packets after it when it is not; a packet whose key, counter or length
  // changed since it was read ahead (the batch's arrays may alias dst) gets its own again.
  const uint8_t* StreamFor(size_t i, const uint8_t nonce[12], size_t len) {
    if (!ownKeystream) {
      Keystream(d_, st_, len, nonce);
      return st_.stream;
    }
    size_t bytes = StreamBytes(len);
    if (i >= first_ && i - first_ < count_) {
      const Ahead& h = ahead_[i - first_];
      if (h.key == key_ && h.bytes >= bytes && std::memcmp(h.nonce, nonce, 12) == 0) return h.stream;
    }
    MakeAhead(i, key_, nonce, bytes, kGroupBlocks);
    return ahead_[0].stream;
  }

  // Keystreams for packet i (as given) and as many of the packets after it as fit kGroupBlocks,
  // `most` packets at most.
  void MakeAhead(size_t i, const uint8_t* key, const uint8_t nonce[12], size_t bytes, size_t most) {
    ChaChaStream streams[kGroupBlocks];
    size_t blocks = 0;
    first_ = i;
    count_ = 0;
    for (size_t k = i; k < a_.count && count_ < most; k++) {
      Ahead& h = ahead_[count_];
      if (k == i) {
        h.key = key;
        std::memcpy(h.nonce, nonce, 12);
        h.bytes = bytes;
      } else {
        Packet p;
        if (!Locate(a_, k, &p)) break;
        size_t len;
        if (sealing_) {
          len = PaddedLength(p.len, padLimit_);
        } else {
          if (p.len < kTagLen) break;
          len = p.len - kTagLen;
        }
        h.key = p.key;
        MakeNonce(a_.counters.data, k, h.nonce);
        h.bytes = StreamBytes(len);
      }
      size_t n = (h.bytes + 63) / 64;
      if (blocks + n > kGroupBlocks) break;
      h.stream = st_.stream + 64 * blocks;
      streams[count_] = ChaChaStream{h.key, h.nonce, 0, n, h.stream};
      blocks += n;
      count_++;
    }
    // GCC 12 warns for a const array passed on whose first count_ entries were all written.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    ChaChaStreams(streams, count_);
#pragma GCC diagnostic pop
    if (64 * blocks > st_.streamUsed) st_.streamUsed = 64 * blocks;
  }

  const Direct& d_;
  const BatchArgs& a_;
  const size_t padLimit_;
  const bool sealing_;
  const uint8_t* key_ = nullptr;
  DirectState st_;
  Ahead ahead_[kGroupBlocks];
  size_t first_ = 0, count_ = 0;
  bool grouping_ = false;
  Span read_[6], written_[2];
};

class EvpAead {
 public:
  explicit EvpAead(bool encrypt) {
    ready_ = c_.ctx && (encrypt ? EVP_EncryptInit_ex(c_.ctx, Cipher(), nullptr, nullptr, nullptr)
                                : EVP_DecryptInit_ex(c_.ctx, Cipher(), nullptr, nullptr, nullptr)) == 1;
  }
  // The context must not keep the batch's last key between calls: resetting it frees the
  // cipher's state with OPENSSL_clear_free (the next batch sets its cipher again, as it did).
  ~EvpAead() {
    if (c_.ctx) EVP_CIPHER_CTX_reset(c_.ctx);
  }
  bool Ready() const { return ready_; }
  // Handed to the next init; the context keeps it for the packets after.
  void SetKey(const uint8_t* key) { key_ = key; }

  bool Seal(size_t, const uint8_t nonce[12], const uint8_t* in, size_t len, uint8_t* out, size_t padded) {
    static const uint8_t zeros[16] = {0};
    if (EVP_EncryptInit_ex(c_.ctx, nullptr, nullptr, key_, nonce) != 1) return false;
    key_ = nullptr;
    int n = 0, total = 0;
    if (len > 0 && EVP_EncryptUpdate(c_.ctx, out, &n, in, static_cast<int>(len)) != 1) return false;
    total += n;
    n = 0;
    if (padded > len && EVP_EncryptUpdate(c_.ctx, out + total, &n, zeros, static_cast<int>(padded - len)) != 1) return false;
    total += n;
    n = 0;
    if (EVP_EncryptFinal_ex(c_.ctx, out + total, &n) != 1) return false;
    total += n;
    return EVP_CIPHER_CTX_ctrl(c_.ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, out + total) == 1;
  }

  bool Open(size_t, const uint8_t nonce[12], const uint8_t* in, size_t plain, uint8_t* out) {
    if (EVP_DecryptInit_ex(c_.ctx, nullptr, nullptr, key_, nonce) != 1) return false;
    key_ = nullptr;
    // OpenSSL wants a non-const tag pointer; a copy, so in-place decryption cannot disturb it.
    uint8_t tag[kTagLen];
    std::memcpy(tag, in + plain, kTagLen);
    int n = 0;
    if (plain > 0 && EVP_DecryptUpdate(c_.ctx, out, &n, in, static_cast<int>(plain)) != 1) return false;
    if (EVP_CIPHER_CTX_ctrl(c_.ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) != 1) return false;
    return EVP_DecryptFinal_ex(c_.ctx, out + n, &n) == 1;
  }

 private:
  Ctx c_;
  const uint8_t* key_ = nullptr;
  bool ready_ = false;
};

template <class Aead>
size_t SealAll(Aead& aead, const BatchArgs& a, size_t padLimit) {
  const uint8_t* currentKey = nullptr;
  uint8_t nonce[12];
  size_t done = 0;
  for (size_t i = 0; i < a.count; i++) {
    if constexpr (std::is_same_v<Aead, DirectAead>) {
      if (size_t n = aead.SealGroup(i)) {
        done += n;
        i += n - 1;
        currentKey = nullptr;
        continue;
      }
    }
    Packet p;
    if (!Locate(a, i, &p)) break;
    size_t padded = PaddedLength(p.len, padLimit);
    uint8_t* out = Output(a, p, padded + kTagLen);
    if (!out) break;
    if (p.key != currentKey) { aead.SetKey(p.key); currentKey = p.key; }
    MakeNonce(a.counters.data, i, nonce);
    if (!aead.Seal(i, nonce, p.in, p.len, out, padded)) break;
    a.dstLen[i] = static_cast<uint32_t>(padded + kTagLen);
    done++;
  }
  return done;
}

template <class Aead>
size_t OpenAll(Aead& aead, const BatchArgs& a, uint8_t* ok) {
  const uint8_t* currentKey = nullptr;
  uint8_t nonce[12];
  size_t good = 0;
  for (size_t i = 0; i < a.count; i++) {
    if constexpr (std::is_same_v<Aead, DirectAead>) {
      if (size_t n = aead.OpenGroup(i, ok, &good)) {
        i += n - 1;
        currentKey = nullptr;
        continue;
      }
    }
    Packet p;
    bool located = Locate(a, i, &p);
    ok[i] = 0;
    a.dstLen[i] = 0;
    // Too short to hold a tag (or no longer where it was checked): never authentic.
    if (!located || p.len < kTagLen) continue;
    size_t plain = p.len - kTagLen;
    uint8_t* out = Output(a, p, plain);
    if (!out) continue;
    if (p.key != currentKey) { aead.SetKey(p.key); currentKey = p.key; }
    MakeNonce(a.counters.data, i, nonce);
    if (!aead.Open(i, nonce, p.in, plain, out)) continue;
    ok[i] = 1;
    a.dstLen[i] = static_cast<uint32_t>(plain);
    good++;
  }
  return good;
}

Napi::Value Unavailable(Napi::Env env) {
  Napi::Error::New(env, "aead: OpenSSL ChaCha20-Poly1305 unavailable").ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

// sealBatch(...common, padLimit) → number of packets sealed. dst gets ciphertext||tag,
// dstLengths[i] = padded length + 16.
Napi::Value AeadSealBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs a;
  if (!ParseBatch(info, &a, 1)) return env.Undefined();
  size_t padLimit = 0;
  if (!IsNullish(env, info[10])) {
    int64_t limit;
    if (!Args(info, "aeadSealBatch").Int(10, "padLimit", 0, kMaxPacket, &limit)) return env.Undefined();
    padLimit = static_cast<size_t>(limit);
  }
  for (size_t i = 0; i < a.count; i++) {
    size_t out = PaddedLength(a.srcLen[i], padLimit) + kTagLen;
    if (!Within(a.dstOff[i], out, a.dst.length)) {
      Napi::RangeError::New(env, "aead seal: destination too small").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  size_t done;
  if (DirectInUse()) {
    DirectAead aead(Primitives(), a, padLimit, true);
    done = SealAll(aead, a, padLimit);
  } else {
    EvpAead aead(true);
    if (!aead.Ready()) return Unavailable(env);
    done = SealAll(aead, a, padLimit);
  }
  return Napi::Number::New(env, static_cast<double>(done));
}

// openBatch(...common, ok: Uint8Array) → number authenticated. ok[i] = 1 when packet i
// authenticated; dstLengths[i] = plaintext length (0 on failure). Failed packets' output bytes are
// unspecified and must not be used.
Napi::Value AeadOpenBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs a;
  if (!ParseBatch(info, &a, 1)) return env.Undefined();
  ByteSpan ok;
  if (!ToBytes(env, info[10], &ok) || ok.length < a.count) {
    Napi::TypeError::New(env, "aead open: ok must be a Uint8Array of count bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (size_t i = 0; i < a.count; i++) {
    size_t plain = a.srcLen[i] >= kTagLen ? a.srcLen[i] - kTagLen : 0;
    if (!Within(a.dstOff[i], plain, a.dst.length)) {
      Napi::RangeError::New(env, "aead open: destination too small").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  size_t good;
  if (DirectInUse()) {
    DirectAead aead(Primitives(), a, 0, false, ok.data);
    good = OpenAll(aead, a, ok.data);
  } else {
    EvpAead aead(false);
    if (!aead.Ready()) return Unavailable(env);
    good = OpenAll(aead, a, ok.data);
  }
  return Napi::Number::New(env, static_cast<double>(good));
}

namespace {

// aeadBackend(use?: "direct" | "evp") → the backend in effect ("evp" when the node binary does
// not export the block functions). Tests use it to run both paths.
Napi::Value Backend(const Napi::CallbackInfo& info) {
  Args a(info, "aeadBackend");
  if (a.Has(0)) {
    std::string use;
    if (!a.OneOf(0, "use", {"direct", "evp"}, &use)) return info.Env().Undefined();
    useDirect = use == "direct";
  }
  return Napi::String::New(info.Env(), DirectInUse() ? "direct" : "evp");
}

// aeadChaCha(use?: "avx512" | "avx2" | "portable" | "openssl") → the ChaCha20 that makes the
// direct path's keystream. Tests run every width the CPU has against OpenSSL's; a width the
// CPU lacks is refused with a RangeError.
Napi::Value ChaChaChoice(const Napi::CallbackInfo& info) {
  Args a(info, "aeadChaCha");
  static const std::pair<const char*, ChaChaWidth> kWidths[] = {
      {"avx512", ChaChaWidth::Avx512}, {"avx2", ChaChaWidth::Avx2}, {"portable", ChaChaWidth::Portable}};
  if (a.Has(0)) {
    std::string use;
    if (!a.OneOf(0, "use", {"avx512", "avx2", "portable", "openssl"}, &use)) return info.Env().Undefined();
    for (const auto& [name, width] : kWidths) {
      if (use == name && !ChaChaUse(width)) {
        Napi::RangeError::New(info.Env(), "aeadChaCha: this CPU lacks " + use).ThrowAsJavaScriptException();
        return info.Env().Undefined();
      }
    }
    ownKeystream = use != "openssl";
  }
  if (!ownKeystream) return Napi::String::New(info.Env(), "openssl");
  for (const auto& [name, width] : kWidths) {
    if (width == ChaChaInUse()) return Napi::String::New(info.Env(), name);
  }
  return info.Env().Undefined();
}

// aeadPoly(use?: "lanes" | "openssl") → whose Poly1305 tags groups of packets in the direct
// path. Tests run both; "lanes" on a CPU without AVX-512 IFMA is refused with a RangeError.
Napi::Value PolyChoice(const Napi::CallbackInfo& info) {
  Args a(info, "aeadPoly");
  if (a.Has(0)) {
    std::string use;
    if (!a.OneOf(0, "use", {"lanes", "openssl"}, &use)) return info.Env().Undefined();
    if (use == "lanes" && !PolyLanesAvailable()) {
      Napi::RangeError::New(info.Env(), "aeadPoly: this CPU lacks AVX-512 IFMA").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    polyLanes = use == "lanes";
  }
  return Napi::String::New(info.Env(), polyLanes && PolyLanesAvailable() ? "lanes" : "openssl");
}

// aeadPoly1305(use: "lanes" | "openssl", keys, data, offsets, lengths, tags) → messages tagged.
// Plain Poly1305 (not the AEAD) of message i = data[offsets[i] .. + lengths[i]) under the 32
// bytes keys[32i..), its tag to tags[16i..). Tests check the lanes against RFC 8439's vectors
// and against OpenSSL's; the cost benchmark times both on the same messages.
Napi::Value Poly1305Tags(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "aeadPoly1305");
  std::string use;
  ByteSpan keys, data, tags;
  WordSpan offsets, lengths;
  if (!a.OneOf(0, "use", {"lanes", "openssl"}, &use) || !a.Bytes(1, "keys", &keys) || !a.Bytes(2, "data", &data) ||
      !a.Words(3, "offsets", &offsets) || !a.Words(4, "lengths", &lengths) || !a.Bytes(5, "tags", &tags)) {
    return env.Undefined();
  }
  const size_t count = offsets.count;
  if (lengths.count != count || keys.length / kKeyLen < count || tags.length / kTagLen < count) {
    a.Range("keys, lengths and tags must cover every offset");
    return env.Undefined();
  }
  for (size_t i = 0; i < count; i++) {
    if (!Within(offsets.data[i], lengths.data[i], data.length)) { a.Range("message outside data"); return env.Undefined(); }
  }
  if (use == "lanes" && !PolyLanesAvailable()) {
    Napi::RangeError::New(env, "aeadPoly1305: this CPU lacks AVX-512 IFMA").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Tags go to a copy first: the caller's tags may overlap its messages or keys.
  constexpr size_t kChunk = 64;
  PolyMessage messages[kChunk];
  uint8_t out[kChunk][kTagLen];
  for (size_t first = 0; first < count; first += kChunk) {
    size_t n = count - first < kChunk ? count - first : kChunk;
    if (use == "lanes") {
      for (size_t j = 0; j < n; j++) {
        size_t i = first + j, len = lengths.data[i], whole = len / 16;
        const uint8_t* msg = data.data + offsets.data[i];
        messages[j] = PolyMessage{keys.data + kKeyLen * i, msg, whole, msg + 16 * whole, len - 16 * whole, out[j]};
      }
      PolyLanes(messages, n);
    } else {
      const Direct& d = Primitives();
      if (!d.available) return Unavailable(env);
      alignas(64) unsigned char ctx[kPolyCtxMax];
      for (size_t j = 0; j < n; j++) {
        size_t i = first + j;
        d.polyInit(ctx, keys.data + kKeyLen * i);
        d.polyUpdate(ctx, data.data + offsets.data[i], lengths.data[i]);
        d.polyFinal(ctx, out[j]);
      }
      WipeSecret(ctx, d.polySize);
    }
    std::memcpy(tags.data + kTagLen * first, out, kTagLen * n);
  }
  return Napi::Number::New(env, static_cast<double>(count));
}
}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("aeadBackend", Napi::Function::New(env, Backend, "aeadBackend"));
  exports.Set("aeadSealBatch", Napi::Function::New(env, AeadSealBatch, "aeadSealBatch"));
  exports.Set("aeadOpenBatch", Napi::Function::New(env, AeadOpenBatch, "aeadOpenBatch"));
  exports.Set("aeadChaCha", Napi::Function::New(env, ChaChaChoice, "aeadChaCha"));
  exports.Set("aeadPoly", Napi::Function::New(env, PolyChoice, "aeadPoly"));
  exports.Set("aeadPoly1305", Napi::Function::New(env, Poly1305Tags, "aeadPoly1305"));
}

}  // namespace tuntap
