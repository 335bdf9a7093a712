// A Driver turns a session spec into a running sandbox whose PID 1 is hutch-agent, runs
// commands in it through the agent, and tears it down. Local (namespaces on this machine) is the
// default; Slurm and Kubernetes follow. Methods block: call them off network threads.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "core/exec.h"
#include "core/session.h"

namespace hutch::drivers {

struct SandboxSpec {
  std::string session_id;
  std::string hostname;  // the session's name
  std::string image;     // "host"
  core::Resources resources;
  std::map<std::string, std::string> env;  // the session's env, given to every process
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Builds the sandbox and returns once its agent answers. The returned string is the driver's
  // opaque state for this sandbox (stored with the session, handed back on every later call,
  // also after a server restart). On failure nothing of the sandbox is left behind.
  virtual Result<std::string> Create(const SandboxSpec& spec) = 0;

  // Runs a command to completion in the sandbox. `unavailable` when the agent is gone.
  virtual Result<core::ExecResult> Exec(const std::string& session_id,
                                        const std::string& driver_state,
                                        const core::ExecRequest& request) = 0;

  // Whether the sandbox's agent still answers.
  virtual bool IsAlive(const std::string& session_id, const std::string& driver_state) = 0;

  // Kills every process of the sandbox and removes every mount, cgroup and directory it made.
  // Idempotent: destroying what is already gone is OK.
  virtual Status Destroy(const std::string& session_id, const std::string& driver_state) = 0;
};

struct LocalDriverOptions {
  std::string data_dir;    // sessions live in data_dir/sessions/<id>, images in data_dir/images
  std::string agent_path;  // the hutch-agent executable
  std::string cgroup_root_name = "hutch";  // cgroups go under <controller>/hutch/<id>

  // Hardening (docs/security.md).
  // A user namespace per sandbox where the host allows it (root inside is an unprivileged host
  // id range); false: never — sandboxes run as host root with a cut capability set.
  bool user_namespaces = true;
  // The writable layer: "auto" — an ext4 disk of disk_mb per session on a loop device where
  // the host has loop devices and mke2fs, else a tmpfs — or "tmpfs".
  std::string disk = "auto";
  int64_t warm_disk_mb = 1024;  // the disk size kept ready: the default resources.disk_mb
  int warm_disks = 2;           // how many
};

Result<std::unique_ptr<Driver>> NewLocalDriver(const LocalDriverOptions& options);

}  // namespace hutch::drivers
