// The C library's allocator: how much free memory at the top of a heap it keeps before handing
// it back. glibc raises that threshold on its own (to twice the largest block it freed, up to
// 64 MiB) and, in the arenas of V8's worker threads, trims only when a block is freed, never on
// malloc_trim(): a process that went quiet keeps a few MiB per arena. Fixing the threshold
// (mallopt M_TRIM_THRESHOLD, which also stops the raising) makes each heap give it back.
#include <malloc.h>
#include <climits>
#include "common.h"

namespace tuntap {

// setMallocTrimThreshold(bytes) -> whether glibc took it.
static Napi::Value SetMallocTrimThreshold(const Napi::CallbackInfo& info) {
  Args a(info, "setMallocTrimThreshold");
  uint32_t bytes;
  if (!a.U32(0, "bytes", &bytes, INT_MAX)) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes)) == 1);
}

void InitMalloc(Napi::Env env, Napi::Object exports) {
  exports.Set("setMallocTrimThreshold", Napi::Function::New(env, SetMallocTrimThreshold, "setMallocTrimThreshold"));
}

}  // namespace tuntap
