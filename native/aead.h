// The AEAD's two JS entry points (native/aead.cc), declared for the test hook that calls them
// as JS does (native/aead_residue.cc).
#pragma once
#include "common.h"

namespace tuntap {

Napi::Value AeadSealBatch(const Napi::CallbackInfo& info);
Napi::Value AeadOpenBatch(const Napi::CallbackInfo& info);

}  // namespace tuntap
