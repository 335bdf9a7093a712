// Volumes (docs/server.md, "Volumes"): storage owned by a user that outlives its sessions. The
// driver keeps the data; this decides who may attach what.
#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "controller/session_service.h"

namespace hutch::controller {

using core::Session;

namespace {

constexpr int64_t kDefaultVolumeMb = 1024;
constexpr int64_t kMinVolumeMb = 16;

}  // namespace

Status SessionService::ResolveVolumes(const std::string& owner,
                                      std::vector<core::VolumeMount>* volumes) {
  for (size_t i = 0; i < volumes->size(); ++i) {
    core::VolumeMount& m = (*volumes)[i];
    Result<store::Volume> v = store_.GetVolume(owner, m.volume);
    if (!v.ok()) {
      if (v.status().code() == Code::kNotFound)
        return NotFound(fmt::format("volumes[{}].volume '{}' not found", i, m.volume));
      return v.status();
    }
    m.volume_id = v->id;
    m.volume = v->name;
    // One writer and nobody else, or any number of readers: two ext4 superblocks on one image
    // are safe only while neither writes (local driver, "volumes").
    ASSIGN_OR_RETURN(std::vector<Session> users, store_.SessionsUsingVolume(v->id));
    for (const Session& u : users) {
      bool writer = false;
      for (const auto& um : u.volumes)
        if (um.volume_id == v->id && !um.read_only) writer = true;
      if (writer || !m.read_only)
        return Conflict(fmt::format(
            "volumes[{}]: volume '{}' is attached {} to session {} ({}); a volume is attached "
            "read-write to one session at a time, or read-only to any number",
            i, m.volume, writer ? "read-write" : "read-only", u.name, core::ToString(u.state)));
    }
  }
  return Status::Ok();
}

Result<VolumeInfo> SessionService::CreateVolume(const core::Principal& who, const std::string& name,
                                                int64_t size_mb) {
  if (!core::IsValidName(name))
    return InvalidArgument(fmt::format(
        "name '{}' must be a DNS label: 1 to 63 lowercase letters, digits or '-', starting and "
        "ending with a letter or digit",
        name));
  if (size_mb == 0) size_mb = kDefaultVolumeMb;
  if (size_mb < kMinVolumeMb || size_mb > options_.ceiling.max_disk_mb)
    return InvalidArgument(fmt::format("size_mb must be between {} and {}", kMinVolumeMb,
                                       options_.ceiling.max_disk_mb));
  store::Volume v;
  v.id = NewId("vol");
  v.name = name;
  v.owner = who.user_id;
  v.size_mb = size_mb;
  v.created_at = Now();
  // The record first (it claims the name), then the data; a failed make takes the record back.
  RETURN_IF_ERROR(store_.CreateVolume(v));
  Status made = driver_.CreateVolume(v.id, size_mb);
  if (!made.ok()) {
    if (Status st = store_.DeleteVolume(v.id); !st.ok())
      LOG_WARN("volume {}: remove the record after a failed create: {}", v.id, st.ToString());
    return made.WithContext(fmt::format("create volume {}", name));
  }
  LOG_INFO("volume {} ({}) of {} created, {} MiB", v.id, v.name, v.owner, v.size_mb);
  VolumeInfo info;
  info.volume = std::move(v);
  if (auto u = driver_.GetVolumeUsage(info.volume.id); u.ok()) info.usage = *u;
  return info;
}

Result<std::vector<VolumeInfo>> SessionService::ListVolumes(const core::Principal& who) {
  ASSIGN_OR_RETURN(std::vector<store::Volume> list, store_.ListVolumes(who.OwnerFilter()));
  std::vector<VolumeInfo> out;
  for (auto& v : list) {
    VolumeInfo info;
    info.volume = std::move(v);
    if (auto u = driver_.GetVolumeUsage(info.volume.id); u.ok()) info.usage = *u;
    ASSIGN_OR_RETURN(info.sessions, store_.SessionsUsingVolume(info.volume.id));
    out.push_back(std::move(info));
  }
  return out;
}

Result<VolumeInfo> SessionService::GetVolume(const core::Principal& who,
                                             std::string_view id_or_name) {
  VolumeInfo info;
  ASSIGN_OR_RETURN(info.volume, store_.GetVolume(who.OwnerFilter(), id_or_name));
  if (auto u = driver_.GetVolumeUsage(info.volume.id); u.ok()) info.usage = *u;
  ASSIGN_OR_RETURN(info.sessions, store_.SessionsUsingVolume(info.volume.id));
  return info;
}

Result<VolumeInfo> SessionService::DeleteVolume(const core::Principal& who,
                                                std::string_view id_or_name) {
  std::lock_guard lock(volumes_mu_);
  VolumeInfo info;
  ASSIGN_OR_RETURN(info.volume, store_.GetVolume(who.OwnerFilter(), id_or_name));
  ASSIGN_OR_RETURN(info.sessions, store_.SessionsUsingVolume(info.volume.id));
  // The persistent state of a session: its record owns it (docs/agents.md, "Persistent state").
  if (!info.volume.session_id.empty())
    return Conflict(fmt::format(
        "volume '{}' is the persistent state of session {}; it goes when that session is purged "
        "(DELETE /v1/sessions/{}?purge=true) or its retention window ends",
        info.volume.name, info.volume.session_id, info.volume.session_id));
  if (!info.sessions.empty()) {
    const Session& s = info.sessions.front();
    return Conflict(
        fmt::format("volume '{}' is attached to {} session(s), first {} ({}); delete them first",
                    info.volume.name, info.sessions.size(), s.name, core::ToString(s.state)));
  }
  RETURN_IF_ERROR(store_.DeleteVolume(info.volume.id));
  Status removed = driver_.DeleteVolume(info.volume.id);
  if (!removed.ok()) LOG_WARN("volume {}: remove its data: {}", info.volume.id, removed.ToString());
  return info;
}

}  // namespace hutch::controller
