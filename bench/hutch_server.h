// A `hutch serve` the benchmark starts for itself: port 0, a data dir inside the bench's temp
// dir, its log in DATA_DIR/serve.log. The address comes from DATA_DIR/listen.addr, the token from
// DATA_DIR/admin.token.
//
// It runs with the defaults of a fresh install except one: its config file (DATA_DIR/bench.yaml,
// given as --config, so /etc/hutch/config.yaml is not read) sets rate_limit.per_second: 0. The
// default limit (20 mutating calls a second per token, burst 100) exists to stop runaway
// clients; the bench is one on purpose, and measures latency, not the limiter.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::bench {

class HutchServer {
 public:
  // Starts `hutch` (the executable; hutch-agent is found next to it) and waits up to 20 s for it
  // to listen. The child gets a process group of its own, so a Ctrl-C at the terminal reaches
  // only the bench, which then deletes its sessions while the server still runs; and it gets
  // SIGTERM if the bench dies without stopping it.
  static Result<std::unique_ptr<HutchServer>> Start(const std::string& hutch,
                                                    const std::string& data_dir,
                                                    const std::string& log_level,
                                                    std::vector<std::string> extra_args = {});
  // Stops the server (see Stop).
  ~HutchServer();
  HutchServer(const HutchServer&) = delete;
  HutchServer& operator=(const HutchServer&) = delete;

  const std::string& url() const { return url_; }
  const std::string& token() const { return token_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, then SIGKILL if it has not exited within 10 s; reaps it. Idempotent.
  void Stop();

 private:
  HutchServer() = default;

  std::string url_;
  std::string token_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace hutch::bench
