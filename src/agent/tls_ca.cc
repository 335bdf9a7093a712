#include "agent/tls_ca.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "agent/openssl_ptrs.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

// Agents live as long as their sessions and are not re-keyed: certificates outlast them.
constexpr long kValiditySeconds = 20L * 365 * 24 * 3600;

Status SslError(std::string_view what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return Internal(fmt::format("{}: {}", what, buf));
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return SslError("write certificate");
  return BioString(bio.get());
}

Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return SslError("write key");
  return BioString(bio.get());
}

Result<std::string> ReadWholeFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoError("open " + path, errno);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + path, errno);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Written beside and renamed into place: a crash leaves the old file or the whole new one.
Status WriteWholeFile(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return ErrnoError("create " + tmp, errno);
  if (write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()) ||
      fsync(fd.get()) != 0) {
    return ErrnoError("write " + tmp, errno);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  return Status::Ok();
}

PkeyPtr NewKey() { return PkeyPtr(EVP_EC_gen("P-256")); }

Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return SslError(fmt::format("certificate extension {}", value));
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? Status::Ok() : SslError("add certificate extension");
}

// A certificate for `key` named `cn`, unsigned; serial random, valid from an hour ago.
Result<X509Ptr> NewCertificate(EVP_PKEY* key, const std::string& cn) {
  X509Ptr cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return SslError("RAND_bytes");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  ASN1_INTEGER* asn = bn ? BN_to_ASN1_INTEGER(bn, nullptr) : nullptr;
  BN_free(bn);
  if (!asn) return SslError("serial");
  X509_set_serialNumber(cert.get(), asn);
  ASN1_INTEGER_free(asn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (X509_set_pubkey(cert.get(), key) != 1) return SslError("X509_set_pubkey");
  return cert;
}

}  // namespace

AgentCa::~AgentCa() {
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

Result<std::unique_ptr<AgentCa>> AgentCa::LoadOrCreate(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir " + dir, errno);
  std::string cert_path = dir + "/agent-ca.pem", key_path = dir + "/agent-ca.key";
  std::unique_ptr<AgentCa> ca(new AgentCa());
  if (access(cert_path.c_str(), F_OK) != 0) {
    PkeyPtr key = NewKey();
    if (!key) return SslError("generate the agent CA's key");
    ASSIGN_OR_RETURN(X509Ptr cert, NewCertificate(key.get(), "hutch agent CA"));
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    RETURN_IF_ERROR(
        AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    RETURN_IF_ERROR(
        AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
    RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return SslError("sign the agent CA");
    ASSIGN_OR_RETURN(std::string key_pem, KeyPem(key.get()));
    ASSIGN_OR_RETURN(std::string cert_pem, CertPem(cert.get()));
    // The key first: a certificate on disk always has its key beside it.
    RETURN_IF_ERROR(WriteWholeFile(key_path, key_pem, 0600));
    RETURN_IF_ERROR(WriteWholeFile(cert_path, cert_pem, 0644));
  }
  ASSIGN_OR_RETURN(ca->ca_pem_, ReadWholeFile(cert_path));
  ASSIGN_OR_RETURN(std::string key_pem, ReadWholeFile(key_path));
  BioPtr cert_bio(BIO_new_mem_buf(ca->ca_pem_.data(), static_cast<int>(ca->ca_pem_.size())));
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  ca->cert_ = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
  ca->key_ = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  if (!ca->cert_ || !ca->key_) return SslError("read the agent CA in " + dir);
  if (X509_check_private_key(ca->cert_, ca->key_) != 1)
    return SslError("the agent CA's key does not match its certificate in " + dir);
  return ca;
}

Result<IssuedCertificate> AgentCa::Issue(const std::string& name, bool agent) const {
  PkeyPtr key = NewKey();
  if (!key) return SslError("generate a key");
  ASSIGN_OR_RETURN(X509Ptr cert, NewCertificate(key.get(), name));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert_, NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert_, NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert_, NID_ext_key_usage, agent ? "serverAuth" : "clientAuth"));
  if (agent) {
    std::string san = "DNS:" + name;
    RETURN_IF_ERROR(AddExtension(cert.get(), cert_, NID_subject_alt_name, san.c_str()));
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), cert_, NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), key_, EVP_sha256()) == 0) return SslError("sign a certificate");
  IssuedCertificate out;
  ASSIGN_OR_RETURN(out.cert_pem, CertPem(cert.get()));
  ASSIGN_OR_RETURN(out.key_pem, KeyPem(key.get()));
  return out;
}

Result<IssuedCertificate> AgentCa::IssueAgent(const std::string& session_id) const {
  return Issue(session_id, true);
}

Result<IssuedCertificate> AgentCa::IssueClient(const std::string& name) const {
  return Issue(name, false);
}

}  // namespace hutch::agent
