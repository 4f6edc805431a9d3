// One TUN/TAP queue fd: non-blocking batched read and write; readiness and the wait/callback
// convention come from the shared poller base (poller.h).
//
// Pull model: JS asks for a batch; read() drains up to a batch of packets into one registered
// buffer (packets back to back, 8-byte aligned) and returns the count. When the fd is empty,
// waitReadable arms uv_poll; the wake-up drains the batch natively and crosses into JS once.
// While nobody asks, nothing is read: the kernel's queue is the buffer and its overflow is the
// device's tx_dropped counter.
#include "poller.h"
#include "gather.h"
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>

namespace tuntap {

bool AdoptPacketPairEnd(int fd, const struct stat& st);  // native/packet_pair.cc

namespace {

class TunQueue : public Poller<TunQueue> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Descriptors d = {
      InstanceMethod<&TunQueue::SetReadBuffers>("setReadBuffers"),
      InstanceMethod<&TunQueue::Write>("write"),
      InstanceMethod<&TunQueue::WriteRanges>("writeRanges"),
      InstanceMethod<&TunQueue::WritePieces>("writePieces"),
      InstanceMethod<&TunQueue::Release>("release"),
    };
    AddPollerMethods(d);
    return DefineClass(env, "TunQueue", d);
  }

  static TunQueue* Unwrap(Napi::Object object) { return UnwrapTagged<TunQueue>(object, kTag, "TunQueue"); }

  static constexpr const char* kReadSyscall = "read";

  // new TunQueue(fd): takes ownership of fd (closed by close()). Only a /dev/net/tun fd is
  // taken: this object closes what it holds, so any other fd (a socket, libuv's own) is refused,
  // except an end of a packet pair this addon made for the purpose (native/packet_pair.cc).
  explicit TunQueue(const Napi::CallbackInfo& info) : Poller<TunQueue>(info, "tuntap.queue") {
    napi_type_tag_object(env_, info.This(), &kTag);
    int fd;
    if (!Args(info, "TunQueue").Fd(0, &fd)) return;
    struct stat st;
    if (fstat(fd, &st) < 0) { ThrowErrno(env_, "fstat", errno); return; }
    bool tun = S_ISCHR(st.st_mode) && major(st.st_rdev) == kTunMajor && minor(st.st_rdev) == kTunMinor;
    if (!tun && !(pair_ = AdoptPacketPairEnd(fd, st))) {
      FailType(env_, "TunQueue", "fd is not an open /dev/net/tun file");
      return;
    }
    Adopt(fd, true);
  }

  // Drains up to a batch; after a pause, one packet (see WakeReadLimit).
  int Drain(bool onWake) { return DrainUpTo(onWake ? WakeReadLimit() : static_cast<uint32_t>(slots_)); }

  void WakeEnded() { lastWakeEnd_ = uv_hrtime(); }

