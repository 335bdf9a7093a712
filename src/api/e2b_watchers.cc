#include "api/e2b_watchers.h"

#include <fmt/format.h>

#include "common/ids.h"

namespace hutch::api::e2b {

std::string WatcherTable::Add(const std::string& session_id, const std::string& dir,
                              std::unique_ptr<controller::FileWatch> watch) {
  std::string id = NewId("wch");
  std::lock_guard lock(mu_);
  watchers_[id] = Entry{session_id, dir, std::shared_ptr<controller::FileWatch>(std::move(watch))};
  return id;
}

Result<std::vector<files::WatchEvent>> WatcherTable::Drain(const std::string& session_id,
                                                           const std::string& id,
                                                           std::string* dir) {
  std::shared_ptr<controller::FileWatch> watch;
  {
    std::lock_guard lock(mu_);
    auto it = watchers_.find(id);
    if (it == watchers_.end() || it->second.session_id != session_id)
      return NotFound(fmt::format("watcher {} not found", id));
    watch = it->second.watch;
    *dir = it->second.dir;
  }
  return watch->Wait(0);
}

Status WatcherTable::Remove(const std::string& session_id, const std::string& id) {
  std::shared_ptr<controller::FileWatch> watch;
  {
    std::lock_guard lock(mu_);
    auto it = watchers_.find(id);
    if (it == watchers_.end() || it->second.session_id != session_id)
      return NotFound(fmt::format("watcher {} not found", id));
    watch = std::move(it->second.watch);
    watchers_.erase(it);
  }
  watch->Cancel();
  return Status::Ok();
}

void WatcherTable::Clear() {
  std::map<std::string, Entry> all;
  {
    std::lock_guard lock(mu_);
    all.swap(watchers_);
  }
  for (auto& [id, entry] : all) entry.watch->Cancel();
}

}  // namespace hutch::api::e2b
