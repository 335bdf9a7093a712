// The hutch side of the benchmark: sessions made, used and deleted over the REST API by one
// client on one keep-alive connection, strictly one request at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "common/status.h"

namespace hutch::bench {

struct HutchSamples {
  std::vector<int64_t> create_first_exec_ns;  // send of POST /v1/sessions → exec answer received
  std::vector<int64_t> create_ns;             // the create alone (wait=true: running on answer)
  std::vector<int64_t> first_exec_ns;         // the first exec alone
  std::vector<int64_t> exec_ns;               // exec round trips of `true` in one session
  std::vector<int64_t> delete_ns;             // DELETE /v1/sessions/{id}, one per session
  std::vector<int64_t> total_ns;              // per session: create_first_exec + delete
  int connections_opened = 0;  // TCP connections the client opened in all (1: keep-alive held)
};

struct HutchOptions {
  int sessions = 50;
  int exec_iterations = 200;
  int warmup = 2;
};

class HutchRunner {
 public:
  // `run_label` tags every session this run makes (label hutch-bench=<run_label>) so that
  // Cleanup finds even one whose create answer never arrived.
  HutchRunner(client::ApiClient api, std::string run_label);
  // Deletes what is left (Cleanup).
  ~HutchRunner();
  HutchRunner(const HutchRunner&) = delete;
  HutchRunner& operator=(const HutchRunner&) = delete;

  // GET /v1/version's "version".
  Result<std::string> ServerVersion();

  // Warm-up rounds (create, exec, delete; not timed), then the three timed phases:
  //   1. `sessions` times: create, then exec `true` in it (the sessions stay up);
  //   2. `exec_iterations` execs of `true` in the first session;
  //   3. delete every session, in creation order.
  // Returns early with unavailable when Interrupted(); any failed request is an error naming the
  // request and the server's answer.
  Status Run(const HutchOptions& options, HutchSamples* out);

  // Deletes every session of this run that is still live: the ones it holds by id, then any
  // other carrying the run's label. Best effort and idempotent; answers how many it deleted.
  int Cleanup();

 private:
  Result<std::string> CreateAndExec(int64_t* create_ns, int64_t* exec_ns, int64_t* total_ns);
  Result<int64_t> ExecTrue(const std::string& id);
  Result<int64_t> Delete(const std::string& id);

  client::ApiClient api_;
  std::string run_label_;
  std::string create_body_;
  std::vector<std::string> live_;  // ids created and not yet deleted
};

}  // namespace hutch::bench
