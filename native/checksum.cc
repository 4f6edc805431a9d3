// Internet checksum (RFC 1071) over many ranges of one buffer in one call: a tunnel that cuts a
// super-frame into wire-size segments needs every segment's transport checksum, and at ~1.4 KB
// per segment the sum is the part of the split that JavaScript does slowest. The protocol (which
// ranges, which pseudo-header, where the result goes) stays in TypeScript.
#include "common.h"

namespace tuntap {

// One's-complement sum of b[0..n) as big-endian 16-bit words (an odd tail padded with zero),
// folded to 16 bits. Summed as little-endian 32-bit words with the carries kept in 64 bits, then
// byte-swapped: one's-complement addition commutes with swapping the bytes (RFC 1071 §2(B)).
static uint32_t SumBytes(const uint8_t* b, size_t n) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint32_t w[4];
    std::memcpy(w, b + i, sizeof w);
    acc += static_cast<uint64_t>(w[0]) + w[1] + w[2] + w[3];
  }
  for (; i + 4 <= n; i += 4) {
    uint32_t w;
    std::memcpy(&w, b + i, sizeof w);
    acc += w;
  }
  for (; i + 2 <= n; i += 2) acc += static_cast<uint32_t>(b[i]) | (static_cast<uint32_t>(b[i + 1]) << 8);
  if (i < n) acc += b[i];
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint32_t little = static_cast<uint32_t>(acc);
  return ((little & 0xff) << 8) | (little >> 8);
}

// checksumRanges(buffer, starts, ends, sums, count): for i < count, sums[i] becomes the folded
// (not complemented) one's-complement sum of sums[i] (a running sum to start from, e.g. the
// pseudo-header's) and buffer[starts[i] .. ends[i]). Every range is checked against the buffer.
static Napi::Value ChecksumRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "checksumRanges");
  ByteSpan buffer;
  WordSpan starts, ends, sums;
  uint32_t count;
  if (!a.Bytes(0, "buffer", &buffer) || !a.Words(1, "starts", &starts) || !a.Words(2, "ends", &ends) ||
      !a.Words(3, "sums", &sums) || !a.U32(4, "count", &count)) {
    return env.Undefined();
  }
  if (count > starts.count || count > ends.count || count > sums.count) {
    a.Range("count is larger than starts, ends or sums hold");
    return env.Undefined();
  }
  for (uint32_t i = 0; i < count; i++) {
    uint32_t start = starts.data[i], end = ends.data[i];
    if (start > end || !Within(start, end - start, buffer.length)) {
      a.Range("range " + std::to_string(i) + " (" + std::to_string(start) + ".." + std::to_string(end) +
              ") lies outside the buffer's " + std::to_string(buffer.length) + " bytes");
      return env.Undefined();
    }
  }
  for (uint32_t i = 0; i < count; i++) {
    // An empty range adds nothing (and a detached buffer has no data pointer to offset).
    if (ends.data[i] == starts.data[i]) continue;
    uint64_t s = static_cast<uint64_t>(sums.data[i]) + SumBytes(buffer.data + starts.data[i], ends.data[i] - starts.data[i]);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    sums.data[i] = static_cast<uint32_t>(s);
  }
  return env.Undefined();
}

void InitChecksum(Napi::Env env, Napi::Object exports) {
  exports.Set("checksumRanges", Napi::Function::New(env, ChecksumRanges, "checksumRanges"));
}

}  // namespace tuntap
