// Starts a real `hutch serve` as a child process on port 0 with a temp data dir, for
// integration tests. The address comes from DATA_DIR/listen.addr, the token from
// DATA_DIR/admin.token.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::testing {

class ServerProcess {
 public:
  // Starts the server; `data_dir` empty makes a fresh temp dir that the destructor removes.
  // `extra_args` are appended to `hutch serve …` (e.g. {"--config", path}).
  static Result<std::unique_ptr<ServerProcess>> Start(const std::string& hutch_binary,
                                                      const std::string& data_dir = "",
                                                      std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // "http://127.0.0.1:PORT", or https:// when started with --tls-cert.
  const std::string& url() const { return url_; }
  // Contents of serve.log so far (the server's stderr).
  std::string Log() const;
  const std::string& token() const { return token_; }
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }

  // SIGKILL without any chance to clean up, then reap.
  void Kill9();
  // SIGTERM and wait; returns the exit status.
  int Stop();
  // Starts a new server process on the same data dir (after Kill9 or Stop).
  Status Restart();
  // Starts a new server process on the same data dir and SIGKILLs it `after` into its start,
  // listening or not (crash tests: a kill while the server reconciles at start). The server is
  // down afterwards; Restart() brings it up.
  void CrashDuringStart(std::chrono::milliseconds after);

 private:
  ServerProcess() = default;
  // Forks and execs the server; with `wait`, returns once it listens (or failed to start).
  Status Spawn(bool wait = true);

  std::string binary_;
  std::string data_dir_;
  bool own_dir_ = false;
  std::vector<std::string> extra_args_;
  std::string url_;
  std::string token_;
  pid_t pid_ = -1;
};

// rm -rf that never follows symlinks.
void RemoveTree(const std::string& path);
// Kills the sandboxes of the sessions under data_dir/sessions (cgroup root "hutch") and
// removes their cgroups: what the destructor does before it removes its own data dir.
void KillSandboxesOf(const std::string& data_dir);

}  // namespace hutch::testing
