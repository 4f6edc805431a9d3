// The service manager's readiness protocol (sd_notify): one datagram of "KEY=VALUE" lines to the
// AF_UNIX socket systemd names in $NOTIFY_SOCKET, a path or, with a leading '@', an abstract name.
// Node has no AF_UNIX datagram socket, and libsystemd is not worth linking for one sendto().
#include "common.h"
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace tuntap {

// What systemd itself accepts in one notification (NOTIFY_BUFFER_MAX is PIPE_BUF).
static constexpr size_t kMaxMessage = 4096;

// notifySend(address, message): address is "/path" or "@abstract"; throws errno on failure.
static Napi::Value NotifySend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "notifySend");
  sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  std::string address;
  std::string message;
  // sun_path holds 108 bytes; a path keeps room for its NUL, an abstract name needs none.
  if (!a.String(0, "address", sizeof addr.sun_path, &address)) return env.Undefined();
  if (!a.String(1, "message", kMaxMessage, &message)) return env.Undefined();
  if (address.size() < 2 || (address[0] != '/' && address[0] != '@')) {
    a.Range("address must be an absolute path or @ and an abstract name");
    return env.Undefined();
  }
  if (address[0] == '/' && address.size() >= sizeof addr.sun_path) {
    a.Range("address is longer than a socket path can be");
    return env.Undefined();
  }
  if (message.empty()) {
    a.Range("message is empty");
    return env.Undefined();
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address.data(), address.size());
  if (address[0] == '@') addr.sun_path[0] = '\0';
  // An abstract name is exactly its bytes (no terminating NUL); a path is counted with its NUL.
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (address[0] == '/' ? 1 : 0));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { ThrowErrno(env, "socket(AF_UNIX)", errno); return env.Undefined(); }
  // Never wait on a receiver that stopped reading: a full queue is EAGAIN, reported, not a hang.
  ssize_t sent = sendto(fd, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                        reinterpret_cast<sockaddr*>(&addr), length);
  int err = errno;
  close(fd);
  if (sent < 0) ThrowErrno(env, "sendto(" + address + ")", err);
  return env.Undefined();
}

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("notifySend", Napi::Function::New(env, NotifySend));
}

}  // namespace tuntap
