// Image `host`: the sandbox sees the host's programs and libraries, read-only, with an /etc of
// its own — the bubblewrap approach, so a fresh machine runs sessions with nothing pulled.
//
// The image is a small lower layer, data_dir/images/host/rootfs, with the top-level
// directories, the host's merged-usr symlinks (bin -> usr/bin …) and copies of a vetted part
// of the host's /etc. The host's /usr (and any of /bin, /lib … that are real directories
// rather than symlinks) is bind-mounted read-only over it by the agent.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::drivers::local {

struct HostBind {
  std::string source;  // host path
  std::string target;  // path inside the sandbox, absolute ("/usr")
  bool read_only = true;
};

struct HostImage {
  std::string rootfs;           // the lower layer
  std::vector<HostBind> binds;  // host directories to bind read-only
};

// The files and directories of the host's /etc that sandboxes get a copy of. Whatever exists
// of these is copied; nothing else is: never shadow, gshadow, sudoers, ssh host keys or
// hutch's own configuration.
const std::vector<std::string>& HostEtcAllowlist();

// Builds the image under `image_dir` (data_dir/images/host) unless it is there already.
// The rootfs is built in a temporary directory and renamed into place, so a crash never leaves
// a half-built image behind that looks complete. Delete the directory to rebuild it (e.g.
// after changing the host's /etc).
// `host_root` is "/" except in tests.
Result<HostImage> PrepareHostImage(const std::string& image_dir,
                                   const std::string& host_root = "/");

}  // namespace hutch::drivers::local
