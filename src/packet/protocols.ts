// The protocol numbers (src/base/protocols.ts, where the offload codecs below the device read
// them too), offered to the packet layer's users from here.
export { IpProtocol, EtherType, etherTypeOfIpVersion } from '../base/protocols.js';
