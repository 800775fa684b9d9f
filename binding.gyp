{
  "targets": [
    {
      "target_name": "eddy_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/args.cc",
        "native/src/crc32c.cc",
        "native/src/durable_image.cc",
        "native/src/entries.cc",
        "native/src/errors.cc",
        "native/src/faults.cc",
        "native/src/mapped_file.cc",
        "native/src/mapping.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc!": ["-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags": ["-O3"]
    }
  ]
}
