#include "agent/config.h"

#include "agent/protocol.h"
#include "agent/wire.h"

namespace hutch::agent {

namespace {
constexpr uint32_t kMagic = 0x47464348;  // "HCFG"
// 2: resolv_conf. 3: the root comes as detached mounts (fds), not host paths; capabilities
// and seccomp. 4: several lower layers (images), bottom first. 5: the per-sandbox secret.
// 6: TLS certificate, key and CA (agents reached over TCP). 7: an attached shell's process
// settings, and the image's workdir.
constexpr uint32_t kConfigVersion = 7;
constexpr size_t kMaxPem = 64 * 1024;
constexpr size_t kMaxPath = 4096;
constexpr uint32_t kMaxFds = 64;
constexpr size_t kMaxSeccompBytes = 4096 * 8;  // BPF_MAXINSNS instructions
constexpr uint32_t kMaxGroups = 65536;         // NGROUPS_MAX
}  // namespace

std::string EncodeAgentConfig(const AgentConfig& c) {
  WireWriter w;
  w.U32(kMagic);
  w.U32(kConfigVersion);
  w.String(c.session_id);
  w.String(c.hostname);
  w.StringMap(c.env);
  w.U32(c.fd_count);
  w.Bool(c.user_namespace);
  w.U32(static_cast<uint32_t>(c.lower_fd_indexes.size()));
  for (uint32_t i : c.lower_fd_indexes) w.U32(i);
  w.I32(c.layer_fd_index);
  w.I64(c.tmpfs_layer_bytes);
  w.I64(c.tmpfs_layer_inodes);
  w.U32(static_cast<uint32_t>(c.binds.size()));
  for (const auto& b : c.binds) {
    w.U32(b.fd_index);
    w.String(b.target);
  }
  w.String(c.resolv_conf);
  w.U32(c.dev_fd_index);
  w.U64(c.capabilities);
  w.String(c.seccomp_filter);
  w.String(c.secret);
  w.String(c.tls_cert);
  w.String(c.tls_key);
  w.String(c.tls_ca);
  w.Bool(c.attach_settings);
  w.U32(c.attach_uid);
  w.U32(c.attach_gid);
  w.U32(static_cast<uint32_t>(c.attach_groups.size()));
  for (uint32_t g : c.attach_groups) w.U32(g);
  w.Bool(c.attach_no_new_privs);
  w.String(c.workdir);
  return w.Take();
}

bool DecodeAgentConfig(std::string_view data, AgentConfig* c, std::string* error) {
  WireReader r(data);
  uint32_t magic = 0, version = 0;
  if (!r.U32(&magic) || magic != kMagic) {
    *error = "agent config: bad magic";
    return false;
  }
  if (!r.U32(&version) || version != kConfigVersion) {
    *error = "agent config: version " + std::to_string(version) + ", this agent reads " +
             std::to_string(kConfigVersion) + " (agent binary and server differ?)";
    return false;
  }
  r.String(&c->session_id, 256);
  r.String(&c->hostname, 256);
  r.StringMap(&c->env, 4096, 1 << 20);
  r.U32(&c->fd_count);
  r.Bool(&c->user_namespace);
  uint32_t lowers = 0;
  // None for an attached shell's agent, which builds no root (RunAttachAgent); a sandbox's
  // agent checks it has at least one.
  if (r.U32(&lowers) && lowers > kMaxFds) {
    *error = "agent config: at most 64 lower layers";
    return false;
  }
  c->lower_fd_indexes.assign(lowers, 0);
  for (uint32_t i = 0; i < lowers && r.ok(); ++i) r.U32(&c->lower_fd_indexes[i]);
  r.I32(&c->layer_fd_index);
  r.I64(&c->tmpfs_layer_bytes);
  r.I64(&c->tmpfs_layer_inodes);
  uint32_t n = 0;
  if (r.U32(&n) && n > kMaxFds) {
    *error = "agent config: too many binds";
    return false;
  }
  c->binds.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    MountFd b;
    r.U32(&b.fd_index);
    r.String(&b.target, kMaxPath);
    c->binds.push_back(std::move(b));
  }
  r.String(&c->resolv_conf, 64 * 1024);
  r.U32(&c->dev_fd_index);
  r.U64(&c->capabilities);
  r.String(&c->seccomp_filter, kMaxSeccompBytes);
  r.String(&c->secret, kMaxSecretLen);
  r.String(&c->tls_cert, kMaxPem);
  r.String(&c->tls_key, kMaxPem);
  r.String(&c->tls_ca, kMaxPem);
  r.Bool(&c->attach_settings);
  r.U32(&c->attach_uid);
  r.U32(&c->attach_gid);
  uint32_t groups = 0;
  if (r.U32(&groups) && groups > kMaxGroups) {
    *error = "agent config: too many groups";
    return false;
  }
  c->attach_groups.assign(groups, 0);
  for (uint32_t i = 0; i < groups && r.ok(); ++i) r.U32(&c->attach_groups[i]);
  r.Bool(&c->attach_no_new_privs);
  r.String(&c->workdir, kMaxPath);
  if (!r.ExpectEnd()) {
    *error = "agent config: " + r.error();
    return false;
  }
  // Every index must name one of the fds that came along. A config without fds builds no root
  // (an attached shell's agent) and names none.
  bool bad = c->fd_count > kMaxFds || (c->fd_count > 0 && c->dev_fd_index >= c->fd_count) ||
             c->layer_fd_index < -1 ||
             (c->layer_fd_index >= 0 && static_cast<uint32_t>(c->layer_fd_index) >= c->fd_count);
  for (uint32_t i : c->lower_fd_indexes) bad = bad || i >= c->fd_count;
  for (const auto& b : c->binds) bad = bad || b.fd_index >= c->fd_count || b.target.empty();
  if (bad) {
    *error = "agent config: an fd index is out of range";
    return false;
  }
  return true;
}

}  // namespace hutch::agent
