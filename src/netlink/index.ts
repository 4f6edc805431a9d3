// tuntap/netlink: interface configuration over rtnetlink, without spawning `ip`.
export { Netlink, NetlinkError, withNetlink, type NetlinkOptions, type Target } from './socket.js';
export {
  listLinks, getLink, findLink, setLink, deleteLink, moveLink, createVeth, createTun, deleteTun, checkName, parseLink,
  type Link, type LinkRef, type LinkStats, type LinkChanges, type TunInfo, type TunCreateOptions, type VethOptions,
} from './links.js';
export { addAddress, deleteAddress, listAddresses, parseAddress, type Address, type AddressSpec } from './addresses.js';
export {
  addRoute, replaceRoute, deleteRoute, listRoutes, parseRoute, type Route, type RouteSpec, type RouteFilter,
} from './routes.js';
export { addRule, deleteRule, listRules, parseRule, type Rule, type RuleSpec } from './rules.js';
export { watchEvents, type NetlinkEvent, type EventGroup, type WatchOptions } from './events.js';
export { configureInterface, type InterfaceConfig } from './config.js';
export { ipToBytes, bytesToIp, parseCidr, type Family, type Cidr } from './ip.js';
export * as codec from './codec.js';
export * as constants from './constants.js';
