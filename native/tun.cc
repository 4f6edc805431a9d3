// /dev/net/tun: open + TUNSETIFF, every TUN ioctl, and the SIOC* calls on the device.
// All calls are synchronous and cheap; policy (which flags, which sentence on which errno)
// lives in src/device/.
#include "common.h"
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cstring>
#include <vector>

namespace tuntap {

namespace {

struct NamedRequest { const char* name; unsigned long request; };

// Ioctls whose argument is passed by value.
const NamedRequest kValueRequests[] = {
  {"TUNSETPERSIST", TUNSETPERSIST}, {"TUNSETOWNER", TUNSETOWNER}, {"TUNSETGROUP", TUNSETGROUP},
  {"TUNSETLINK", TUNSETLINK}, {"TUNSETOFFLOAD", TUNSETOFFLOAD}
};
// Ioctls that take or return an int through a pointer.
const NamedRequest kIntRequests[] = {
  {"TUNSETSNDBUF", TUNSETSNDBUF}, {"TUNGETSNDBUF", TUNGETSNDBUF},
  {"TUNSETVNETHDRSZ", TUNSETVNETHDRSZ}, {"TUNGETVNETHDRSZ", TUNGETVNETHDRSZ},
  {"TUNSETVNETLE", TUNSETVNETLE}, {"TUNGETVNETLE", TUNGETVNETLE},
  {"TUNSETVNETBE", TUNSETVNETBE}, {"TUNGETVNETBE", TUNGETVNETBE},
  {"TUNGETFEATURES", TUNGETFEATURES}, {"TUNSETIFINDEX", TUNSETIFINDEX},
  {"TUNSETCARRIER", TUNSETCARRIER},
};

bool FindRequest(const NamedRequest* table, size_t n, const std::string& name, unsigned long* out) {
  for (size_t i = 0; i < n; i++) {
    if (name == table[i].name) { *out = table[i].request; return true; }
  }
  return false;
}

// An interface name as the kernel takes it: at most IFNAMSIZ - 1 bytes, no NUL (a longer one
// would be cut silently and name another device).
bool NameArg(const Args& a, size_t i, const char* what, std::string* out) {
  return a.String(i, what, IFNAMSIZ - 1, out);
}

void CopyName(struct ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof(*ifr));
  std::memcpy(ifr->ifr_name, name.data(), name.size());  // NameArg bounds it to IFNAMSIZ - 1
}

// open(/dev/net/tun) [+ TUNSETIFINDEX] + TUNSETIFF. Returns { fd, name } or throws (fd closed).
Napi::Value TunOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunOpen");
  std::string name;
  uint32_t flags, ifindex;
  if (!NameArg(a, 0, "name", &name) || !a.U32(1, "flags", &flags, 0xffff) || !a.U32(2, "ifindex", &ifindex, INT32_MAX)) {
    return env.Undefined();
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { ThrowErrno(env, "open(/dev/net/tun)", errno); return env.Undefined(); }
  if (ifindex > 0) {
    unsigned int index = static_cast<unsigned int>(ifindex);
    if (ioctl(fd, TUNSETIFINDEX, &index) < 0) {
      int err = errno; close(fd);
      ThrowErrno(env, "ioctl(TUNSETIFINDEX)", err); return env.Undefined();
    }
  }
  struct ifreq ifr;
  CopyName(&ifr, name);
  ifr.ifr_flags = static_cast<short>(flags);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno; close(fd);
    ThrowErrno(env, "ioctl(TUNSETIFF)", err); return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", fd);
  out.Set("name", std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ)));
  return out;
}

Napi::Value IoctlValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunIoctlValue");
  int fd;
  std::string name;
  uint32_t value;
  if (!a.Fd(0, &fd) || !a.String(1, "request", 32, &name) || !a.U32(2, "value", &value)) return env.Undefined();
  unsigned long request;
  if (!FindRequest(kValueRequests, sizeof(kValueRequests) / sizeof(kValueRequests[0]), name, &request)) {
    Napi::TypeError::New(env, "unknown ioctl " + name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (ioctl(fd, request, value) < 0) ThrowErrno(env, "ioctl(" + name + ")", errno);
  return env.Undefined();
}

// ioctlInt(fd, name[, value]): SET* writes value, GET* returns the int the kernel filled in.
Napi::Value IoctlInt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunIoctlInt");
  int fd;
  std::string name;
  int32_t value = 0;
  if (!a.Fd(0, &fd) || !a.String(1, "request", 32, &name) || (a.Has(2) && !a.I32(2, "value", &value))) return env.Undefined();
  unsigned long request;
  if (!FindRequest(kIntRequests, sizeof(kIntRequests) / sizeof(kIntRequests[0]), name, &request)) {
    Napi::TypeError::New(env, "unknown ioctl " + name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (ioctl(fd, request, &value) < 0) { ThrowErrno(env, "ioctl(" + name + ")", errno); return env.Undefined(); }
  return Napi::Number::New(env, name == "TUNGETFEATURES" ? static_cast<unsigned int>(value) : value);
}

Napi::Value GetIff(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!Args(info, "tunGetIff").Fd(0, &fd)) return env.Undefined();
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) { ThrowErrno(env, "ioctl(TUNGETIFF)", errno); return env.Undefined(); }
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", std::string(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ)));
  out.Set("flags", static_cast<unsigned short>(ifr.ifr_flags));
  return out;
}

