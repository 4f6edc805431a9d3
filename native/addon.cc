// Module entry: each syscall family registers its own functions.
#include "common.h"

namespace tuntap { void InitPcap(Napi::Env env, Napi::Object exports); }  // native/pcap.cc
namespace tuntap { void InitNotify(Napi::Env env, Napi::Object exports); }  // native/notify.cc
namespace tuntap { void InitChecksum(Napi::Env env, Napi::Object exports); }  // native/checksum.cc
namespace tuntap { void InitRelay(Napi::Env env, Napi::Object exports); }  // native/relay.cc
namespace tuntap { void InitMalloc(Napi::Env env, Napi::Object exports); }  // native/malloc.cc
namespace tuntap { void InitPacketPair(Napi::Env env, Napi::Object exports); }  // native/packet_pair.cc
namespace tuntap { void InitAeadResidue(Napi::Env env, Napi::Object exports); }  // native/aead_residue.cc (test hook)

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tuntap::InitNetns(env, exports);
  tuntap::InitTun(env, exports);
  tuntap::InitQueue(env, exports);
  tuntap::InitNetlink(env, exports);
  tuntap::InitUdp(env, exports);
  tuntap::InitAead(env, exports);
  tuntap::InitPcap(env, exports);
  tuntap::InitNotify(env, exports);
  tuntap::InitChecksum(env, exports);
  tuntap::InitRelay(env, exports);
  tuntap::InitMalloc(env, exports);
  tuntap::InitPacketPair(env, exports);
  tuntap::InitAeadResidue(env, exports);
  return exports;
}

NODE_API_MODULE(tuntap, Init)
