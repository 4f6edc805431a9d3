// Internet checksum (RFC 1071) over many ranges of one buffer in one call: a tunnel that cuts a
// super-frame into wire-size segments needs every segment's transport checksum, and at ~1.4 KB
// per segment the sum is the part of the split that JavaScript does slowest. The protocol (which
// ranges, which pseudo-header, where the result goes) stays in TypeScript.
#include "common.h"
#include "checksum_sum.h"

namespace tuntap {

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
