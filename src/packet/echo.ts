// Echo replies made in place, as a host answering ping does: the request's addresses swapped and
// its type turned into the reply's. Swapping addresses changes neither the IPv4 header sum nor
// the ICMPv6 pseudo-header sum, so only the type's word needs an incremental update (RFC 1624).
import { IpProtocol } from './protocols.js';
import { IcmpType } from './icmp.js';
import { Icmpv6Type } from './icmpv6.js';
import { IpView } from './ip.js';
import { u16, put16 } from './bytes.js';
import { updateChecksum16 } from './checksum.js';

/** Type, code, checksum, identifier, sequence. */
const ECHO_HEADER = 8;

const ip = new IpView();

/**
 * Turns the IPv4 ICMP or IPv6 ICMPv6 echo request in `packet` into its reply, in place; false
 * (the packet untouched) for anything else, a fragment or a malformed packet included.
 */
export function echoReplyInPlace(packet: Uint8Array): boolean {
  if (!ip.tryWrap(packet) || ip.isFragment || ip.upperLength < ECHO_HEADER) return false;
  const v4 = ip.version === 4;
  const request = v4 ? IcmpType.EchoRequest : Icmpv6Type.EchoRequest;
  const reply = v4 ? IcmpType.EchoReply : Icmpv6Type.EchoReply;
  const at = ip.upperOffset;
  if (ip.upperProtocol !== (v4 ? IpProtocol.ICMP : IpProtocol.ICMPv6) || packet[at] !== request) return false;
  const code = packet[at + 1]!;
  ip.swapAddresses();
  packet[at] = reply;
  put16(packet, at + 2, updateChecksum16(u16(packet, at + 2), (request << 8) | code, (reply << 8) | code));
  return true;
}
