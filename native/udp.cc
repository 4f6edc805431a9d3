// Batched UDP datagram I/O: a non-blocking socket (readiness and its callbacks from the shared
// poller base, poller.h), recvmmsg draining up to a batch into one shared buffer per wake-up,
// sendmmsg of a batch to one or many destinations, UDP GSO (UDP_SEGMENT) on send and UDP GRO on
// receive.
//
// Endpoints cross the boundary as fixed 24-byte records so no per-datagram strings are made:
//   [0..15] address (IPv4 in bytes 0..3), [16..17] port (big endian), [18] family (4 or 6),
//   [19] unused, [20..23] IPv6 scope id (little endian).
#include "poller.h"
#include "gather.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>
#include <vector>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

namespace tuntap {

static constexpr size_t kEndpointSize = 24;
// Control space per received message: UDP_GRO (int) + SO_RXQ_OVFL (u32), with headroom.
static constexpr size_t kRecvControl = 64;
// The kernel's limits on one GSO send (UDP_MAX_SEGMENTS) and on one IP datagram's payload.
static constexpr size_t kMaxGsoSegments = 64;
static constexpr size_t kMaxGsoBytes = 65507 - 40;
// Receive area bounds: recvmmsg takes at most UIO_MAXIOV (1024) messages, and a slot holds at
// most one (GRO-coalesced) datagram of 64 KiB.
static constexpr size_t kMaxBatch = 1024;
static constexpr size_t kMaxSlotSize = 65536;
// Datagrams one send() call takes on (more are sent by the next call).
static constexpr uint32_t kMaxSendCount = 4096;

static void WriteEndpoint(uint8_t* rec, const sockaddr_storage& ss) {
  std::memset(rec, 0, kEndpointSize);
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(rec, &sin->sin_addr, 4);
    std::memcpy(rec + 16, &sin->sin_port, 2);
    rec[18] = 4;
  } else if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    const uint8_t* a = sin6->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(rec + 16, &sin6->sin6_port, 2);
    if (std::memcmp(a, mapped, 12) == 0) {  // a dual-stack socket's IPv4 peer reads as IPv4
      std::memcpy(rec, a + 12, 4);
      rec[18] = 4;
    } else {
      std::memcpy(rec, a, 16);
      rec[18] = 6;
      uint32_t scope = sin6->sin6_scope_id;
      std::memcpy(rec + 20, &scope, 4);
    }
  }
}

// Fills a sockaddr for `family` (the socket's own family) from an endpoint record; false if the
// record cannot be reached from that family.
static bool ReadEndpoint(const uint8_t* rec, int family, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof(*ss));
  uint8_t fam = rec[18];
  if (family == AF_INET) {
    if (fam != 4) return false;
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, rec, 4);
    std::memcpy(&sin->sin_port, rec + 16, 2);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  std::memcpy(&sin6->sin6_port, rec + 16, 2);
  if (fam == 4) {
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(sin6->sin6_addr.s6_addr + 12, rec, 4);
  } else if (fam == 6) {
    std::memcpy(sin6->sin6_addr.s6_addr, rec, 16);
    uint32_t scope;
    std::memcpy(&scope, rec + 20, 4);
    sin6->sin6_scope_id = scope;
  } else {
    return false;
  }
  *len = sizeof(sockaddr_in6);
  return true;
}

