// Placeholder: filled in by the layer that owns it.
#include "common.h"

namespace tuntap {
void InitNetlink(Napi::Env env, Napi::Object exports) {}
}  // namespace tuntap
