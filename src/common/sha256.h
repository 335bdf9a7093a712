// SHA-256, OpenSSL's EVP, for everything the server hashes: API token hashes, the digests of
// image blobs and layers, checkpoint images. Part of hutch_crypto, which the static hutch-agent
// does not link (it hashes nothing).
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, named here without its headers

namespace hutch {

// A hash fed in pieces. Move-only: it owns an OpenSSL digest context.
class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;

  void Update(std::string_view data);
  // Lowercase hex of the digest of everything fed since construction or the last HexDigest;
  // the hash starts over after it.
  std::string HexDigest();

 private:
  struct ContextFree {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, ContextFree> ctx_;
};

// Lowercase hex of SHA-256(data).
std::string Sha256Hex(std::string_view data);

}  // namespace hutch