class UdpSocket : public Poller<UdpSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Descriptors d = {
      InstanceMethod("bind", &UdpSocket::Bind),
      InstanceMethod("connect", &UdpSocket::Connect),
      InstanceMethod("localEndpoint", &UdpSocket::LocalEndpoint),
      InstanceMethod("setIntOption", &UdpSocket::SetIntOption),
      InstanceMethod("getIntOption", &UdpSocket::GetIntOption),
      InstanceMethod("bindToDevice", &UdpSocket::BindToDevice),
      InstanceMethod("setRecvArea", &UdpSocket::SetRecvArea),
      InstanceMethod("send", &UdpSocket::Send),
      InstanceMethod("sendPieces", &UdpSocket::SendPieces),
      InstanceAccessor("fd", &UdpSocket::Fd, nullptr),
    };
    AddPollerMethods(d);
    return DefineClass(env, "UdpSocketNative", d);
  }

  static UdpSocket* Unwrap(Napi::Object object) { return UnwrapTagged<UdpSocket>(object, kTag, "UdpSocketNative"); }

  static constexpr const char* kReadSyscall = "recvmmsg";

  explicit UdpSocket(const Napi::CallbackInfo& info) : Poller<UdpSocket>(info, "tuntap.udp") {
    Napi::Env env = info.Env();
    napi_type_tag_object(env, info.This(), &kTag);
    Args a(info, "UdpSocketNative");
    uint32_t family;
    if (!a.U32(0, "family", &family, 6)) return;
    if (family != 4 && family != 6) { a.Range("family must be 4 or 6"); return; }
    family_ = family == 6 ? AF_INET6 : AF_INET;
    int fd = socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) { ThrowErrno(env, "socket", errno); return; }
    int one = 1;
    // The kernel's drop counter for this socket arrives with each datagram (best effort).
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    Adopt(fd, true);
  }

  static constexpr napi_type_tag kTag = {0x7475'6e74'6170'7564ULL, 0x7073'6f63'6b01'0002ULL};

  // Drains up to a batch: returns the count, 0 when nothing is waiting; -errno for hard errors
  // (EFAULT: the receive area is gone).
  int Drain(bool) { return DrainBatch(); }

  // libuv reports EPOLLERR as UV_EBADF and stops the handle. On a UDP socket that is a pending
  // ICMP error (peer unreachable, port closed): read it with SO_ERROR, which clears it, count it
  // and keep waiting. Only a socket that cannot even report that has failed.
  bool AbsorbPollError(int) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (fd_ < 0 || getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) return false;
    NotePeerError(static_cast<uint32_t*>(drops_.Get(env_)), err);
    return true;
  }

  void Released() {
    for (HeldView* v : {&data_, &lengths_, &segSizes_, &flags_, &endpoints_, &drops_, &sendResult_}) v->Reset();
  }

 private:
  int family_ = AF_INET;

  // Receive area shared with JS: one slot of slotSize_ bytes per message. Its arrays are looked
  // up again before each use (HeldView), since JS may detach them between calls.
  HeldView data_, lengths_, segSizes_, flags_, endpoints_;
  size_t slotSize_ = 0;
  size_t batch_ = 0;
  // [0] kernel drop counter (SO_RXQ_OVFL) last seen, [1] ICMP errors seen, [2] the last one's errno
  HeldView drops_;
  // send()'s result, written here rather than returned as a new JS array per call.
  HeldView sendResult_;
  std::vector<mmsghdr> rmsgs_;
  std::vector<iovec> riov_;
  std::vector<sockaddr_storage> raddr_;
  std::vector<uint8_t> rctl_;

  // Send scratch, reused across calls.
  std::vector<mmsghdr> smsgs_;
  std::vector<iovec> siov_;
  std::vector<sockaddr_storage> saddr_;
  std::vector<uint8_t> sctl_;
  std::vector<uint32_t> sfirst_;  // first packet index of each message
  std::vector<uint32_t> sdest_;   // destination id of each packet
  std::vector<napi_value> sval_;  // an Array send's elements (valid during the call)
  GatherList gather_;             // sendPieces' datagrams

  bool CheckOpen(Napi::Env env) {
    if (fd_ >= 0) return true;
    ThrowErrno(env, "udp socket", EBADF);
    return false;
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // bind(endpointRecord: Uint8Array)
  Napi::Value Bind(const Napi::CallbackInfo& info) { return ToEndpoint(info, "bind", ::bind); }

  // connect(endpointRecord: Uint8Array)
  Napi::Value Connect(const Napi::CallbackInfo& info) { return ToEndpoint(info, "connect", ::connect); }

  // bind() or connect() to the endpoint record in info[0]; a record of another family is EAFNOSUPPORT.
  Napi::Value ToEndpoint(const Napi::CallbackInfo& info, const char* syscall,
                         int (*op)(int, const sockaddr*, socklen_t)) {
    Napi::Env env = info.Env();
    ByteSpan rec;
    if (!Args(info, syscall).Bytes(0, "endpoint", &rec)) return env.Undefined();
    if (rec.length < kEndpointSize) { FailRange(env, syscall, "endpoint must be a 24-byte record"); return env.Undefined(); }
    if (!CheckOpen(env)) return env.Undefined();
    sockaddr_storage ss;
    socklen_t len;
    if (!ReadEndpoint(rec.data, family_, &ss, &len)) { ThrowErrno(env, syscall, EAFNOSUPPORT); return env.Undefined(); }
    if (op(fd_, reinterpret_cast<sockaddr*>(&ss), len) < 0) ThrowErrno(env, syscall, errno);
    return env.Undefined();
  }

  // localEndpoint(out: Uint8Array) fills a record with getsockname().
  Napi::Value LocalEndpoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ByteSpan rec;
    if (!Args(info, "localEndpoint").Bytes(0, "out", &rec)) return env.Undefined();
    if (rec.length < kEndpointSize) { FailRange(env, "localEndpoint", "out must hold a 24-byte record"); return env.Undefined(); }
    if (!CheckOpen(env)) return env.Undefined();
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) < 0) { ThrowErrno(env, "getsockname", errno); return env.Undefined(); }
    WriteEndpoint(rec.data, ss);
    return env.Undefined();
  }

  // setIntOption(level, name, value, syscallLabel)
  // The option's value is one int: the kernel reads or writes no more than sizeof(int) for it.
  Napi::Value SetIntOption(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "setIntOption");
    int32_t level, name, value;
    std::string label = "setsockopt";
    if (!a.I32(0, "level", &level) || !a.I32(1, "name", &name) || !a.I32(2, "value", &value) ||
        (a.Has(3) && !a.String(3, "label", 64, &label))) {
      return env.Undefined();
    }
    if (!CheckOpen(env)) return env.Undefined();
    if (setsockopt(fd_, level, name, &value, sizeof(value)) < 0) ThrowErrno(env, label, errno);
    return env.Undefined();
  }

  Napi::Value GetIntOption(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "getIntOption");
    int32_t level, name;
    if (!a.I32(0, "level", &level) || !a.I32(1, "name", &name)) return env.Undefined();
    if (!CheckOpen(env)) return env.Undefined();
    int value = 0;
    socklen_t len = sizeof(value);
    if (getsockopt(fd_, level, name, &value, &len) < 0) { ThrowErrno(env, "getsockopt", errno); return env.Undefined(); }
    return Napi::Number::New(env, value);
  }

  Napi::Value BindToDevice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name;
    if (!Args(info, "bindToDevice").String(0, "name", IFNAMSIZ - 1, &name)) return env.Undefined();
    if (!CheckOpen(env)) return env.Undefined();
    if (setsockopt(fd_, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(), name.size()) < 0)
      ThrowErrno(env, "setsockopt(SO_BINDTODEVICE)", errno);
    return env.Undefined();
  }

  // setRecvArea(area: object with data, lengths, segmentSizes, truncated, endpoints, drops,
  // sendResult; slotSize, batch). Every property is read before any is checked or held: a getter
  // runs JS, which could detach an array taken earlier.
  Napi::Value SetRecvArea(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "setRecvArea");
    Napi::Object area;
    if (!a.Object(0, "area", &area)) return env.Undefined();
    static const char* const kKeys[] = {"slotSize", "batch", "data", "lengths", "segmentSizes", "truncated", "endpoints", "drops", "sendResult"};
    constexpr size_t kCount = sizeof(kKeys) / sizeof(kKeys[0]);
    napi_value v[kCount];
    for (size_t i = 0; i < kCount; i++) {
      if (napi_get_named_property(env, area, kKeys[i], &v[i]) != napi_ok) return env.Undefined();
    }
    double slotSize, batch;
    if (napi_get_value_double(env, v[0], &slotSize) != napi_ok || napi_get_value_double(env, v[1], &batch) != napi_ok ||
        !(slotSize >= 1 && slotSize <= kMaxSlotSize && std::trunc(slotSize) == slotSize) ||
        !(batch >= 1 && batch <= kMaxBatch && std::trunc(batch) == batch)) {
      a.Range("slotSize must be an integer from 1 to " + std::to_string(kMaxSlotSize) + " and batch from 1 to " + std::to_string(kMaxBatch));
      return env.Undefined();
    }
    size_t slot = static_cast<size_t>(slotSize), n = static_cast<size_t>(batch);
    HeldView data, lengths, segSizes, flags, endpoints, drops, sendResult;
    if (!data.Hold(env, v[2], napi_uint8_array, n * slot) ||
        !lengths.Hold(env, v[3], napi_uint32_array, n * 4) || !segSizes.Hold(env, v[4], napi_uint32_array, n * 4) ||
        !flags.Hold(env, v[5], napi_uint32_array, n * 4) || !endpoints.Hold(env, v[6], napi_uint8_array, n * kEndpointSize) ||
        !drops.Hold(env, v[7], napi_uint32_array, 3 * 4) || !sendResult.Hold(env, v[8], napi_uint32_array, 4 * 4)) {
      a.Type("area needs data and endpoints (Uint8Array) and lengths, segmentSizes, truncated (Uint32Array) of batch "
             "entries, drops (3) and sendResult (4) Uint32Arrays");
      return env.Undefined();
    }
    data_ = std::move(data);
    lengths_ = std::move(lengths);
    segSizes_ = std::move(segSizes);
    flags_ = std::move(flags);
    endpoints_ = std::move(endpoints);
    drops_ = std::move(drops);
    sendResult_ = std::move(sendResult);
    slotSize_ = slot;
    batch_ = n;
    rmsgs_.assign(batch_, mmsghdr{});
    riov_.assign(batch_, iovec{});
    raddr_.assign(batch_, sockaddr_storage{});
    rctl_.assign(batch_ * kRecvControl, 0);
    return env.Undefined();
  }

  // The receive area as it is now; false when none is set or JS took part of it away.
  struct Area {
    uint8_t* data;
    uint32_t *lengths, *segSizes, *flags, *drops;
    uint8_t* endpoints;
  };
  bool AreaNow(Area* a) {
    napi_env env = Env();
    a->data = static_cast<uint8_t*>(data_.Get(env));
    a->lengths = static_cast<uint32_t*>(lengths_.Get(env));
    a->segSizes = static_cast<uint32_t*>(segSizes_.Get(env));
    a->flags = static_cast<uint32_t*>(flags_.Get(env));
    a->endpoints = static_cast<uint8_t*>(endpoints_.Get(env));
    a->drops = static_cast<uint32_t*>(drops_.Get(env));
    return a->data && a->lengths && a->segSizes && a->flags && a->endpoints && a->drops;
  }

  int DrainBatch() {
    if (fd_ < 0) return -EBADF;
    Area area;
    if (!AreaNow(&area)) return -EFAULT;
    for (size_t i = 0; i < batch_; i++) {
      riov_[i].iov_base = area.data + i * slotSize_;
      riov_[i].iov_len = slotSize_;
      msghdr& m = rmsgs_[i].msg_hdr;
      m.msg_name = &raddr_[i];
      m.msg_namelen = sizeof(sockaddr_storage);
      m.msg_iov = &riov_[i];
      m.msg_iovlen = 1;
      m.msg_control = rctl_.data() + i * kRecvControl;
      m.msg_controllen = kRecvControl;
      m.msg_flags = 0;
    }
    int n;
    for (int attempts = 0;; attempts++) {
      n = recvmmsg(fd_, rmsgs_.data(), batch_, MSG_DONTWAIT, nullptr);
      if (n >= 0 || errno == EINTR) { if (n >= 0) break; continue; }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      // An ICMP error for an earlier send is reported (once) by the next receive; it says
      // nothing about the datagrams waiting, so note it and read on.
      if (IsPeerError(errno) && attempts < 4) { NotePeerError(area.drops, errno); continue; }
      return -errno;
    }
    for (int i = 0; i < n; i++) {
      msghdr& m = rmsgs_[i].msg_hdr;
      area.lengths[i] = rmsgs_[i].msg_len;
      area.flags[i] = (m.msg_flags & MSG_TRUNC) ? 1 : 0;
      area.segSizes[i] = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int seg;
          std::memcpy(&seg, CMSG_DATA(c), sizeof(seg));
          // A coalesced run longer than one segment; a single datagram reports no segmentation.
          area.segSizes[i] = (seg > 0 && static_cast<uint32_t>(seg) < area.lengths[i]) ? seg : 0;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
          std::memcpy(area.drops, CMSG_DATA(c), sizeof(uint32_t));
        }
      }
      WriteEndpoint(area.endpoints + i * kEndpointSize, raddr_[i]);
    }
    return n;
  }

  // send(bufs, offsets|null, lengths|null, start, count, endpoints|null, destIds|null, gsoSize)
  //   bufs: one Uint8Array holding every packet (offsets/lengths locate them) or an Array of
  //   Uint8Array (offsets/lengths null: whole buffers). endpoints: records; destIds: per-packet
  //   index into endpoints (null: every packet to record 0; endpoints null: connected socket).
  //   gsoSize > 0: consecutive packets to one destination are joined into one UDP_SEGMENT send
  //   where every packet but the last is exactly gsoSize bytes; gsoSize < 0: the same, with
  //   each group's size taken from its first packet.
  // Writes [packetsDone, errno, failedPacket, messagesDone] to the area's sendResult: packetsDone
  // counts packets handed to the kernel or dropped for a per-datagram error; errno 0 when all the
  // call took on were done (at most kMaxSendCount: the caller sends the rest next), EAGAIN when
  // the socket is full.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "send");
    uint32_t start, count;
    int64_t gsoArg;
    if (!a.U32(3, "start", &start) || !a.U32(4, "count", &count) || !a.Int(7, "gsoSize", -1, 65535, &gsoArg)) {
      return env.Undefined();
    }
    // gsoSize < 0: "auto", each group's segment size is the length of its first datagram.
    bool gsoAuto = gsoArg < 0;
    uint32_t gso = gsoAuto ? 0 : static_cast<uint32_t>(gsoArg);
    bool packed = Napi::Value(env, a[0]).IsTypedArray();
    if (!packed && !Napi::Value(env, a[0]).IsArray()) { a.Type("bufs must be a Uint8Array or an Array of them"); return env.Undefined(); }

    // An Array's elements are read first: a getter runs JS, which could detach or close what
    // is taken after. From here on no JS runs until the call returns.
    if (!packed) {
      Napi::Array list(env, a[0]);
      if (!Within(start, count, list.Length())) { a.Range("start + count exceeds bufs"); return env.Undefined(); }
      sval_.resize(std::min<uint32_t>(count, kMaxSendCount));
      for (uint32_t k = 0; k < sval_.size(); k++) {
        if (napi_get_element(env, list, start + k, &sval_[k]) != napi_ok) return env.Undefined();
      }
    }
    ByteSpan base, eps;
    WordSpan offs, lens, ids;
    if (packed && (!a.Bytes(0, "bufs", &base) || !a.Words(1, "offsets", &offs) || !a.Words(2, "lengths", &lens))) {
      return env.Undefined();
    }
    // Present or not is what counts, not the data pointer (an empty array has none).
    bool hasEndpoints = a.Has(5), hasIds = a.Has(6);
    if (!a.OptionalBytes(5, "endpoints", &eps) || !a.OptionalWords(6, "destIds", &ids)) return env.Undefined();
    if (packed && (!Within(start, count, offs.count) || !Within(start, count, lens.count))) {
      a.Range("start + count exceeds offsets or lengths");
      return env.Undefined();
    }
    if (hasIds && !Within(start, count, ids.count)) { a.Range("start + count exceeds destIds"); return env.Undefined(); }
    // One call sends at most kMaxSendCount datagrams (bounding its scratch memory) and reports
    // how many it did; the caller goes on from there as after a short send.
    count = std::min<uint32_t>(count, kMaxSendCount);
    if (!CheckOpen(env)) return env.Undefined();
    auto* result = static_cast<uint32_t*>(sendResult_.Get(env));
    if (result == nullptr) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }

    siov_.resize(count);
    for (uint32_t k = 0; k < count; k++) {
      if (packed) {
        // Read once, then checked and used: the arrays may share memory with the data.
        uint32_t off = offs.data[start + k], len = lens.data[start + k];
        if (!Within(off, len, base.length)) { a.Range("a datagram lies outside bufs"); return env.Undefined(); }
        siov_[k].iov_base = base.data + off;
        siov_[k].iov_len = len;
      } else {
        ByteSpan body;
        if (!ToBytes(env, sval_[k], &body)) { a.Type("each datagram must be a Uint8Array"); return env.Undefined(); }
        siov_[k].iov_base = body.data;
        siov_[k].iov_len = body.length;
      }
    }
    return SendGrouped(env, a, start, count, hasEndpoints ? &eps : nullptr, hasIds ? &ids : nullptr, gso, gsoAuto, result,
                       siov_.data(), [&](uint32_t k) { return siov_[k].iov_len; }, [](uint32_t k) { return k; });
  }

  // sendPieces(sources, pieces, ends, start, count, endpoints|null, destIds|null, gsoSize): like
  // send(), for datagrams start..count-1 each gathered from its pieces (gather.h), e.g. a
  // tunnel's header from one buffer and a super-frame's payload slice from another.
  Napi::Value SendPieces(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "sendPieces");
    int64_t gsoArg;
    if (!a.Int(7, "gsoSize", -1, 65535, &gsoArg)) return env.Undefined();
    bool gsoAuto = gsoArg < 0;
    uint32_t gso = gsoAuto ? 0 : static_cast<uint32_t>(gsoArg);
    // Take() reads the sources' elements (JS may run) before it takes any span; nothing after
    // it runs JS.
    if (!gather_.Take(a, 0, kMaxGsoBytes)) return env.Undefined();
    uint32_t start = gather_.start, count = gather_.count;
    ByteSpan eps;
    WordSpan ids;
    bool hasEndpoints = a.Has(5), hasIds = a.Has(6);
    if (!a.OptionalBytes(5, "endpoints", &eps) || !a.OptionalWords(6, "destIds", &ids)) return env.Undefined();
    if (hasIds && !Within(start, count, ids.count)) { a.Range("start + count exceeds destIds"); return env.Undefined(); }
    count = std::min<uint32_t>(count, kMaxSendCount);
    if (!CheckOpen(env)) return env.Undefined();
    auto* result = static_cast<uint32_t*>(sendResult_.Get(env));
    if (result == nullptr) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
    const GatherList& g = gather_;
    return SendGrouped(env, a, start, count, hasEndpoints ? &eps : nullptr, hasIds ? &ids : nullptr, gso, gsoAuto, result,
                       gather_.iov.data(), [&](uint32_t k) { return g.bytes[k]; }, [&](uint32_t k) { return g.outputStart[k]; });
  }

  // Groups datagrams 0..count-1 (datagram k: `lengthOf(k)` bytes in iovecs iov[firstIov(k) ..
  // firstIov(k + 1)), destination ids[start + k]) into messages: UDP GSO sends where gsoSize
  // allows, each at most kMaxGsoSegments datagrams, kMaxGsoBytes and kMaxPiecesPerOutput iovecs.
  // Sends them and writes sendResult (see send()).
  template <typename LengthOf, typename FirstIov>
  Napi::Value SendGrouped(Napi::Env env, const Args& a, uint32_t start, uint32_t count, const ByteSpan* eps, const WordSpan* ids,
                          uint32_t gso, bool gsoAuto, uint32_t* result, iovec* iov, LengthOf lengthOf, FirstIov firstIov) {
    bool hasEndpoints = eps != nullptr, hasIds = ids != nullptr;
    size_t nRecords = hasEndpoints ? eps->length / kEndpointSize : 0;
    // Destination ids are copied once: the array may share memory with the data.
    sdest_.resize(count);
    for (uint32_t k = 0; k < count; k++) sdest_[k] = hasIds ? ids->data[start + k] : 0;

    // Group packets into messages.
    smsgs_.resize(count);
    saddr_.resize(count);
    sfirst_.resize(count + 1);
    sctl_.assign(count * CMSG_SPACE(sizeof(uint16_t)), 0);
    uint32_t msgs = 0;
    uint32_t k = 0;
    while (k < count) {
      uint32_t dest = sdest_[k];
      uint32_t first = k;
      uint32_t segs = 1;
      size_t bytes = lengthOf(k);
      k++;
      if (gsoAuto) gso = static_cast<uint32_t>(std::min<size_t>(lengthOf(first), 65535));
      if (gso > 0 && lengthOf(first) == gso) {
        while (k < count && segs < kMaxGsoSegments && sdest_[k] == dest &&
               lengthOf(k) <= gso && bytes + lengthOf(k) <= kMaxGsoBytes &&
               firstIov(k + 1) - firstIov(first) <= kMaxPiecesPerOutput) {
          bytes += lengthOf(k);
          segs++;
          bool last = lengthOf(k) < gso;
          k++;
          if (last) break;
        }
      }
      mmsghdr& mm = smsgs_[msgs];
      std::memset(&mm, 0, sizeof(mm));
      msghdr& m = mm.msg_hdr;
      if (hasEndpoints) {
        if (dest >= nRecords) { a.Range("a destination id is past the endpoint records"); return env.Undefined(); }
        socklen_t alen;
        if (!ReadEndpoint(eps->data + static_cast<size_t>(dest) * kEndpointSize, family_, &saddr_[msgs], &alen)) {
          ThrowErrno(env, "sendmmsg", EAFNOSUPPORT);
          return env.Undefined();
        }
        m.msg_name = &saddr_[msgs];
        m.msg_namelen = alen;
      }
      m.msg_iov = iov + firstIov(first);
      m.msg_iovlen = firstIov(k) - firstIov(first);
      if (segs > 1) {
        uint8_t* ctl = sctl_.data() + msgs * CMSG_SPACE(sizeof(uint16_t));
        m.msg_control = ctl;
        m.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(lengthOf(first));
        std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
      }
      sfirst_[msgs] = first;
      msgs++;
    }
    sfirst_[msgs] = count;

    uint32_t doneMsgs = 0;
    int err = 0;
    uint32_t failed = 0;
    while (doneMsgs < msgs) {
      int n = sendmmsg(fd_, smsgs_.data() + doneMsgs, msgs - doneMsgs, MSG_DONTWAIT);
      if (n > 0) { doneMsgs += n; continue; }
      if (n < 0 && errno == EINTR) continue;
      err = n < 0 ? errno : EAGAIN;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) { err = EAGAIN; break; }
      // A per-datagram failure (unreachable, refused, too big, filtered): the caller counts
      // and drops this message and goes on with the rest.
      failed = start + sfirst_[doneMsgs];
      doneMsgs++;
      break;
    }
    result[0] = sfirst_[doneMsgs];
    result[1] = static_cast<uint32_t>(err);
    result[2] = failed;
    result[3] = doneMsgs;
    return env.Undefined();
  }

  static bool IsPeerError(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
           err == ENETDOWN || err == EMSGSIZE || err == EPROTO;
  }

  static void NotePeerError(uint32_t* drops, int err) {
    if (drops == nullptr) return;
    drops[1]++;
    drops[2] = static_cast<uint32_t>(err);
  }

};

void InitUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpSocketNative", UdpSocket::Define(env));
}

}  // namespace tuntap
