{
  "targets": [
    {
      "target_name": "tuntap",
      "sources": [
        "native/addon.cc",
        "native/netns.cc",
        "native/tun.cc",
        "native/queue.cc",
        "native/netlink.cc",
        "native/udp.cc",
        "native/aead.cc",
        "native/poly1305_lanes.cc",
        "native/chacha.cc",
        "native/aead_residue.cc",
        "native/pcap.cc",
        "native/notify.cc",
        "native/checksum.cc",
        "native/checksum_sum.cc",
        "native/relay.cc",
        "native/malloc.cc",
        "native/packet_pair.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
