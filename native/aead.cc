// ChaCha20-Poly1305 (RFC 8439) over a whole batch of packets in one call, with the OpenSSL that
// Node itself exports (symbols resolve from the node binary; no second crypto library).
// WireGuard's nonce is 4 zero bytes followed by the 64-bit little-endian message counter.
// One EVP_CIPHER_CTX serves the whole call; keys are re-set only when a packet's key changes.
#include "common.h"
#include <openssl/evp.h>
#include <cstdint>
#include <cstring>

namespace tuntap {
namespace {

constexpr size_t kKeyLen = 32;
constexpr size_t kTagLen = 16;

// Raw bytes of any TypedArray / Buffer / DataView argument.
struct Bytes {
  uint8_t* data = nullptr;
  size_t length = 0;
};

bool GetBytes(const Napi::Value& v, Bytes* out) {
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    Napi::ArrayBuffer ab = ta.ArrayBuffer();
    out->data = static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
    out->length = ta.ByteLength();
    return true;
  }
  if (v.IsDataView()) {
    Napi::DataView dv = v.As<Napi::DataView>();
    out->data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    out->length = dv.ByteLength();
    return true;
  }
  return false;
}

bool GetU32(const Napi::Value& v, const uint32_t** out, size_t* count) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) return false;
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  *out = a.Data();
  *count = a.ElementLength();
  return true;
}

// The cipher is fetched from the provider once (an implicit fetch on every init costs more than
// sealing a small packet), and each thread keeps one context for all its calls.
const EVP_CIPHER* Cipher() {
  static const EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  return cipher ? cipher : EVP_chacha20_poly1305();
}

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

// Common argument layout of sealBatch/openBatch:
//  0 keys      Uint8Array, 32 bytes per key
//  1 keyIndex  Uint32Array (key of packet i) or null (every packet uses key 0)
//  2 src       bytes       3 srcOffsets Uint32Array   4 srcLengths Uint32Array
//  5 counters  BigUint64Array (or any bytes: 8 LE bytes per packet)
//  6 dst       bytes       7 dstOffsets Uint32Array   8 dstLengths Uint32Array (written)
//  9 count     number
struct BatchArgs {
  Bytes keys, src, dst, counters;
  const uint32_t* keyIndex = nullptr;
  const uint32_t *srcOff = nullptr, *srcLen = nullptr, *dstOff = nullptr;
  uint32_t* dstLen = nullptr;
  size_t count = 0;
};