Napi::Value SetQueue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunSetQueue");
  int fd;
  bool attach;
  if (!a.Fd(0, &fd) || !a.Bool(1, "attach", &attach)) return env.Undefined();
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
  if (ioctl(fd, TUNSETQUEUE, &ifr) < 0) ThrowErrno(env, "ioctl(TUNSETQUEUE)", errno);
  return env.Undefined();
}

// The TUN fd itself answers SIOCGIFHWADDR/SIOCSIFHWADDR for its own device.
Napi::Value GetHwaddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!Args(info, "tunGetHwaddr").Fd(0, &fd)) return env.Undefined();
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) { ThrowErrno(env, "ioctl(SIOCGIFHWADDR)", errno); return env.Undefined(); }
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(ifr.ifr_hwaddr.sa_data), 6);
}

Napi::Value SetHwaddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunSetHwaddr");
  int fd;
  ByteSpan mac;
  if (!a.Fd(0, &fd) || !a.Bytes(1, "mac", &mac)) return env.Undefined();
  if (mac.length != ETH_ALEN) { a.Range("mac must be 6 bytes"); return env.Undefined(); }
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  std::memcpy(ifr.ifr_hwaddr.sa_data, mac.data, ETH_ALEN);
  if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0) ThrowErrno(env, "ioctl(SIOCSIFHWADDR)", errno);
  return env.Undefined();
}

// setTxFilter(fd, flags, addresses: 6*n bytes)
Napi::Value SetTxFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunSetTxFilter");
  int fd;
  uint32_t flags;
  ByteSpan addrs;
  if (!a.Fd(0, &fd) || !a.U32(1, "flags", &flags, 0xffff) || !a.Bytes(2, "addresses", &addrs)) return env.Undefined();
  // The kernel's count is 16 bits; a longer list would be cut and the rest ignored silently.
  if (addrs.length % ETH_ALEN != 0 || addrs.length / ETH_ALEN > 0xffff) {
    a.Range("addresses must be whole 6-byte MACs, at most 65535 of them");
    return env.Undefined();
  }
  size_t count = addrs.length / ETH_ALEN;
  std::vector<uint8_t> raw(sizeof(struct tun_filter) + count * ETH_ALEN);
  auto* filter = reinterpret_cast<struct tun_filter*>(raw.data());
  filter->flags = static_cast<__u16>(flags);
  filter->count = static_cast<__u16>(count);
  if (count > 0) std::memcpy(raw.data() + sizeof(struct tun_filter), addrs.data, count * ETH_ALEN);
  if (ioctl(fd, TUNSETTXFILTER, raw.data()) < 0) ThrowErrno(env, "ioctl(TUNSETTXFILTER)", errno);
  return env.Undefined();
}

// attachFilter(fd, program): program is a Buffer of struct sock_filter (8 bytes each). The
// kernel keeps the user pointer to re-attach the filter to queues attached later, so the
// caller keeps that Buffer alive while the filter is attached.
Napi::Value AttachFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunAttachFilter");
  int fd;
  ByteSpan program;
  if (!a.Fd(0, &fd) || !a.Bytes(1, "program", &program)) return env.Undefined();
  // The length field is 16 bits: a longer program would be cut to a different one.
  if (program.length == 0 || program.length % sizeof(struct sock_filter) != 0 ||
      program.length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    a.Range("program must be 1 to " + std::to_string(BPF_MAXINSNS) + " whole 8-byte instructions");
    return env.Undefined();
  }
  struct sock_fprog fprog;
  fprog.len = static_cast<unsigned short>(program.length / sizeof(struct sock_filter));
  fprog.filter = reinterpret_cast<struct sock_filter*>(program.data);
  if (ioctl(fd, TUNATTACHFILTER, &fprog) < 0) ThrowErrno(env, "ioctl(TUNATTACHFILTER)", errno);
  return env.Undefined();
}

Napi::Value DetachFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!Args(info, "tunDetachFilter").Fd(0, &fd)) return env.Undefined();
  struct sock_fprog fprog;
  std::memset(&fprog, 0, sizeof(fprog));
  if (ioctl(fd, TUNDETACHFILTER, &fprog) < 0) ThrowErrno(env, "ioctl(TUNDETACHFILTER)", errno);
  return env.Undefined();
}

// getFilter(fd, ours?) → { length, ours }: the kernel returns the attaching process's pointer,
// which we only compare with the Buffer we attached (never dereference a foreign pointer).
Napi::Value GetFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunGetFilter");
  int fd;
  ByteSpan mine;
  if (!a.Fd(0, &fd) || !a.OptionalBytes(1, "ours", &mine)) return env.Undefined();
  struct sock_fprog fprog;
  std::memset(&fprog, 0, sizeof(fprog));
  if (ioctl(fd, TUNGETFILTER, &fprog) < 0) { ThrowErrno(env, "ioctl(TUNGETFILTER)", errno); return env.Undefined(); }
  bool ours = mine.data != nullptr && reinterpret_cast<void*>(fprog.filter) == mine.data;
  Napi::Object out = Napi::Object::New(env);
  out.Set("length", fprog.len);
  out.Set("ours", ours);
  return out;
}

