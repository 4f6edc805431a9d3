// tuntap/wireguard: a WireGuard-compatible VPN on our TUN devices and batched UDP sockets.
export { WireGuardInterface, type InterfaceOptions, type InterfaceCounters } from './interface.js';
export { WireGuardEngine, type EngineIo, type EngineOptions } from './engine.js';
export { Peer, type PeerConfig } from './peer.js';
export type { EngineStats, DropCounters } from './stats.js';
export type { Packed, ReceivedDatagrams } from './batch.js';
export { parseConfig, readConfig, ConfigError, interfaceNameOf, type WgConfig, type PeerSection, type InterfaceSection } from './config.js';
export { parseEndpoint, formatEndpoint, INTERFACE_SETTINGS, PEER_SETTINGS, type Setting, type EndpointSpec } from './settings.js';
export { quickUp, type QuickInterface, type QuickOptions } from './quick.js';
export { syncConfig, syncRequest, parseGet, localChannel, socketChannel, type UapiChannel, type SyncResult, type SyncOptions, type PeerChanges, type RunningDevice, type WantedDevice } from './sync.js';
export { routingPlan, type RoutingPlan, type RoutingChanges } from './routing.js';
export { UapiServer, uapiGet, uapiSet, UAPI_DIR, type UapiDevice } from './uapi.js';
export { getStatus, formatStatus, listInterfaces, uapiRequest, type InterfaceStatus, type PeerStatus } from './status.js';
export { AllowedIps } from './allowed-ips.js';
export { ReplayWindow, REPLAY_WINDOW } from './replay.js';
export { sealBatch, openBatch, paddedLength, type AeadBatch } from './aead.js';
export { generatePrivateKey, publicKey, keyToBase64, keyFromBase64 } from './crypto.js';
export { DEFAULT_TIMERS, type Timers } from './constants.js';
export { V8_TUNNEL_FLAGS } from './warmup.js';
