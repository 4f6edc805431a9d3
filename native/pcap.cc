// Filter compilation by the system's libpcap, loaded with dlopen() on first use: tuntap neither
// links against libpcap nor needs its headers, so installing tuntap needs no libpcap, and where
// libpcap is installed `tuntap dump` takes tcpdump's whole filter language. Only functions whose
// ABI has not changed since libpcap 0.8 are used. pcapCompile() compiles on a dead handle of the
// caller's link type, copies the program out as struct sock_filter (the layout TUNATTACHFILTER
// takes) and frees everything libpcap allocated before it returns.
#include "common.h"
#include <dlfcn.h>
#include <linux/filter.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace tuntap {
namespace {

// libpcap's public ABI (pcap/bpf.h, pcap/pcap.h), declared here so no headers are needed.
struct PcapInsn { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
struct PcapProgram { unsigned int bf_len; PcapInsn* bf_insns; };
struct Pcap;  // pcap_t, opaque
static_assert(sizeof(PcapInsn) == sizeof(struct sock_filter), "bpf_insn and sock_filter share a layout");

constexpr uint32_t kNetmaskUnknown = 0xffffffff;  // PCAP_NETMASK_UNKNOWN: `ip broadcast` is refused
// libpcap's compile time grows much faster than the expression (4 KiB of `port N or ...` takes
// 15 s, 1 KiB a quarter of a second); a filter typed for tcpdump is rarely a tenth of this.
constexpr size_t kMaxExpression = 1024;
constexpr unsigned kMaxInstructions = 65536;       // more than the kernel's 4096, so TS can say why
constexpr int kMaxSnapLength = 262144;

struct Libpcap {
  void* handle = nullptr;
  Pcap* (*openDead)(int, int) = nullptr;
  int (*compile)(Pcap*, PcapProgram*, const char*, int, uint32_t) = nullptr;
  void (*freecode)(PcapProgram*) = nullptr;
  char* (*geterr)(Pcap*) = nullptr;
  void (*close)(Pcap*) = nullptr;
  const char* (*libVersion)() = nullptr;
  std::string error;  // why it could not be loaded
};

template <typename F>
bool LoadSymbol(Libpcap& lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib.handle, name));
  if (*out == nullptr && lib.error.empty()) lib.error = std::string("libpcap has no ") + name;
  return *out != nullptr;
}

// Loaded once per process (a static local initialises exactly once, even across threads).
const Libpcap& Load() {
  static const Libpcap lib = [] {
    Libpcap l;
    for (const char* name : {"libpcap.so.1", "libpcap.so.0.8", "libpcap.so"}) {
      l.handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (l.handle != nullptr) break;
      const char* e = dlerror();
      l.error += (l.error.empty() ? "" : "; ") + std::string(e != nullptr ? e : name);
    }
    if (l.handle == nullptr) return l;
    l.error.clear();
    bool ok = LoadSymbol(l, "pcap_open_dead", &l.openDead) & LoadSymbol(l, "pcap_compile", &l.compile) &
              LoadSymbol(l, "pcap_freecode", &l.freecode) & LoadSymbol(l, "pcap_geterr", &l.geterr) &
              LoadSymbol(l, "pcap_close", &l.close) & LoadSymbol(l, "pcap_lib_version", &l.libVersion);
    if (!ok) { dlclose(l.handle); l.handle = nullptr; }
    return l;
  }();
  return lib;
}

// Before libpcap 1.8 pcap_compile kept its parser state in globals; worker threads share the library.
std::mutex compileLock;

// pcapLoad() → { version } or { error }: whether libpcap could be loaded, and which.
Napi::Value PcapLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Libpcap& lib = Load();
  Napi::Object out = Napi::Object::New(env);
  if (lib.handle == nullptr) out.Set("error", lib.error);
  else out.Set("version", lib.libVersion());
  return out;
}

bool IntegerIn(const Napi::Value& v, double lo, double hi, int* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || std::trunc(d) != d) return false;
  *out = static_cast<int>(d);
  return true;
}

// pcapCompile(expression, linkType, snapLength, optimize) → Buffer of struct sock_filter.
// Every argument is checked: the expression is a string of at most 1 KiB without NUL (libpcap
// would silently compile only the part before it), the link type one tuntap reads (1 Ethernet,
// 12 raw IP), the snap length 1..262144. libpcap's own complaint is thrown with `pcap: true`.
Napi::Value PcapCompile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int linkType = 0;
  int snapLength = 0;
  if (info.Length() < 4 || !info[0].IsString() || !info[3].IsBoolean()) {
    Napi::TypeError::New(env, "pcapCompile(expression: string, linkType, snapLength, optimize: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!IntegerIn(info[1], 0, 0xffff, &linkType) || (linkType != 1 && linkType != 12)) {
    Napi::RangeError::New(env, "pcapCompile: link type must be 1 (Ethernet) or 12 (raw IP)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!IntegerIn(info[2], 1, kMaxSnapLength, &snapLength)) {
    Napi::RangeError::New(env, "pcapCompile: snap length must be an integer from 1 to 262144").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Measure before copying, so a huge string is refused without being converted.
  size_t length = 0;
  if (napi_get_value_string_utf8(env, info[0], nullptr, 0, &length) != napi_ok) return env.Undefined();
  if (length > kMaxExpression) {
    Napi::RangeError::New(env, "pcapCompile: the expression exceeds 1024 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string expression(length + 1, '\0');
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, info[0], expression.data(), expression.size(), &copied) != napi_ok) return env.Undefined();
  expression.resize(copied);
  if (std::memchr(expression.data(), '\0', expression.size()) != nullptr) {
    Napi::RangeError::New(env, "pcapCompile: the expression contains a NUL character").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool optimize = info[3].As<Napi::Boolean>().Value();

  const Libpcap& lib = Load();
  if (lib.handle == nullptr) {
    Napi::Error e = Napi::Error::New(env, "libpcap is not available: " + lib.error);
    e.Set("pcap", Napi::Boolean::New(env, true));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string failure;
  Napi::Buffer<uint8_t> out;
  {
    std::lock_guard<std::mutex> guard(compileLock);
    Pcap* p = lib.openDead(linkType, snapLength);
    if (p == nullptr) {
      failure = "pcap_open_dead failed";
    } else {
      PcapProgram program{0, nullptr};
      if (lib.compile(p, &program, expression.c_str(), optimize ? 1 : 0, kNetmaskUnknown) != 0) {
        const char* message = lib.geterr(p);
        failure = message != nullptr && *message != '\0' ? message : "pcap_compile failed";
      } else {
        if (program.bf_len == 0 || program.bf_len > kMaxInstructions) {
          failure = "the compiled program has " + std::to_string(program.bf_len) + " instructions";
        } else {
          out = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(program.bf_insns), program.bf_len * sizeof(PcapInsn));
        }
        lib.freecode(&program);
      }
      lib.close(p);
    }
  }
  if (!failure.empty()) {
    Napi::Error e = Napi::Error::New(env, failure);
    e.Set("pcap", Napi::Boolean::New(env, true));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return out;
}

}  // namespace

void InitPcap(Napi::Env env, Napi::Object exports) {
  exports.Set("pcapLoad", Napi::Function::New(env, PcapLoad));
  exports.Set("pcapCompile", Napi::Function::New(env, PcapCompile));
}

}  // namespace tuntap