// A datagram socket for SIOC* interface calls; it must be created inside the device's netns.
Napi::Value ControlSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { ThrowErrno(env, "socket(AF_INET)", errno); return env.Undefined(); }
  return Napi::Number::New(env, fd);
}

// Each field's get and set request, with the names errors report (set 0: read-only).
struct IfField { const char* name; unsigned long get; const char* getName; unsigned long set; const char* setName; };
const IfField kIfFields[] = {
  {"mtu", SIOCGIFMTU, "SIOCGIFMTU", SIOCSIFMTU, "SIOCSIFMTU"},
  {"flags", SIOCGIFFLAGS, "SIOCGIFFLAGS", SIOCSIFFLAGS, "SIOCSIFFLAGS"},
  {"index", SIOCGIFINDEX, "SIOCGIFINDEX", 0, nullptr},
  {"txqlen", SIOCGIFTXQLEN, "SIOCGIFTXQLEN", SIOCSIFTXQLEN, "SIOCSIFTXQLEN"},
};

const IfField* FindField(const std::string& name) {
  for (const auto& f : kIfFields) if (name == f.name) return &f;
  return nullptr;
}

int* IfrInt(struct ifreq* ifr, const std::string& field) {
  if (field == "mtu") return &ifr->ifr_mtu;
  if (field == "index") return &ifr->ifr_ifindex;
  if (field == "txqlen") return &ifr->ifr_qlen;
  return nullptr;
}

// ifGet(sock, ifname, field) / ifSet(sock, ifname, field, value)
Napi::Value IfGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunIfGet");
  int fd;
  std::string ifname, field;
  if (!a.Fd(0, &fd) || !NameArg(a, 1, "ifname", &ifname) || !a.String(2, "field", 16, &field)) return env.Undefined();
  const IfField* f = FindField(field);
  if (!f) { Napi::TypeError::New(env, "unknown field " + field).ThrowAsJavaScriptException(); return env.Undefined(); }
  struct ifreq ifr;
  CopyName(&ifr, ifname);
  if (ioctl(fd, f->get, &ifr) < 0) { ThrowErrno(env, std::string("ioctl(") + f->getName + ")", errno); return env.Undefined(); }
  if (field == "flags") return Napi::Number::New(env, static_cast<unsigned short>(ifr.ifr_flags));
  return Napi::Number::New(env, *IfrInt(&ifr, field));
}

Napi::Value IfSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "tunIfSet");
  int fd;
  std::string ifname, field;
  int32_t value;
  if (!a.Fd(0, &fd) || !NameArg(a, 1, "ifname", &ifname) || !a.String(2, "field", 16, &field) || !a.I32(3, "value", &value)) {
    return env.Undefined();
  }
  const IfField* f = FindField(field);
  if (!f || !f->set) { Napi::TypeError::New(env, "cannot set " + field).ThrowAsJavaScriptException(); return env.Undefined(); }
  // ifr_flags is 16 bits; MTU and queue length are never negative.
  if (value < 0 || (field == "flags" && value > 0xffff)) { a.Range("value is out of range for " + field); return env.Undefined(); }
  struct ifreq ifr;
  CopyName(&ifr, ifname);
  if (field == "flags") ifr.ifr_flags = static_cast<short>(value);
  else *IfrInt(&ifr, field) = value;
  if (ioctl(fd, f->set, &ifr) < 0) ThrowErrno(env, std::string("ioctl(") + f->setName + ")", errno);
  return env.Undefined();
}

}  // namespace

void InitTun(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New(env, TunOpen));
  exports.Set("tunIoctlValue", Napi::Function::New(env, IoctlValue));
  exports.Set("tunIoctlInt", Napi::Function::New(env, IoctlInt));
  exports.Set("tunGetIff", Napi::Function::New(env, GetIff));
  exports.Set("tunSetQueue", Napi::Function::New(env, SetQueue));
  exports.Set("tunGetHwaddr", Napi::Function::New(env, GetHwaddr));
  exports.Set("tunSetHwaddr", Napi::Function::New(env, SetHwaddr));
  exports.Set("tunSetTxFilter", Napi::Function::New(env, SetTxFilter));
  exports.Set("tunAttachFilter", Napi::Function::New(env, AttachFilter));
  exports.Set("tunDetachFilter", Napi::Function::New(env, DetachFilter));
  exports.Set("tunGetFilter", Napi::Function::New(env, GetFilter));
  exports.Set("tunControlSocket", Napi::Function::New(env, ControlSocket));
  exports.Set("tunIfGet", Napi::Function::New(env, IfGet));
  exports.Set("tunIfSet", Napi::Function::New(env, IfSet));
}

}  // namespace tuntap
