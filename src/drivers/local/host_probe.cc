#include "drivers/local/host_probe.h"

#include <sys/utsname.h>

#include <cstdio>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "common/log.h"
#include "sandbox/caps.h"
#include "sandbox/fs.h"
#include "sandbox/idmap.h"
#include "sandbox/mount_api.h"
#include "sandbox/process.h"
#include "sandbox/seccomp_policy.h"

namespace hutch::drivers::local {

namespace {

// Linux 5.19: overlayfs over idmapped layers (5.12 brought idmapped mounts, 5.11 overlayfs in
// user namespaces; the combination the driver uses needs all three).
bool KernelAtLeast(int major, int minor) {
  utsname u;
  if (uname(&u) != 0) return false;
  int a = 0, b = 0;
  if (sscanf(u.release, "%d.%d", &a, &b) != 2) return false;
  return a > major || (a == major && b >= minor);
}

// Whether sandboxes can get a user namespace here: one can be made and mapped, and the image's
// layers can be idmapped into it. "" when they can, else why not.
std::string ProbeUserNamespaces(const HostImage& image, local::DiskPool* disks) {
  if (!KernelAtLeast(5, 19)) return "the kernel is older than 5.19 (overlayfs on idmapped layers)";
  auto userns = sandbox::NewUserNamespace({local::kFirstSandboxHostId, sandbox::kIdsPerSandbox});
  if (!userns.ok()) return userns.status().message();
  sandbox::MountAttrs idmap;
  idmap.idmap_userns_fd = userns->get();
  std::vector<std::string> layers = {image.rootfs};
  for (const auto& b : image.binds) layers.push_back(b.source);
  for (const auto& path : layers) {
    auto tree = sandbox::CloneMount(path);
    if (!tree.ok()) return tree.status().message();
    Status st = sandbox::SetMountAttrs(tree->get(), idmap, path);
    if (!st.ok()) return st.message() + " (the filesystem has no idmapped mounts)";
  }
  if (disks) {
    auto lease = disks->Take(disks->warm_mb(), "");
    if (!lease.ok()) return lease.status().message();
    Status st = sandbox::SetMountAttrs(lease->mount.get(), idmap, "an ext4 disk");
    disks->Return(lease->mb, std::move(lease->disk));
    if (!st.ok()) return st.message();
  }
  return "";
}

// /etc/subuid and /etc/subgid: ranges the host gave to its users, never a sandbox's.
std::vector<sandbox::IdRange> HostSubIdRanges() {
  std::vector<sandbox::IdRange> out;
  for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
    auto text = sandbox::ReadFileToString(file);
    if (!text.ok()) continue;
    for (const auto& r : local::ParseSubIdFile(*text)) out.push_back(r);
  }
  return out;
}

}  // namespace

Result<Hardening> PrepareHardening(const LocalDriverOptions& opts, const HostImage& image) {
  Hardening h;
  ASSIGN_OR_RETURN(h.agent_exe, sandbox::SealedExecutableCopy(opts.agent_path));
  ASSIGN_OR_RETURN(h.seccomp_filter, sandbox::CompileSeccompFilter(sandbox::DefaultSeccompRules()));

  std::string disk_line;
  if (opts.disk == "auto") {
    local::DiskPool::Options d;
    d.dir = opts.data_dir + "/disks";
    d.warm_mb = opts.warm_disk_mb;
    d.warm_count = opts.warm_disks;
    auto pool = local::DiskPool::Open(d);
    if (pool.ok()) {
      h.disks = std::move(*pool);
      disk_line = fmt::format("ext4 per session on a loop device ({} warm of {} MiB)",
                              opts.warm_disks, opts.warm_disk_mb);
    } else {
      LOG_WARN(
          "session disks: {}; writable layers fall back to tmpfs (memory-backed, charged to "
          "the session's memory limit)",
          pool.status().message());
      disk_line = "tmpfs (fallback)";
    }
  } else if (opts.disk == "tmpfs") {
    disk_line = "tmpfs";
  } else {
    return InvalidArgument(fmt::format("disk backend {} is not auto or tmpfs", opts.disk));
  }

  std::string userns_line;
  if (opts.user_namespaces) {
    std::string why_not = ProbeUserNamespaces(image, h.disks.get());
    if (why_not.empty()) {
      auto data_dir = opts.data_dir;
      ASSIGN_OR_RETURN(
          h.id_slots, local::IdSlots::Open(
                          opts.data_dir + "/idmap",
                          [data_dir](std::string_view id) {
                            return sandbox::PathExists(fmt::format("{}/sessions/{}", data_dir, id));
                          },
                          HostSubIdRanges()));
      h.user_namespaces = true;
      userns_line = fmt::format("on (root of a sandbox is host uid {} + 65536·n)",
                                local::kFirstSandboxHostId);
    } else {
      LOG_WARN(
          "user namespaces are not available: {}. Sandboxes run as host root, held by the "
          "cut capability set, no_new_privs, seccomp and the masked /proc (docs/security.md)",
          why_not);
      userns_line = "OFF (" + why_not + ")";
    }
  } else {
    userns_line = "off (configured)";
  }
  LOG_INFO(
      "sandbox hardening: user namespaces {}; disks {}; {} capabilities kept; seccomp {} "
      "rules; agent from a sealed memfd",
      userns_line, disk_line, std::size(sandbox::kSandboxCapabilities),
      sandbox::DefaultSeccompRules().size());
  return h;
}

}  // namespace hutch::drivers::local