 private:
  // setReadBuffers(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, headerLength,
  // readSize): where drains put packets (each read() gets readSize bytes of room) and their
  // payload offsets and lengths (one slot per packet of a batch).
  Napi::Value SetReadBuffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.setReadBuffers");
    ByteSpan buf;
    WordSpan offsets, lengths;
    uint32_t headerLength, readSize;
    if (!BufferArgs(a, &buf, &offsets, &lengths) ||
        !a.U32(3, "headerLength", &headerLength, kMaxHeaderLength) || !a.U32(4, "readSize", &readSize)) {
      return env.Undefined();
    }
    size_t slots = std::min(offsets.count, lengths.count);
    // Offsets go back to JS as 32-bit numbers, so the whole buffer must be addressable by them.
    if (buf.length > UINT32_MAX) { a.Range("buffer must be under 4 GiB"); return env.Undefined(); }
    if (slots == 0) { a.Range("offsets and lengths need at least one slot"); return env.Undefined(); }
    if (readSize <= headerLength || readSize > buf.length) {
      a.Range("readSize must exceed headerLength and fit the buffer");
      return env.Undefined();
    }
    // Held before any state changes, so a failed call leaves the previous buffers in place.
    HeldView buffer, offsetView, lengthView;
    if (!buffer.Hold(env, a[0], napi_uint8_array, buf.length) ||
        !offsetView.Hold(env, a[1], napi_uint32_array, slots * sizeof(uint32_t)) ||
        !lengthView.Hold(env, a[2], napi_uint32_array, slots * sizeof(uint32_t))) {
      a.Type("buffer must be a Uint8Array");
      return env.Undefined();
    }
    buffer_ = std::move(buffer);
    offsets_ = std::move(offsetView);
    lengths_ = std::move(lengthView);
    capacity_ = buf.length;
    slots_ = slots;
    headerLength_ = headerLength;
    readSize_ = readSize;
    return env.Undefined();
  }

  // Drains up to max packets; returns count, or -errno when the first read fails. The buffers
  // are looked up again each time (JS may have detached them since); one that is gone is EFAULT.
  int DrainUpTo(uint32_t max) {
    if (fd_ < 0) return -EBADF;
    auto* base = static_cast<uint8_t*>(buffer_.Get(env_));
    auto* offsets = static_cast<uint32_t*>(offsets_.Get(env_));
    auto* lengths = static_cast<uint32_t*>(lengths_.Get(env_));
    if (!base || !offsets || !lengths) return -EFAULT;
    if (max > slots_) max = slots_;
    uint32_t count = 0;
    size_t pos = 0;
    // Room is checked without subtracting past zero: pos is rounded up to 8 after each packet
    // and may pass the capacity.
    while (count < max && pos <= capacity_ && readSize_ <= capacity_ - pos) {
      ssize_t n = read(fd_, base + pos, readSize_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        if (count == 0) return -errno;
        break;  // reported by the next call
      }
      // A TUN never reads 0; a packet pair does once its other end closed (and would forever).
      if (n == 0 && pair_) {
        if (count == 0) return -EPIPE;
        break;
      }
      if (static_cast<size_t>(n) < headerLength_) continue;  // cannot happen with our headers; skip it
      offsets[count] = static_cast<uint32_t>(pos + headerLength_);
      lengths[count] = static_cast<uint32_t>(n - headerLength_);
      count++;
      pos += (static_cast<size_t>(n) + 7) & ~static_cast<size_t>(7);
    }
    return static_cast<int>(count);
  }

  // A wake-up after a pause (a ping, a keepalive) almost always finds one packet, and reading
  // again only to hear EAGAIN put a system call on the packet's round trip. So after a pause a
  // wake-up reads one packet: level-triggered polling reports at once anything left, and a
  // wake-up that comes soon after the previous one ended (traffic) drains a whole batch again.
  // The pause runs from the end of a wake-up: a consumer whose work per batch takes longer than
  // the pause still gets whole batches.
  uint32_t WakeReadLimit() {
    return uv_hrtime() - lastWakeEnd_ >= kPauseNs ? 1 : static_cast<uint32_t>(slots_);
  }

  // write(packets: Uint8Array[], start, heads?: Uint8Array, headLength) → how many were
  // written before EAGAIN. A packet the kernel rejects throws with `written` (count before it).
  // Reading an element may run JS (a getter, a Proxy) that detaches buffers or closes the queue,
  // so packets go in chunks: every element of a chunk is read first, then the chunk's pointers
  // (and the heads') are taken and written with no JS in between.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.write");
    uint32_t start;
    if (!Napi::Value(env, a[0]).IsArray()) { a.Type("packets must be an Array"); return env.Undefined(); }
    if (!a.U32(1, "start", &start)) return env.Undefined();
    Napi::Array packets(env, a[0]);
    uint32_t end = packets.Length();
    if (start > end) { a.Range("start is past the end of packets"); return env.Undefined(); }
    Heads heads;
    if (!HeadsNow(a, 2, end, &heads)) return env.Undefined();  // checked whole before anything is written
    if (fd_ < 0) { ThrowErrno(env, "write", EBADF); return env.Undefined(); }
    uint32_t i = start;
    while (i < end) {
      Napi::HandleScope scope(env);
      constexpr uint32_t kChunk = 64;
      napi_value chunk[kChunk];
      uint32_t n = std::min(kChunk, end - i);
      for (uint32_t k = 0; k < n; k++) {
        if (napi_get_element(env, packets, i + k, &chunk[k]) != napi_ok) return WriteFailed(env, i - start, nullptr);
      }
      if (!HeadsNow(a, 2, i + n, &heads)) return WriteFailed(env, i - start, nullptr);
      ByteSpan bodies[kChunk];
      for (uint32_t k = 0; k < n; k++) {
        if (!ToBytes(env, chunk[k], &bodies[k])) return WriteFailed(env, i + k - start, "each packet must be a Uint8Array");
      }
      uint32_t done = 0;
      int err = WriteEach(i, n, heads, [&](uint32_t k, ByteSpan* body) { *body = bodies[k]; return true; }, &done);
      i += done;
      if (err == EAGAIN) break;
      if (err != 0) return WriteFailed(env, i - start, nullptr, err);
    }
    return Napi::Number::New(env, i - start);
  }

  // writeRanges(buffer, offsets, lengths, start, end, heads?, headLength): like write(), for
  // packets start..end-1 lying in one buffer (no per-packet JS objects).
  Napi::Value WriteRanges(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.writeRanges");
    ByteSpan buffer;
    WordSpan offsets, lengths;
    uint32_t start, end;
    if (!BufferArgs(a, &buffer, &offsets, &lengths) || !a.U32(3, "start", &start) || !a.U32(4, "end", &end)) {
      return env.Undefined();
    }
    if (start > end || end > offsets.count || end > lengths.count) {
      a.Range("start..end must lie within offsets and lengths");
      return env.Undefined();
    }
    Heads heads;
    if (!HeadsNow(a, 5, end, &heads)) return env.Undefined();
    if (fd_ < 0) { ThrowErrno(env, "write", EBADF); return env.Undefined(); }
    uint32_t done = 0;
    // Each offset and length is read once, then checked and used: the arrays may share memory
    // with the buffer, so a value checked earlier could have changed.
    int err = WriteEach(start, end - start, heads, [&](uint32_t k, ByteSpan* body) {
      uint32_t off = offsets.data[start + k], len = lengths.data[start + k];
      if (!Within(off, len, buffer.length)) return false;
      body->data = buffer.data + off;
      body->length = len;
      return true;
    }, &done);
    if (err != 0 && err != EAGAIN) return WriteFailed(env, done, nullptr, err);
    return Napi::Number::New(env, done);
  }

  // writePieces(sources, pieces, ends, start, count): one writev() per packet start..count-1,
  // each gathered from its pieces (gather.h; the device's header, if any, is in the caller's
  // first piece). Returns how many were written: fewer when the kernel is full (EAGAIN); another
  // error throws with `written`.
  Napi::Value WritePieces(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.writePieces");
    // A packet the kernel takes is at most 64 KiB plus its headers.
    if (!gather_.Take(a, 0, kMaxHeaderLength + 65535 + 14 + 8)) return env.Undefined();
    if (fd_ < 0) { ThrowErrno(env, "writev", EBADF); return env.Undefined(); }
    uint32_t k = 0;
    while (k < gather_.count) {
      uint32_t first = gather_.outputStart[k];
      int n = static_cast<int>(gather_.outputStart[k + 1] - first);
      if (writev(fd_, gather_.iov.data() + first, n) < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return WriteFailed(env, k, nullptr, errno);
      }
      k++;
    }
    return Napi::Number::New(env, k);
  }

  // The (buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array) that setReadBuffers
  // and writeRanges start with.
  static bool BufferArgs(const Args& a, ByteSpan* buffer, WordSpan* offsets, WordSpan* lengths) {
    return a.Bytes(0, "buffer", buffer) && a.Words(1, "offsets", offsets) && a.Words(2, "lengths", lengths);
  }

  // Packet i's head is data[i * each, +each); no heads when data is null.
  struct Heads {
    uint8_t* data = nullptr;
    uint32_t each = 0;
  };

  // The optional (heads: Uint8Array, headLength) pair at args at, at + 1, as it is now (taken
  // after any JS ran), with room for packets [0, end). No heads array: no heads.
  bool HeadsNow(const Args& a, size_t at, uint32_t end, Heads* out) {
    *out = Heads();
    if (!a.Has(at)) return true;
    ByteSpan bytes;
    uint32_t each;
    if (!ToBytes(a.env(), a[at], &bytes)) return a.Type("heads must be a Uint8Array");
    if (!a.U32(at + 1, "headLength", &each, kMaxHeaderLength)) return false;
    if (static_cast<uint64_t>(end) * each > bytes.length) return a.Range("heads is shorter than headLength per packet");
    if (each > 0) *out = Heads{bytes.data, each};
    return true;
  }

  // Throws the error of a write that stopped after `written` packets: errno (a kernel refusal or
  // EFAULT for a range outside its buffer) or a TypeError for a malformed argument.
  Napi::Value WriteFailed(Napi::Env env, uint32_t written, const char* typeError, int err = EFAULT) {
    Napi::Object e;
    if (typeError) {
      e = Napi::TypeError::New(env, std::string("TunQueue.write: ") + typeError).Value();
    } else if (env.IsExceptionPending()) {
      return env.Undefined();  // a getter threw: that exception stands
    } else {
      e = ErrnoValue(env, "write", err).As<Napi::Object>();
    }
    e.Set("written", written);
    Napi::Error(env, e).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // The write loop of write() and writeRanges(): `count` packets from index `first`, each with
  // writev() behind its head when heads are given. `packetAt(k, &body)` locates the k-th and
  // returns false when it lies outside its buffer (EFAULT). Sets `done` to how many went out;
  // returns 0, EAGAIN (the kernel is full), or the errno that stopped the loop.
  template <typename PacketAt>
  int WriteEach(uint32_t first, uint32_t count, Heads heads, PacketAt packetAt, uint32_t* done) {
    uint32_t k = 0;
    while (k < count) {
      if (fd_ < 0) { *done = k; return EBADF; }
      ByteSpan body;
      if (!packetAt(k, &body)) { *done = k; return EFAULT; }
      struct iovec iov[2];
      int n = 0;
      if (heads.data) {
        iov[n].iov_base = heads.data + static_cast<size_t>(first + k) * heads.each;
        iov[n].iov_len = heads.each;
        n++;
      }
      iov[n].iov_base = body.data;
      iov[n].iov_len = body.length;
      n++;
      if (writev(fd_, iov, n) < 0) {
        if (errno == EINTR) continue;
        *done = k;
        return errno == EAGAIN ? EAGAIN : errno;
      }
      k++;
    }
    *done = k;
    return 0;
  }

  // release(): stops polling and forgets the fd without closing it (handed to a worker).
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Shutdown(false);
    return info.Env().Undefined();
  }

  static constexpr napi_type_tag kTag = {0x7475'6e74'6170'7175ULL, 0x6575'6501'0000'0001ULL};
  static constexpr uint64_t kPauseNs = 2'000'000;
  // PI (4) + the largest virtio_net_hdr (12), with room to spare.
  static constexpr uint32_t kMaxHeaderLength = 64;
  // /dev/net/tun is the misc character device 10:200.
  static constexpr unsigned kTunMajor = 10;
  static constexpr unsigned kTunMinor = 200;
  uint64_t lastWakeEnd_ = 0;
  bool pair_ = false;  // over a packet pair's end, not a TUN
  HeldView buffer_, offsets_, lengths_;
  GatherList gather_;  // writePieces' scratch, reused
  size_t capacity_ = 0;
  size_t slots_ = 0;
  uint32_t headerLength_ = 0;
  uint32_t readSize_ = 0;
};

}  // namespace

void InitQueue(Napi::Env env, Napi::Object exports) {
  exports.Set("TunQueue", TunQueue::Define(env));
}

}  // namespace tuntap
