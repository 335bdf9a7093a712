#include "controller/images.h"

#include <fmt/format.h>

#include "common/ids.h"
#include "common/time.h"
#include "core/session.h"

namespace hutch::controller {

namespace {

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

json::value ImageResult(const drivers::ImageInfo& info) {
  ImageView v;
  v.info = info;
  v.show_owner = true;  // the task's owner made it
  return ImageJson(v);
}

}  // namespace

json::object ImageJson(const ImageView& v) {
  const drivers::ImageInfo& i = v.info;
  json::object o;
  o["name"] = i.name;
  o["builtin"] = i.builtin;
  o["owner"] = i.owner.empty() || !v.show_owner ? json::value(nullptr) : json::value(i.owner);
  o["source"] = i.builtin ? json::value("builtin") : json::value(i.source);
  o["source_digest"] =
      i.source_digest.empty() ? json::value(nullptr) : json::value(i.source_digest);
  json::array layers;
  for (const auto& l : i.layers) {
    json::object lo;
    lo["digest"] = l.digest;
    lo["size_bytes"] = l.size_bytes;
    layers.push_back(std::move(lo));
  }
  o["layers"] = std::move(layers);
  o["size_bytes"] = i.size_bytes;
  o["created_at"] = i.builtin ? json::value(nullptr) : json::value(FormatTime(i.created_at));
  json::object cfg;
  json::array env, cmd;
  for (const auto& e : i.env) env.emplace_back(e);
  for (const auto& c : i.cmd) cmd.emplace_back(c);
  cfg["env"] = std::move(env);
  cfg["cmd"] = std::move(cmd);
  cfg["workdir"] = i.workdir;
  o["config"] = std::move(cfg);
  json::array used;
  for (const auto& s : v.used_by) used.emplace_back(s);
  o["used_by"] = std::move(used);
  o["used_count"] = v.used_count;
  return o;
}

Result<ImageView> ImageService::View(const core::Principal& who, drivers::ImageInfo info) {
  ImageView v;
  ASSIGN_OR_RETURN(std::vector<std::string> ids, store_.LiveSessionsUsingImage(info.name));
  v.used_count = static_cast<int64_t>(ids.size());
  for (auto& id : ids) {
    if (who.admin || store_.GetSession(who.OwnerFilter(), id).ok()) v.used_by.push_back(id);
  }
  v.show_owner = who.admin || (!info.owner.empty() && info.owner == who.user_id);
  v.info = std::move(info);
  return v;
}

Result<std::vector<ImageView>> ImageService::List(const core::Principal& who) {
  ASSIGN_OR_RETURN(std::vector<drivers::ImageInfo> infos, driver_.ListImages());
  std::vector<ImageView> out;
  for (auto& info : infos) {
    ASSIGN_OR_RETURN(ImageView v, View(who, std::move(info)));
    out.push_back(std::move(v));
  }
  return out;
}

Result<ImageView> ImageService::Get(const core::Principal& who, const std::string& name) {
  if (!ValidName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  ASSIGN_OR_RETURN(drivers::ImageInfo info, driver_.GetImage(name));
  return View(who, std::move(info));
}

Status ImageService::Delete(const core::Principal& who, const std::string& name) {
  ASSIGN_OR_RETURN(ImageView v, Get(who, name));
  if (v.info.builtin)
    return Conflict(fmt::format("image {} is built in; it cannot be deleted", name));
  if (!who.admin && v.info.owner != who.user_id)
    return PermissionDenied(fmt::format(
        "image {} was made by another user; only they or an admin can delete it", name));
  if (v.used_count > 0) {
    std::string ids;
    for (size_t i = 0; i < v.used_by.size() && i < 10; ++i) ids += (i ? ", " : "") + v.used_by[i];
    return Conflict(fmt::format("image {} is used by {} live session(s){}; delete them first", name,
                                v.used_count, ids.empty() ? "" : " (" + ids + ")"));
  }
  return driver_.DeleteImage(name);
}

Status ImageService::CheckNewName(const std::string& name) {
  if (!ValidName(name) || name == "host")
    return InvalidArgument(fmt::format(
        "image name '{}' must be 1 to 63 of [a-z0-9._-], starting with a letter or digit, and "
        "not 'host'",
        name));
  auto existing = driver_.GetImage(name);
  if (existing.ok()) return Conflict(fmt::format("image {} exists already", name));
  if (existing.status().code() != Code::kNotFound) return existing.status();
  return Status::Ok();
}

Result<std::unique_ptr<drivers::ImageUpload>> ImageService::BeginUpload() {
  return driver_.BeginImageUpload();
}

Result<store::Task> ImageService::Import(const core::Principal& who, const std::string& name,
                                         const std::string& format,
                                         std::unique_ptr<drivers::ImageUpload> upload) {
  RETURN_IF_ERROR(CheckNewName(name));
  std::string owner = who.user_id;
  // Shared: a task's function is copyable. The last copy goes with the task and the upload
  // with it.
  std::shared_ptr<drivers::ImageUpload> received = std::move(upload);
  return tasks_.Start(
      owner, "image.import", "image " + name,
      [this, name, format, received, owner](TaskRunner::Context& ctx) -> Result<json::value> {
        ASSIGN_OR_RETURN(drivers::ImageInfo info,
                         driver_.ImportImage(name, owner, *received, format, ctx.progress));
        return ImageResult(info);
      });
}

Result<store::Task> ImageService::Build(const core::Principal& who, const std::string& name,
                                        const drivers::DebootstrapSpec& spec) {
  RETURN_IF_ERROR(CheckNewName(name));
  std::string owner = who.user_id;
  return tasks_.Start(owner, "image.build", "image " + name,
                      [this, name, spec, owner](TaskRunner::Context& ctx) -> Result<json::value> {
                        ASSIGN_OR_RETURN(
                            drivers::ImageInfo info,
                            driver_.BuildImage(name, owner, spec, ctx.progress, ctx.cancel));
                        return ImageResult(info);
                      });
}

Result<store::Task> ImageService::Commit(const core::Principal& who, std::string_view session,
                                         const std::string& image) {
  ASSIGN_OR_RETURN(core::Session s, store_.GetSession(who.OwnerFilter(), session));
  if (s.state != core::SessionState::kRunning && s.state != core::SessionState::kPaused &&
      s.state != core::SessionState::kStopped)
    return Conflict(
        fmt::format("session {} is {}; only a running, paused or stopped session can be committed",
                    s.id, core::ToString(s.state)));
  if (s.image.empty() || s.image == "host")
    return Conflict(fmt::format(
        "session {} runs image host, whose files are the host's own (bound read-only), so it "
        "cannot become an image; commit a session of an imported or built image",
        s.id));
  RETURN_IF_ERROR(CheckNewName(image));
  std::string owner = who.user_id;
  return tasks_.Start(
      owner, "session.commit", "session " + s.id,
      [this, s, image, owner](TaskRunner::Context& ctx) -> Result<json::value> {
        // The session's state now, not when the task was queued.
        ASSIGN_OR_RETURN(core::Session now, store_.GetSession("", s.id));
        if (now.state != core::SessionState::kRunning && now.state != core::SessionState::kPaused &&
            now.state != core::SessionState::kStopped)
          return Conflict(fmt::format("session {} is {} now; it was not committed", now.id,
                                      core::ToString(now.state)));
        ASSIGN_OR_RETURN(
            drivers::ImageInfo info,
            driver_.CommitSession(now.id, now.driver_state, now.image, image, owner,
                                  now.state == core::SessionState::kRunning, ctx.progress));
        return ImageResult(info);
      });
}

}  // namespace hutch::controller
