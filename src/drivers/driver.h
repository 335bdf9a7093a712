// A Driver turns a session spec into a running sandbox whose PID 1 is hutch-agent, runs
// commands in it through the agent, and tears it down. Local (namespaces on this machine) is the
// default; Slurm and Kubernetes follow. Methods block: call them off network threads.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

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
  // Start again on the writable layer a Stop() kept, instead of a fresh one.
  bool reuse_layer = false;
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

  // Freezes every process of the sandbox where it stands; memory and files stay. Returns once
  // all are stopped.
  virtual Status Pause(const std::string& session_id, const std::string& driver_state) = 0;
  virtual Status Resume(const std::string& session_id, const std::string& driver_state) = 0;

  // Kills every process and frees the sandbox's memory and cgroup, but keeps its writable
  // layer: Create with reuse_layer starts it again from its files. Idempotent.
  virtual Status Stop(const std::string& session_id, const std::string& driver_state) = 0;

  // The sessions this driver (this data dir, not others on the host) holds a sandbox for, for
  // orphan sweeps.
  virtual Result<std::vector<std::string>> ListSandboxes() = 0;
};

struct LocalDriverOptions {
  std::string data_dir;    // sessions live in data_dir/sessions/<id>, images in data_dir/images
  std::string agent_path;  // the hutch-agent executable
  std::string cgroup_root_name = "hutch";  // cgroups go under <controller>/hutch/<id>
};

Result<std::unique_ptr<Driver>> NewLocalDriver(const LocalDriverOptions& options);

}  // namespace hutch::drivers
