// libnftables in-process: what `nft -f` does, without a process per change (a session's rules
// are applied on its create path). Thread-safe: one context behind a mutex.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/status.h"

struct nft_ctx;

namespace hutch::sandbox {

class Nftables {
 public:
  // unavailable when the kernel or library cannot do nftables.
  static Result<std::unique_ptr<Nftables>> Open();
  ~Nftables();
  Nftables(const Nftables&) = delete;
  Nftables& operator=(const Nftables&) = delete;

  // Runs `script` (nft syntax, one command per line) as one transaction: all of it or none.
  // Errors carry nft's own message and `what`. not_found when nft says a named object does not
  // exist (ENOENT), so idempotent deletes can tell "already gone" apart.
  Status Run(std::string_view script, std::string_view what);
  // Runs a list command ("list table inet hutch") and returns nft's JSON output.
  Result<json::value> ListJson(std::string_view command);

  // The calling thread must be in the host's network namespace: the context's netlink socket
  // is the host's, but libnftables may open more on the calling thread.
 private:
  explicit Nftables(nft_ctx* ctx) : ctx_(ctx) {}
  std::mutex mu_;
  nft_ctx* ctx_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::sandbox
