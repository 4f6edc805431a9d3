// Gathered I/O lists handed in from JS: each output (a frame written to a TAP, a datagram sent)
// is a run of pieces, each piece a range of one of a few source buffers. A tunnel then writes a
// super-frame as [its rebuilt headers, the payload slices where they were received] and sends a
// split as [segment headers, payload slice of the super-frame] without copying either into one
// buffer first. Everything is checked before any pointer is used, in arithmetic that cannot wrap.
#pragma once
#include "common.h"
#include <sys/uio.h>
#include <vector>

namespace tuntap {

// Bounds on one call: sources in the Array, pieces in all, and pieces of one output (the
// kernel's UIO_MAXIOV for one writev or message).
static constexpr uint32_t kMaxGatherSources = 16;
static constexpr uint32_t kMaxGatherPieces = 16384;
static constexpr uint32_t kMaxPiecesPerOutput = 1024;

// Built by Take() from the arguments (sources, pieces, ends, start, count) at `at`..`at + 4`:
//   sources: Array of up to kMaxGatherSources Uint8Arrays;
//   pieces:  Uint32Array of (source index, offset, length) triples;
//   ends:    Uint32Array, output i is pieces [ends[i - 1], ends[i]) (ends[-1] = 0), at least one
//            and at most kMaxPiecesPerOutput pieces, every ends[i] past the one before;
//   start, count: the outputs to take are start..count-1 (a caller going on after a refusal).
// iov[k] is piece k; output start + i is iov[outputStart[i] .. outputStart[i + 1]), bytes[i]
// long (at most maxBytes); `count` becomes the number of outputs taken.
class GatherList {
 public:
  std::vector<iovec> iov;
  std::vector<uint32_t> outputStart;
  std::vector<size_t> bytes;
  uint32_t count = 0;
  uint32_t start = 0;

  // Sources are read (which may run a getter's JS) before any span is taken, and each word of
  // pieces and ends is read once, then checked and used: they may share memory with a source.
  bool Take(const Args& a, size_t at, size_t maxBytes) {
    napi_env env = a.env();
    bool isArray = false;
    if (napi_is_array(env, a[at], &isArray) != napi_ok || !isArray) return a.Type("sources must be an Array of Uint8Array");
    uint32_t nSources = 0;
    napi_get_array_length(env, a[at], &nSources);
    if (nSources == 0 || nSources > kMaxGatherSources) {
      return a.Range("sources must hold 1 to " + std::to_string(kMaxGatherSources) + " buffers");
    }
    napi_value values[kMaxGatherSources];
    for (uint32_t s = 0; s < nSources; s++) {
      if (napi_get_element(env, a[at], s, &values[s]) != napi_ok) return false;
    }
    WordSpan pieces, ends;
    if (!a.Words(at + 1, "pieces", &pieces) || !a.Words(at + 2, "ends", &ends) ||
        !a.U32(at + 3, "start", &start, kMaxGatherPieces) || !a.U32(at + 4, "count", &count, kMaxGatherPieces)) {
      return false;
    }
    // Spans are taken last: no JS runs after this until the call returns.
    ByteSpan sources[kMaxGatherSources];
    for (uint32_t s = 0; s < nSources; s++) {
      if (!ToBytes(env, values[s], &sources[s])) return a.Type("each source must be a Uint8Array");
    }
    if (count > ends.count || start > count) return a.Range("start..count must lie within ends");
    size_t nPieces = pieces.count / 3;
    iov.resize(std::min<size_t>(nPieces, kMaxGatherPieces));
    count -= start;
    outputStart.resize(static_cast<size_t>(count) + 1);
    bytes.resize(count);
    uint32_t from = start == 0 ? 0 : ends.data[start - 1];
    for (uint32_t i = 0; i < count; i++) {
      uint32_t end = ends.data[start + i];
      if (end <= from || end > nPieces || end > kMaxGatherPieces || end - from > kMaxPiecesPerOutput) {
        return a.Range("ends[" + std::to_string(start + i) + "] = " + std::to_string(end) + " must be past " + std::to_string(from) +
                       " by 1 to " + std::to_string(kMaxPiecesPerOutput) + " pieces and within the " +
                       std::to_string(nPieces) + " pieces given");
      }
      outputStart[i] = from;
      size_t total = 0;
      for (uint32_t k = from; k < end; k++) {
        uint32_t source = pieces.data[3 * static_cast<size_t>(k)];
        uint32_t offset = pieces.data[3 * static_cast<size_t>(k) + 1];
        uint32_t length = pieces.data[3 * static_cast<size_t>(k) + 2];
        if (source >= nSources || !Within(offset, length, sources[source].length)) {
          return a.Range("piece " + std::to_string(k) + " lies outside its source");
        }
        // Both at most maxBytes (far below SIZE_MAX), so the sum cannot wrap.
        if (length > maxBytes || total > maxBytes - length) {
          return a.Range("output " + std::to_string(i) + " is longer than " + std::to_string(maxBytes) + " bytes");
        }
        total += length;
        // An empty piece of a detached buffer has no data pointer; offsetting null is undefined.
        iov[k].iov_base = length == 0 ? nullptr : sources[source].data + offset;
        iov[k].iov_len = length;
      }
      bytes[i] = total;
      from = end;
    }
    outputStart[count] = from;
    return true;
  }
};

}  // namespace tuntap
