// Self-signed certificates made in memory with OpenSSL, for the TLS tests: no files from outside
// the test, nothing that expires between runs.
#pragma once

#include <string>
#include <vector>

namespace hutch::cli::testing {

struct TestCert {
  std::string cert_pem;  // the certificate, "-----BEGIN CERTIFICATE-----…"
  std::string key_pem;   // its private key (PKCS#8 PEM)
};

// A fresh P-256 key and a self-signed certificate for it, valid from an hour ago for a day, with
// the subject alternative names `dns_names` and `ip_addresses` (what host name verification
// checks) and CA:TRUE, so a client can trust it as its own root. Aborts the test binary when
// OpenSSL fails, which only a broken installation makes it do.
TestCert MakeSelfSignedCert(const std::vector<std::string>& dns_names,
                            const std::vector<std::string>& ip_addresses);

}  // namespace hutch::cli::testing
