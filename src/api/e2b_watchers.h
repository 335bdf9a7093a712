// The polled directory watchers of the E2B API's envd part (filesystem.Filesystem's
// CreateWatcher, GetWatcherEvents, RemoveWatcher): each a watch through the SandboxFiles facade
// kept under an id until removed. Events wait in the watch until the next poll takes them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "controller/sandbox_files.h"

namespace hutch::api::e2b {

class WatcherTable {
 public:
  // Keeps `watch` of `dir` in the session; its id.
  std::string Add(const std::string& session_id, const std::string& dir,
                  std::unique_ptr<controller::FileWatch> watch);
  // The events since the last call; `dir` receives the watched directory. not_found for an id
  // the session does not have.
  Result<std::vector<files::WatchEvent>> Drain(const std::string& session_id, const std::string& id,
                                               std::string* dir);
  Status Remove(const std::string& session_id, const std::string& id);
  // Cancels and forgets every watcher (server stop).
  void Clear();

 private:
  struct Entry {
    std::string session_id;
    std::string dir;
    std::shared_ptr<controller::FileWatch> watch;
  };
  std::mutex mu_;
  std::map<std::string, Entry> watchers_;
};

}  // namespace hutch::api::e2b
