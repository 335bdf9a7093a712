#include "sandbox/nftables.h"

#include <nftables/libnftables.h>

#include <fmt/format.h>

namespace hutch::sandbox {

namespace {

std::string TrimNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Result<std::unique_ptr<Nftables>> Nftables::Open() {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return Unavailable("libnftables: cannot create a context");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  auto nft = std::unique_ptr<Nftables>(new Nftables(ctx));
  // Proves the kernel speaks nf_tables and we may use it.
  RETURN_IF_ERROR(nft->Run("list tables", "check nftables")
                      .WithContext("nat networking needs nftables (CONFIG_NF_TABLES, root)"));
  return nft;
}

Nftables::~Nftables() { nft_ctx_free(ctx_); }

Status Nftables::Run(std::string_view script, std::string_view what) {
  std::lock_guard<std::mutex> lock(mu_);
  nft_ctx_output_set_flags(ctx_, 0);
  std::string buf(script);
  int rc = nft_run_cmd_from_buffer(ctx_, buf.c_str());
  std::string err = TrimNewlines(nft_ctx_get_error_buffer(ctx_));
  (void)nft_ctx_get_output_buffer(ctx_);  // drained, so the next call starts empty
  if (rc == 0) return Status::Ok();
  Code code = err.find("No such file or directory") != std::string::npos ? Code::kNotFound
                                                                         : Code::kInternal;
  return Status(code, fmt::format("nftables: {}: {}", what, err.empty() ? "failed" : err));
}

Result<json::value> Nftables::ListJson(std::string_view command) {
  std::lock_guard<std::mutex> lock(mu_);
  nft_ctx_output_set_flags(ctx_, NFT_CTX_OUTPUT_JSON);
  std::string buf(command);
  int rc = nft_run_cmd_from_buffer(ctx_, buf.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx_);
  std::string err = TrimNewlines(nft_ctx_get_error_buffer(ctx_));
  nft_ctx_output_set_flags(ctx_, 0);
  if (rc != 0) {
    Code code = err.find("No such file or directory") != std::string::npos ? Code::kNotFound
                                                                           : Code::kInternal;
    return Status(code, fmt::format("nftables: {}: {}", command, err.empty() ? "failed" : err));
  }
  boost::system::error_code ec;
  json::value v = json::parse(out, ec);
  if (ec)
    return Internal(fmt::format("nftables: {}: output is not JSON: {}", command, ec.message()));
  return v;
}

}  // namespace hutch::sandbox
