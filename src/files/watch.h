// Watching a directory inside a sandbox for changes, with inotify. The directory is resolved
// inside the root like every other path (resolve.h); the watch is added through the fd that
// resolution produced (/proc/self/fd/N of this process), never through a path string, and
// subdirectories of a recursive watch are opened one component at a time without following
// symlinks.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "files/resolve.h"

namespace hutch::files {

struct WatchEvent {
  std::string type;  // "created", "modified", "deleted", "moved", "overflow"
  std::string path;  // inside the sandbox
  std::string from;  // "moved": where it was
  bool directory = false;
};

class Watcher {
 public:
  // Watches directory `path`; with `recursive` every directory below it as well (at most
  // `max_watches` directories: beyond that, conflict).
  static Result<std::unique_ptr<Watcher>> Open(const Root& root, std::string_view path,
                                               bool recursive, size_t max_watches = 8192);
  ~Watcher();

  // Waits up to `timeout_ms` for changes; answers them (empty on timeout or after Cancel()).
  Result<std::vector<WatchEvent>> Wait(int timeout_ms);
  // Makes a blocked Wait() return at once, and every later one. Thread-safe.
  void Cancel();
  // The watched directory itself was deleted or moved away: nothing more will come.
  bool gone() const { return gone_; }

 private:
  Watcher() = default;
  // Adds a watch on the directory open at `dir_fd` (shown as `shown`) and, when recursive,
  // below it; new entries found below are appended to *found as "created".
  Status AddTree(int dir_fd, const std::string& shown, int depth, std::vector<WatchEvent>* found);
  // A directory that appeared in a recursive watch: watched, with what is already in it.
  void WatchNewDir(const std::string& path, std::vector<WatchEvent>* out);

  UniqueFd root_;  // a dup of the sandbox's root fd
  UniqueFd inotify_;
  UniqueFd cancel_;  // eventfd
  bool recursive_ = false;
  size_t max_watches_ = 0;
  int root_wd_ = -1;
  bool gone_ = false;
  std::map<int, std::string> paths_;  // watch descriptor → directory inside the sandbox
};

}  // namespace hutch::files
