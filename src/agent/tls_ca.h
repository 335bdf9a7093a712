// The server's CA for agents reached over a network (docs/architecture.md, "One credential
// scheme"): made at the first start that needs it and kept in the data dir, so agents that
// outlive a server still trust the next one. It issues each such agent a certificate at
// create (delivered in the agent's config) and the server a client certificate at start.
#pragma once

#include <memory>
#include <string>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/status.h"

namespace hutch::agent {

struct IssuedCertificate {
  std::string cert_pem;
  std::string key_pem;  // never logged; lives in the agent's config and memory only
};

class AgentCa {
 public:
  // dir/agent-ca.pem and dir/agent-ca.key (0600, in a 0700 dir), made when missing.
  static Result<std::unique_ptr<AgentCa>> LoadOrCreate(const std::string& dir);
  ~AgentCa();
  AgentCa(const AgentCa&) = delete;
  AgentCa& operator=(const AgentCa&) = delete;

  // An agent's certificate: extended key usage serverAuth, DNS name `session_id` (what the
  // server checks when it dials it).
  Result<IssuedCertificate> IssueAgent(const std::string& session_id) const;
  // A client certificate (clientAuth) for the server that dials agents.
  Result<IssuedCertificate> IssueClient(const std::string& name) const;
  const std::string& ca_pem() const { return ca_pem_; }

 private:
  AgentCa() = default;
  Result<IssuedCertificate> Issue(const std::string& name, bool agent) const;

  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  std::string ca_pem_;
};

}  // namespace hutch::agent
