#include "agent/config.h"

#include "agent/wire.h"

namespace hutch::agent {

namespace {
constexpr uint32_t kMagic = 0x47464348;  // "HCFG"
constexpr uint32_t kConfigVersion = 2;   // 2: resolv_conf
constexpr size_t kMaxPath = 4096;
}  // namespace

std::string EncodeAgentConfig(const AgentConfig& c) {
  WireWriter w;
  w.U32(kMagic);
  w.U32(kConfigVersion);
  w.String(c.session_id);
  w.String(c.root_dir);
  w.StringList(c.lower_dirs);
  w.String(c.upper_dir);
  w.String(c.work_dir);
  w.String(c.socket_path);
  w.String(c.hostname);
  w.StringMap(c.env);
  w.U32(static_cast<uint32_t>(c.binds.size()));
  for (const auto& b : c.binds) {
    w.String(b.source);
    w.String(b.target);
    w.Bool(b.read_only);
  }
  w.String(c.resolv_conf);
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
  r.String(&c->root_dir, kMaxPath);
  r.StringList(&c->lower_dirs, 64, kMaxPath);
  r.String(&c->upper_dir, kMaxPath);
  r.String(&c->work_dir, kMaxPath);
  r.String(&c->socket_path, kMaxPath);
  r.String(&c->hostname, 256);
  r.StringMap(&c->env, 4096, 1 << 20);
  uint32_t n = 0;
  if (r.U32(&n) && n > 256) {
    *error = "agent config: too many binds";
    return false;
  }
  c->binds.clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    BindMount b;
    r.String(&b.source, kMaxPath);
    r.String(&b.target, kMaxPath);
    r.Bool(&b.read_only);
    c->binds.push_back(std::move(b));
  }
  r.String(&c->resolv_conf, 64 * 1024);
  if (!r.ExpectEnd()) {
    *error = "agent config: " + r.error();
    return false;
  }
  return true;
}

}  // namespace hutch::agent
