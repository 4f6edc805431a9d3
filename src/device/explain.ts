// Sentences for the errno values each TUN call can return (drivers/net/tun.c error paths).
import type { Explain } from '../errors.js';

export function explainOpen(name: string, opts: { exclusive: boolean; multiQueue: boolean; mode: 'tun' | 'tap' }): Explain {
  const shown = name || `a new ${opts.mode} device`;
  return (code) => {
    switch (code) {
      case 'EPERM': return `creating ${shown} needs CAP_NET_ADMIN, and attaching to an existing ${shown} needs its owner uid or group`;
      case 'EBUSY': return opts.exclusive
        ? `${name} already exists (the open asked for a new device only)`
        : `${name} is already attached to another file descriptor (a single-queue device takes one)`;
      case 'EINVAL': return `${name} exists but is not a ${opts.mode} device ${opts.multiQueue ? 'with' : 'without'} multi-queue, or the flags or name are invalid`;
      case 'E2BIG': return `${name} already has the maximum number of queues (256)`;
      case 'ENOENT': case 'ENODEV': return '/dev/net/tun is missing: load the tun module (modprobe tun)';
      case 'EACCES': return '/dev/net/tun is not accessible to this user';
      case 'EEXIST': return `another device already has the requested name or ifindex`;
      case 'ENFILE': case 'EMFILE': return 'no file descriptor is left for another queue';
      default: return undefined;
    }
  };
}

/** Errors common to control ioctls on an open queue fd. */
export function explainControl(name: string, request: string): Explain {
  return (code) => {
    if (code === 'EBADFD') return `this queue is detached from ${name}; control calls need an attached queue`;
    if (code === 'EPERM') return `changing ${name} needs CAP_NET_ADMIN`;
    switch (request) {
      case 'TUNSETLINK':
        if (code === 'EBUSY') return `the link type of ${name} can only change while it is down`;
        break;
      case 'TUNSETOWNER': case 'TUNSETGROUP':
        if (code === 'EINVAL') return 'the id is not valid in this user namespace';
        break;
      case 'TUNSETVNETHDRSZ':
        if (code === 'EINVAL') return 'the vnet header size must be at least 10 bytes';
        break;
      case 'TUNSETOFFLOAD':
        if (code === 'EINVAL') return 'the kernel does not know one of these offload flags';
        break;
      case 'TUNSETTXFILTER':
        if (code === 'EINVAL') return `only TAP devices filter by MAC address, and at most 8 exact addresses fit`;
        break;
      case 'TUNATTACHFILTER':
        if (code === 'EINVAL') return `the kernel rejected the BPF program, or ${name} is not a TAP device`;
        if (code === 'ENOMEM') return 'the BPF program is too large';
        break;
      case 'TUNDETACHFILTER': case 'TUNGETFILTER':
        if (code === 'EINVAL') return `only TAP devices carry a BPF filter`;
        break;
      case 'SIOCSIFHWADDR':
        if (code === 'EADDRNOTAVAIL') return 'the MAC address must be a unicast address';
        if (code === 'EINVAL' || code === 'EOPNOTSUPP') return `${name} has no MAC address (only TAP devices do)`;
        break;
      case 'TUNSETQUEUE':
        if (code === 'EINVAL') return `${name} is not multi-queue, or this queue is already in that state`;
        if (code === 'EPERM') return `attaching a queue to ${name} needs CAP_NET_ADMIN or its owner uid or group`;
        break;
      case 'SIOCSIFMTU':
        if (code === 'EINVAL') return 'the MTU is out of range for this device';
        break;
      case 'SIOCSIFFLAGS': case 'SIOCGIFFLAGS': case 'SIOCGIFMTU': case 'SIOCGIFINDEX':
        if (code === 'ENODEV') return `${name} no longer exists in its namespace`;
        break;
      default:
        break;
    }
    return undefined;
  };
}

/** Why the kernel refused a written packet. */
export function explainWrite(name: string, mode: 'tun' | 'tap', packetInfo: boolean, vnet: boolean, packet: Uint8Array): Explain {
  return (code) => {
    if (code === 'EINVAL') {
      if (mode === 'tun' && !packetInfo) {
        const nibble = packet.length > 0 ? packet[0]! >> 4 : -1;
        if (nibble !== 4 && nibble !== 6) return 'the kernel rejected the packet because it is not IPv4 or IPv6 (its first nibble must be 4 or 6)';
      }
      if (mode === 'tap' && packet.length < 14) return 'the kernel rejected the frame because it is shorter than an Ethernet header (14 bytes)';
      if (vnet) return 'the kernel rejected the packet or its virtio_net_hdr (hdr_len beyond the packet, bad checksum offsets or an unknown or zero-size GSO type)';
      return 'the kernel rejected the packet as malformed';
    }
    if (code === 'EBADFD') return `this queue is detached from ${name}`;
    if (code === 'EIO') return `${name} is down (set it up first) or being removed`;
    if (code === 'EFAULT') return 'the packet buffer is not readable';
    if (code === 'EMSGSIZE') return 'the packet is larger than the device accepts';
    return undefined;
  };
}

export function explainRead(name: string): Explain {
  return (code) => {
    if (code === 'EBADFD') return `this queue is detached from ${name}`;
    if (code === 'EIO') return `${name} was removed`;
    return undefined;
  };
}