bool ParseBatch(const Napi::CallbackInfo& info, BatchArgs* a, size_t extra) {
  Napi::Env env = info.Env();
  if (info.Length() < 10 + extra) {
    Napi::TypeError::New(env, "aead batch: missing arguments").ThrowAsJavaScriptException();
    return false;
  }
  size_t n1, n2, n3, n4, n5 = 0;
  const uint32_t* dl;
  if (!GetBytes(info[0], &a->keys) || a->keys.length % kKeyLen != 0 || a->keys.length == 0 ||
      !GetBytes(info[2], &a->src) || !GetBytes(info[5], &a->counters) || !GetBytes(info[6], &a->dst) ||
      !GetU32(info[3], &a->srcOff, &n1) || !GetU32(info[4], &a->srcLen, &n2) ||
      !GetU32(info[7], &a->dstOff, &n3) || !GetU32(info[8], &dl, &n4) || !info[9].IsNumber()) {
    Napi::TypeError::New(env, "aead batch: bad argument types").ThrowAsJavaScriptException();
    return false;
  }
  a->dstLen = const_cast<uint32_t*>(dl);
  if (!info[1].IsNull() && !info[1].IsUndefined()) {
    if (!GetU32(info[1], &a->keyIndex, &n5)) {
      Napi::TypeError::New(env, "aead batch: keyIndex must be a Uint32Array or null").ThrowAsJavaScriptException();
      return false;
    }
  }
  double c = info[9].As<Napi::Number>().DoubleValue();
  if (!(c >= 0) || c > n1 || c > n2 || c > n3 || c > n4 || c * 8 > a->counters.length ||
      (a->keyIndex && c > n5)) {
    Napi::RangeError::New(env, "aead batch: count exceeds an array").ThrowAsJavaScriptException();
    return false;
  }
  a->count = static_cast<size_t>(c);
  size_t nkeys = a->keys.length / kKeyLen;
  for (size_t i = 0; i < a->count; i++) {
    if (a->keyIndex && a->keyIndex[i] >= nkeys) {
      Napi::RangeError::New(env, "aead batch: keyIndex out of range").ThrowAsJavaScriptException();
      return false;
    }
    if (static_cast<uint64_t>(a->srcOff[i]) + a->srcLen[i] > a->src.length) {
      Napi::RangeError::New(env, "aead batch: source packet outside its buffer").ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
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

// sealBatch(...common, padLimit) → number of packets sealed. dst gets ciphertext||tag,
// dstLengths[i] = padded length + 16.
Napi::Value SealBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs a;
  if (!ParseBatch(info, &a, 1)) return env.Undefined();
  size_t padLimit = info[10].IsNumber() ? static_cast<size_t>(info[10].As<Napi::Number>().Int64Value()) : 0;
  for (size_t i = 0; i < a.count; i++) {
    size_t out = PaddedLength(a.srcLen[i], padLimit) + kTagLen;
    if (static_cast<uint64_t>(a.dstOff[i]) + out > a.dst.length) {
      Napi::RangeError::New(env, "aead seal: destination too small").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  Ctx c;
  if (!c.ctx || EVP_EncryptInit_ex(c.ctx, Cipher(), nullptr, nullptr, nullptr) != 1) {
    Napi::Error::New(env, "aead: OpenSSL ChaCha20-Poly1305 unavailable").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  static const uint8_t zeros[16] = {0};
  uint32_t currentKey = UINT32_MAX;
  uint8_t nonce[12];
  size_t done = 0;
  for (size_t i = 0; i < a.count; i++) {
    uint32_t k = a.keyIndex ? a.keyIndex[i] : 0;
    MakeNonce(a.counters.data, i, nonce);
    const uint8_t* key = k != currentKey ? a.keys.data + size_t(k) * kKeyLen : nullptr;
    if (EVP_EncryptInit_ex(c.ctx, nullptr, nullptr, key, nonce) != 1) break;
    currentKey = k;
    const uint8_t* in = a.src.data + a.srcOff[i];
    uint8_t* out = a.dst.data + a.dstOff[i];
    size_t len = a.srcLen[i];
    size_t padded = PaddedLength(len, padLimit);
    int n = 0, total = 0;
    if (len > 0 && EVP_EncryptUpdate(c.ctx, out, &n, in, static_cast<int>(len)) != 1) break;
    total += n;
    n = 0;
    if (padded > len && EVP_EncryptUpdate(c.ctx, out + total, &n, zeros, static_cast<int>(padded - len)) != 1) break;
    total += n;
    n = 0;
    if (EVP_EncryptFinal_ex(c.ctx, out + total, &n) != 1) break;
    total += n;
    if (EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, out + total) != 1) break;
    a.dstLen[i] = static_cast<uint32_t>(total + kTagLen);
    done++;
  }
  return Napi::Number::New(env, static_cast<double>(done));
}

// openBatch(...common, ok: Uint8Array) → number authenticated. ok[i] = 1 when packet i
// authenticated; dstLengths[i] = plaintext length (0 on failure). Failed packets' output bytes are
// unspecified and must not be used.
Napi::Value OpenBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BatchArgs a;
  if (!ParseBatch(info, &a, 1)) return env.Undefined();
  Bytes ok;
  if (!GetBytes(info[10], &ok) || ok.length < a.count) {
    Napi::TypeError::New(env, "aead open: ok must be a Uint8Array of count bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (size_t i = 0; i < a.count; i++) {
    size_t plain = a.srcLen[i] >= kTagLen ? a.srcLen[i] - kTagLen : 0;
    if (static_cast<uint64_t>(a.dstOff[i]) + plain > a.dst.length) {
      Napi::RangeError::New(env, "aead open: destination too small").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  Ctx c;
  if (!c.ctx || EVP_DecryptInit_ex(c.ctx, Cipher(), nullptr, nullptr, nullptr) != 1) {
    Napi::Error::New(env, "aead: OpenSSL ChaCha20-Poly1305 unavailable").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t currentKey = UINT32_MAX;
  uint8_t nonce[12];
  size_t good = 0;
  for (size_t i = 0; i < a.count; i++) {
    ok.data[i] = 0;
    a.dstLen[i] = 0;
    size_t len = a.srcLen[i];
    if (len < kTagLen) continue;  // too short to hold a tag: malformed, never authentic
    uint32_t k = a.keyIndex ? a.keyIndex[i] : 0;
    MakeNonce(a.counters.data, i, nonce);
    const uint8_t* key = k != currentKey ? a.keys.data + size_t(k) * kKeyLen : nullptr;
    if (EVP_DecryptInit_ex(c.ctx, nullptr, nullptr, key, nonce) != 1) { currentKey = UINT32_MAX; continue; }
    currentKey = k;
    const uint8_t* in = a.src.data + a.srcOff[i];
    uint8_t* out = a.dst.data + a.dstOff[i];
    size_t plain = len - kTagLen;
    // OpenSSL wants a non-const tag pointer; copy it so in-place decryption cannot disturb it.
    uint8_t tag[kTagLen];
    std::memcpy(tag, in + plain, kTagLen);
    int n = 0, total = 0;
    if (plain > 0 && EVP_DecryptUpdate(c.ctx, out, &n, in, static_cast<int>(plain)) != 1) continue;
    total += n;
    n = 0;
    if (EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) != 1) continue;
    if (EVP_DecryptFinal_ex(c.ctx, out + total, &n) != 1) continue;
    total += n;
    ok.data[i] = 1;
    a.dstLen[i] = static_cast<uint32_t>(total);
    good++;
  }
  return Napi::Number::New(env, static_cast<double>(good));
}

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  exports.Set("aeadSealBatch", Napi::Function::New(env, SealBatch, "aeadSealBatch"));
  exports.Set("aeadOpenBatch", Napi::Function::New(env, OpenBatch, "aeadOpenBatch"));
}

}  // namespace tuntap
