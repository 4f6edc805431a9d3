// The AEAD's two JS entry points and their argument reader (native/aead.cc), declared for the
// test hook that calls them as JS does and reads the same arguments (native/aead_residue.cc).
#pragma once
#include "common.h"

namespace tuntap {

// sealBatch's/openBatch's arguments, checked (layout in aead.cc).
struct BatchArgs {
  ByteSpan keys, src, dst, counters;
  const uint32_t* keyIndex = nullptr;
  const uint32_t *srcOff = nullptr, *srcLen = nullptr, *dstOff = nullptr;
  uint32_t* dstLen = nullptr;
  size_t count = 0;
  size_t nkeys = 0;
};

// Reads and checks them (`extra`: arguments after count); false with a JS exception pending.
bool ParseBatch(const Napi::CallbackInfo& info, BatchArgs* a, size_t extra);

Napi::Value AeadSealBatch(const Napi::CallbackInfo& info);
Napi::Value AeadOpenBatch(const Napi::CallbackInfo& info);

}  // namespace tuntap
