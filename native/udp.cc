// Placeholder: filled in by the layer that owns it.
#include "common.h"

namespace tuntap {
void InitUdp(Napi::Env env, Napi::Object exports) {}
}  // namespace tuntap
