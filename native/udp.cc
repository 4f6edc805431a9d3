// Batched UDP datagram I/O: a non-blocking socket whose readiness comes from uv_poll on the JS
// thread, recvmmsg draining up to a batch into one shared buffer per wake-up, sendmmsg of a batch
// to one or many destinations, UDP GSO (UDP_SEGMENT) on send and UDP GRO on receive.
//
// Endpoints cross the boundary as fixed 24-byte records so no per-datagram strings are made:
//   [0..15] address (IPv4 in bytes 0..3), [16..17] port (big endian), [18] family (4 or 6),
//   [19] unused, [20..23] IPv6 scope id (little endian).
#include "common.h"
#include <uv.h>
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

template <typename T>
static T* TypedData(Napi::Value v, size_t* count) {
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  *count = ta.ElementLength();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

class UdpSocket : public Napi::ObjectWrap<UdpSocket> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpSocketNative", {
      InstanceMethod("bind", &UdpSocket::Bind),
      InstanceMethod("connect", &UdpSocket::Connect),
      InstanceMethod("localEndpoint", &UdpSocket::LocalEndpoint),
      InstanceMethod("setIntOption", &UdpSocket::SetIntOption),
      InstanceMethod("getIntOption", &UdpSocket::GetIntOption),
      InstanceMethod("bindToDevice", &UdpSocket::BindToDevice),
      InstanceMethod("setRecvArea", &UdpSocket::SetRecvArea),
      InstanceMethod("recv", &UdpSocket::Recv),
      InstanceMethod("send", &UdpSocket::Send),
      InstanceMethod("armRead", &UdpSocket::ArmRead),
      InstanceMethod("armWrite", &UdpSocket::ArmWrite),
      InstanceMethod("cancelRead", &UdpSocket::CancelRead),
      InstanceMethod("close", &UdpSocket::Close),
      InstanceAccessor("fd", &UdpSocket::Fd, nullptr),
    });
  }

  explicit UdpSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpSocket>(info) {
    Napi::Env env = info.Env();
    family_ = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
    fd_ = socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd_ < 0) { ThrowErrno(env, "socket", errno); return; }
    int one = 1;
    // The kernel's drop counter for this socket arrives with each datagram (best effort).
    setsockopt(fd_, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    poll_ = new uv_poll_t;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ::close(fd_);
      fd_ = -1;
      ThrowErrno(env, "uv_poll_init", -rc);
      return;
    }
    poll_->data = this;
    // A worker that ends with the socket open must not leave a uv handle on its dead loop.
    env_ = env;
    if (napi_add_env_cleanup_hook(env, EnvCleanup, this) == napi_ok) hooked_ = true;
  }

  ~UdpSocket() override { Release(); }

  static void EnvCleanup(void* arg) {
    auto* self = static_cast<UdpSocket*>(arg);
    self->hooked_ = false;
    self->Release();
  }

 private:
  int fd_ = -1;
  int family_ = AF_INET;
  napi_env env_ = nullptr;
  bool hooked_ = false;
  uv_poll_t* poll_ = nullptr;
  int events_ = 0;
  int armed_ = 0;  // events uv_poll is started with
  Napi::FunctionReference onReadable_;
  Napi::FunctionReference onWritable_;
  bool readPersistent_ = false;

  // Receive area shared with JS (kept alive by areaRef_): one slot of slotSize_ bytes per message.
  Napi::ObjectReference areaRef_;
  uint8_t* data_ = nullptr;
  size_t slotSize_ = 0;
  size_t batch_ = 0;
  uint32_t* lengths_ = nullptr;
  uint32_t* segSizes_ = nullptr;
  uint32_t* flags_ = nullptr;
  uint8_t* endpoints_ = nullptr;
  // [0] kernel drop counter (SO_RXQ_OVFL) last seen, [1] ICMP errors seen, [2] the last one's errno
  uint32_t* drops_ = nullptr;
  // send()'s result, written here rather than returned as a new JS array per call.
  uint32_t* sendResult_ = nullptr;
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

  void Release() {
    if (hooked_) {
      napi_remove_env_cleanup_hook(env_, EnvCleanup, this);
      hooked_ = false;
    }
    if (poll_ != nullptr) {
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

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
    if (!CheckOpen(env)) return env.Undefined();
    sockaddr_storage ss;
    socklen_t len;
    size_t n;
    uint8_t* rec = TypedData<uint8_t>(info[0], &n);
    if (n < kEndpointSize || !ReadEndpoint(rec, family_, &ss, &len)) { ThrowErrno(env, syscall, EAFNOSUPPORT); return env.Undefined(); }
    if (op(fd_, reinterpret_cast<sockaddr*>(&ss), len) < 0) ThrowErrno(env, syscall, errno);
    return env.Undefined();
  }

  // localEndpoint(out: Uint8Array) fills a record with getsockname().
  Napi::Value LocalEndpoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) < 0) { ThrowErrno(env, "getsockname", errno); return env.Undefined(); }
    size_t n;
    uint8_t* rec = TypedData<uint8_t>(info[0], &n);
    if (n >= kEndpointSize) WriteEndpoint(rec, ss);
    return env.Undefined();
  }

  // setIntOption(level, name, value, syscallLabel)
  Napi::Value SetIntOption(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    int level = info[0].As<Napi::Number>().Int32Value();
    int name = info[1].As<Napi::Number>().Int32Value();
    int value = info[2].As<Napi::Number>().Int32Value();
    if (setsockopt(fd_, level, name, &value, sizeof(value)) < 0) {
      std::string label = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : std::string("setsockopt");
      ThrowErrno(env, label, errno);
    }
    return env.Undefined();
  }

  Napi::Value GetIntOption(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    int level = info[0].As<Napi::Number>().Int32Value();
    int name = info[1].As<Napi::Number>().Int32Value();
    int value = 0;
    socklen_t len = sizeof(value);
    if (getsockopt(fd_, level, name, &value, &len) < 0) { ThrowErrno(env, "getsockopt", errno); return env.Undefined(); }
    return Napi::Number::New(env, value);
  }

  Napi::Value BindToDevice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    std::string name = info[0].As<Napi::String>();
    if (setsockopt(fd_, SOL_SOCKET, SO_BINDTODEVICE, name.c_str(), name.size()) < 0)
      ThrowErrno(env, "setsockopt(SO_BINDTODEVICE)", errno);
    return env.Undefined();
  }

  // setRecvArea(area: object with data, lengths, segSizes, flags, endpoints, drops; slotSize, batch)
  Napi::Value SetRecvArea(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object area = info[0].As<Napi::Object>();
    size_t n;
    data_ = nullptr;  // set last, once every array is known to fit the batch
    uint8_t* data = TypedData<uint8_t>(area.Get("data"), &n);
    slotSize_ = area.Get("slotSize").As<Napi::Number>().Uint32Value();
    batch_ = area.Get("batch").As<Napi::Number>().Uint32Value();
    if (batch_ == 0 || slotSize_ == 0 || n < batch_ * slotSize_) { ThrowErrno(env, "recvmmsg", EINVAL); return env.Undefined(); }
    // Drain() writes batch_ entries into each of these: a shorter array would be overrun.
    size_t nLengths, nSegs, nFlags, nEndpoints, nDrops, nResult;
    lengths_ = TypedData<uint32_t>(area.Get("lengths"), &nLengths);
    segSizes_ = TypedData<uint32_t>(area.Get("segmentSizes"), &nSegs);
    flags_ = TypedData<uint32_t>(area.Get("truncated"), &nFlags);
    endpoints_ = TypedData<uint8_t>(area.Get("endpoints"), &nEndpoints);
    drops_ = TypedData<uint32_t>(area.Get("drops"), &nDrops);
    sendResult_ = TypedData<uint32_t>(area.Get("sendResult"), &nResult);
    if (nLengths < batch_ || nSegs < batch_ || nFlags < batch_ || nEndpoints < batch_ * kEndpointSize || nDrops < 3 || nResult < 4) {
      drops_ = nullptr;  // NotePeerError writes through it even without an area
      sendResult_ = nullptr;
      ThrowErrno(env, "recvmmsg", EINVAL);
      return env.Undefined();
    }
    data_ = data;
    areaRef_ = Napi::Persistent(area);
    rmsgs_.assign(batch_, mmsghdr{});
    riov_.assign(batch_, iovec{});
    raddr_.assign(batch_, sockaddr_storage{});
    rctl_.assign(batch_ * kRecvControl, 0);
    return env.Undefined();
  }

  // Drains up to a batch: returns the count, 0 when nothing is waiting; -errno for hard errors.
  int Drain() {
    if (fd_ < 0 || data_ == nullptr) return -EBADF;
    for (size_t i = 0; i < batch_; i++) {
      riov_[i].iov_base = data_ + i * slotSize_;
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
      if (IsPeerError(errno) && attempts < 4) { NotePeerError(errno); continue; }
      return -errno;
    }
    for (int i = 0; i < n; i++) {
      msghdr& m = rmsgs_[i].msg_hdr;
      lengths_[i] = rmsgs_[i].msg_len;
      flags_[i] = (m.msg_flags & MSG_TRUNC) ? 1 : 0;
      segSizes_[i] = 0;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int seg;
          std::memcpy(&seg, CMSG_DATA(c), sizeof(seg));
          // A coalesced run longer than one segment; a single datagram reports no segmentation.
          segSizes_[i] = (seg > 0 && static_cast<uint32_t>(seg) < lengths_[i]) ? seg : 0;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
          std::memcpy(drops_, CMSG_DATA(c), sizeof(uint32_t));
        }
      }
      WriteEndpoint(endpoints_ + i * kEndpointSize, raddr_[i]);
    }
    return n;
  }

  Napi::Value Recv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int n = Drain();
    if (n < 0) { ThrowErrno(env, "recvmmsg", -n); return env.Undefined(); }
    return Napi::Number::New(env, n);
  }

  // send(bufs, offsets|null, lengths|null, start, count, endpoints|null, destIds|null, gsoSize)
  //   bufs: one Uint8Array holding every packet (offsets/lengths locate them) or an Array of
  //   Uint8Array (offsets/lengths null: whole buffers). endpoints: records; destIds: per-packet
  //   index into endpoints (null: every packet to record 0; endpoints null: connected socket).
  //   gsoSize > 0: consecutive packets to one destination are joined into one UDP_SEGMENT send
  //   where every packet but the last is exactly gsoSize bytes; gsoSize < 0: the same, with
  //   each group's size taken from its first packet.
  // Writes [packetsDone, errno, failedPacket, messagesDone] to the area's sendResult: packetsDone
  // counts packets handed to the kernel or dropped for a per-datagram error; errno 0 when all were
  // done, EAGAIN when the socket is full.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (sendResult_ == nullptr) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
    uint32_t start = info[3].As<Napi::Number>().Uint32Value();
    uint32_t count = info[4].As<Napi::Number>().Uint32Value();
    // gsoSize < 0: "auto", each group's segment size is the length of its first datagram.
    int64_t gsoArg = info[7].As<Napi::Number>().Int64Value();
    bool gsoAuto = gsoArg < 0;
    uint32_t gso = gsoAuto ? 0 : static_cast<uint32_t>(gsoArg);

    bool packed = info[0].IsTypedArray();
    uint8_t* base = nullptr;
    uint32_t* offs = nullptr;
    uint32_t* lens = nullptr;
    size_t baseLen = 0, nOffs = 0, nLens = 0;
    Napi::Array list;
    if (packed) {
      base = TypedData<uint8_t>(info[0], &baseLen);
      offs = TypedData<uint32_t>(info[1], &nOffs);
      lens = TypedData<uint32_t>(info[2], &nLens);
      if (start + count > nOffs || start + count > nLens) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
    } else {
      list = info[0].As<Napi::Array>();
      if (start + count > list.Length()) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
    }
    uint8_t* eps = nullptr;
    size_t nEps = 0;
    if (info[5].IsTypedArray()) eps = TypedData<uint8_t>(info[5], &nEps);
    uint32_t* ids = nullptr;
    size_t nIds = 0;
    if (info[6].IsTypedArray()) {
      ids = TypedData<uint32_t>(info[6], &nIds);
      if (start + count > nIds) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
    }
    size_t nRecords = nEps / kEndpointSize;

    siov_.resize(count);
    for (uint32_t k = 0; k < count; k++) {
      uint32_t i = start + k;
      if (packed) {
        if (static_cast<size_t>(offs[i]) + lens[i] > baseLen) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
        siov_[k].iov_base = base + offs[i];
        siov_[k].iov_len = lens[i];
      } else {
        Napi::Value v = list.Get(i);
        if (!v.IsTypedArray()) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
        size_t len;
        siov_[k].iov_base = TypedData<uint8_t>(v, &len);
        siov_[k].iov_len = len * v.As<Napi::TypedArray>().ElementSize();
      }
    }

    // Group packets into messages.
    smsgs_.resize(count);
    saddr_.resize(count);
    sfirst_.resize(count + 1);
    sctl_.assign(count * CMSG_SPACE(sizeof(uint16_t)), 0);
    uint32_t msgs = 0;
    uint32_t k = 0;
    while (k < count) {
      uint32_t dest = ids ? ids[start + k] : 0;
      uint32_t first = k;
      uint32_t segs = 1;
      size_t bytes = siov_[k].iov_len;
      k++;
      if (gsoAuto) gso = static_cast<uint32_t>(std::min<size_t>(siov_[first].iov_len, 65535));
      if (gso > 0 && siov_[first].iov_len == gso) {
        while (k < count && segs < kMaxGsoSegments && (ids ? ids[start + k] : 0) == dest &&
               siov_[k].iov_len <= gso && bytes + siov_[k].iov_len <= kMaxGsoBytes) {
          bytes += siov_[k].iov_len;
          segs++;
          bool last = siov_[k].iov_len < gso;
          k++;
          if (last) break;
        }
      }
      mmsghdr& mm = smsgs_[msgs];
      std::memset(&mm, 0, sizeof(mm));
      msghdr& m = mm.msg_hdr;
      if (eps != nullptr) {
        if (dest >= nRecords) { ThrowErrno(env, "sendmmsg", EINVAL); return env.Undefined(); }
        socklen_t alen;
        if (!ReadEndpoint(eps + dest * kEndpointSize, family_, &saddr_[msgs], &alen)) {
          ThrowErrno(env, "sendmmsg", EAFNOSUPPORT);
          return env.Undefined();
        }
        m.msg_name = &saddr_[msgs];
        m.msg_namelen = alen;
      }
      m.msg_iov = &siov_[first];
      m.msg_iovlen = segs;
      if (segs > 1) {
        uint8_t* ctl = sctl_.data() + msgs * CMSG_SPACE(sizeof(uint16_t));
        m.msg_control = ctl;
        m.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(siov_[first].iov_len);
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
    sendResult_[0] = sfirst_[doneMsgs];
    sendResult_[1] = static_cast<uint32_t>(err);
    sendResult_[2] = failed;
    sendResult_[3] = doneMsgs;
    return env.Undefined();
  }

  static bool IsPeerError(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
           err == ENETDOWN || err == EMSGSIZE || err == EPROTO;
  }

  void NotePeerError(int err) {
    if (drops_ == nullptr) return;
    drops_[1]++;
    drops_[2] = static_cast<uint32_t>(err);
  }

  // Unchanged events cost nothing: a reader that re-arms from its own callback keeps the fd
  // in epoll (no epoll_ctl per wake-up).
  void UpdatePoll() {
    if (poll_ == nullptr) return;
    if (events_ == armed_) return;
    armed_ = events_;
    if (events_ == 0) {
      uv_poll_stop(poll_);
    } else {
      uv_poll_start(poll_, events_, OnPoll);
    }
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<UdpSocket*>(handle->data);
    if (self == nullptr) return;
    self->HandlePoll(status, events);
  }

  void HandlePoll(int status, int events) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (status < 0) armed_ = 0;  // libuv stops the handle when it reports an error
    DispatchPoll(env, status, events);
    // Once, after the callbacks ran: one that waits again leaves the poll as it is.
    UpdatePoll();
  }

  void DispatchPoll(Napi::Env env, int status, int events) {
    if (status < 0) {
      // libuv reports EPOLLERR as UV_EBADF and stops the handle. On a UDP socket that is a
      // pending ICMP error (peer unreachable, port closed): read it with SO_ERROR, which clears
      // it, count it and keep waiting. Only a socket that cannot even report that has failed.
      int err = 0;
      socklen_t len = sizeof(err);
      if (fd_ >= 0 && getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
        if (err != 0) NotePeerError(err);
        UpdatePoll();
        if (err != 0) return;
      }
      events = events_;  // report the failure through the waiting callbacks
    }
    if ((events & UV_WRITABLE) && (events_ & UV_WRITABLE)) {
      events_ &= ~UV_WRITABLE;
      Napi::FunctionReference cb = std::move(onWritable_);
      if (!cb.IsEmpty()) cb.MakeCallback(Value(), {Napi::Number::New(env, status < 0 ? -status : 0)});
    }
    if (fd_ < 0) return;
    if ((events & (UV_READABLE | UV_DISCONNECT)) && (events_ & UV_READABLE)) {
      int n = status < 0 ? status : Drain();
      if (n == 0) return;  // spurious wake-up: keep waiting
      if (readPersistent_ && n > 0) {
        // Stays armed; the callback may cancel itself (the call holds its value).
        if (!onReadable_.IsEmpty()) onReadable_.MakeCallback(Value(), {Napi::Number::New(env, n)});
        return;
      }
      events_ &= ~UV_READABLE;
      Napi::FunctionReference cb = std::move(onReadable_);
      if (!cb.IsEmpty()) cb.MakeCallback(Value(), {Napi::Number::New(env, n)});
    }
  }

  // armRead(cb, persistent?): cb(count) once a wake-up drained datagrams into the area (count
  // < 0: -errno); with `persistent`, after every such wake-up until cancelRead() (no call and
  // no new reference per wake-up for a reader that always waits again).
  Napi::Value ArmRead(const Napi::CallbackInfo& info) {
    readPersistent_ = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    return Arm(info, onReadable_, UV_READABLE);
  }

  // armWrite(cb): cb(0) once the socket can take more datagrams (POLLOUT).
  Napi::Value ArmWrite(const Napi::CallbackInfo& info) { return Arm(info, onWritable_, UV_WRITABLE); }

  // Keeps the callback info[0] in `slot` and polls for `event` until it fires.
  Napi::Value Arm(const Napi::CallbackInfo& info, Napi::FunctionReference& slot, int event) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    slot = Napi::Persistent(info[0].As<Napi::Function>());
    events_ |= event;
    UpdatePoll();
    return env.Undefined();
  }

  // cancelRead(): stops waiting for readability; the armed callback is dropped uncalled.
  Napi::Value CancelRead(const Napi::CallbackInfo& info) {
    events_ &= ~UV_READABLE;
    UpdatePoll();
    onReadable_.Reset();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    events_ = 0;
    Release();
    onReadable_.Reset();
    onWritable_.Reset();
    areaRef_.Reset();
    data_ = nullptr;
    sendResult_ = nullptr;
    return info.Env().Undefined();
  }
};

void InitUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpSocketNative", UdpSocket::Define(env));
}

}  // namespace tuntap
