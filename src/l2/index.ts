// tuntap/l2: a learning Ethernet switch over TAP devices and VXLAN tunnels, and persistent TAPs
// for virtual machines.
export { LearningSwitch } from './switch.js';
export type { SwitchOptions, PortStats, VlanMembership, MacTableRow } from './switch.js';
export type { Port, Frame, FrameOffload } from './port.js';
export { isSuperPacket } from './port.js';
export { TapPort } from './tap-port.js';
export type { TapPortOptions } from './tap-port.js';
export { VxlanPort } from './vxlan.js';
export type { VxlanPortOptions, VxlanStats, VxlanRemoteRow } from './vxlan.js';
// The VXLAN codec is packet's; re-exported where it was found before.
export {
  VXLAN_UDP_PORT, VXLAN_HEADER_SIZE, VXLAN_FLAG_VNI, VXLAN_OVERHEAD_IPV4, VXLAN_OVERHEAD_IPV6,
  encodeVxlanHeader, encapsulate, decapsulate, checkVni,
} from '../packet/vxlan.js';
export type { VxlanDecoded, VxlanDecodeError } from '../packet/vxlan.js';
export { Fdb } from './fdb.js';
export type { FdbRow, FdbEntry } from './fdb.js';
export { frameVlan, pushVlan, popVlan, completeChecksum, macKey, macKeyToString, parseMacKey } from './ethernet.js';
export { createVmTap, deleteVmTap } from './vm-tap.js';
export type { VmTapOptions } from './vm-tap.js';
