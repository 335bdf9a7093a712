#include "files/watch.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "files/ops.h"

namespace hutch::files {

namespace {

constexpr uint32_t kMask = IN_CREATE | IN_MODIFY | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM |
                           IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                           IN_EXCL_UNLINK;
// Not IN_DONT_FOLLOW: the path given is /proc/self/fd/N, a magic link to a directory this
// process opened (inside the root) that must be followed to the directory.
constexpr int kMaxDepth = 64;

}  // namespace

Watcher::~Watcher() = default;

Result<std::unique_ptr<Watcher>> Watcher::Open(const Root& root, std::string_view path,
                                               bool recursive, size_t max_watches) {
  RETURN_IF_ERROR(CheckPath(path));
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd dir, OpenInRoot(root.fd.get(), path, O_RDONLY | O_DIRECTORY));
  std::unique_ptr<Watcher> w(new Watcher());
  w->inotify_ = UniqueFd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w->inotify_) {
    if (errno == EMFILE)
      return ResourceExhausted("too many watches are open on this server (inotify instances)");
    return ErrnoError("inotify_init1", errno);
  }
  w->cancel_ = UniqueFd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!w->cancel_) return ErrnoError("eventfd", errno);
  w->root_ = UniqueFd(fcntl(root.fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!w->root_) return ErrnoError("dup", errno);
  w->recursive_ = recursive;
  w->max_watches_ = max_watches;
  RETURN_IF_ERROR(w->AddTree(dir.get(), shown, 0, nullptr));
  w->root_wd_ = w->paths_.empty() ? -1 : w->paths_.begin()->first;
  for (const auto& [wd, p] : w->paths_)
    if (p == shown) w->root_wd_ = wd;
  return w;
}

Status Watcher::AddTree(int dir_fd, const std::string& shown, int depth,
                        std::vector<WatchEvent>* found) {
  if (paths_.size() >= max_watches_)
    return Conflict(fmt::format("{}: more than {} directories to watch; watch a smaller tree",
                                shown, max_watches_));
  // Through our own fd: the kernel resolves this magic link to the directory we hold.
  std::string self = fmt::format("/proc/self/fd/{}", dir_fd);
  int wd = inotify_add_watch(inotify_.get(), self.c_str(), kMask);
  if (wd < 0) {
    if (errno == ENOSPC)
      return ResourceExhausted(
          "the server's inotify watches are used up (fs.inotify.max_user_watches)");
    return FsError("watch", shown, errno);
  }
  paths_[wd] = shown;
  if (!recursive_ || depth >= kMaxDepth) return Status::Ok();
  ASSIGN_OR_RETURN(std::vector<std::string> names, ReadDirNames(dir_fd, shown));
  for (const std::string& name : names) {
    std::string child = JoinPath(shown, name);
    UniqueFd sub(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (found) {
      struct stat st;
      bool is_dir =
          fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      found->push_back({"created", child, "", is_dir});
    }
    if (!sub || !CheckServedFs(sub.get(), child).ok()) continue;
    RETURN_IF_ERROR(AddTree(sub.get(), child, depth + 1, found));
  }
  return Status::Ok();
}

void Watcher::WatchNewDir(const std::string& path, std::vector<WatchEvent>* out) {
  // Resolved inside the root like any path; a directory swapped for a symlink is not followed.
  auto fd = OpenInRoot(root_.get(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd.ok()) return;
  // What was made inside it before the watch existed is reported as created.
  Status st = AddTree(fd->get(), path, 0, out);
  if (!st.ok()) out->push_back({"overflow", path, "", true});
}

void Watcher::Cancel() {
  uint64_t one = 1;
  (void)!write(cancel_.get(), &one, sizeof one);
}

Result<std::vector<WatchEvent>> Watcher::Wait(int timeout_ms) {
  std::vector<WatchEvent> out;
  if (gone_) return out;
  pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
  int n = poll(fds, 2, timeout_ms);
  if (n < 0 && errno != EINTR) return ErrnoError("poll", errno);
  if (n <= 0 || (fds[1].revents & POLLIN)) return out;
  alignas(inotify_event) char buf[64 * 1024];
  ssize_t len = read(inotify_.get(), buf, sizeof buf);
  if (len <= 0) return out;
  // IN_MOVED_FROM waiting for its IN_MOVED_TO (same cookie, normally the next event).
  struct PendingMove {
    uint32_t cookie;
    std::string path;
    bool dir;
  };
  std::vector<PendingMove> from;
  for (char* p = buf; p < buf + len;) {
    auto* e = reinterpret_cast<inotify_event*>(p);
    p += sizeof(inotify_event) + e->len;
    if (e->mask & IN_Q_OVERFLOW) {
      out.push_back({"overflow", "", "", false});
      continue;
    }
    auto it = paths_.find(e->wd);
    if (it == paths_.end()) continue;
    std::string dir = it->second;
    if (e->mask & IN_IGNORED) {
      paths_.erase(it);
      if (e->wd == root_wd_) gone_ = true;
      continue;
    }
    if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
      if (e->wd == root_wd_) {
        out.push_back({"deleted", dir, "", true});
        gone_ = true;
      }
      continue;
    }
    std::string path = e->len ? JoinPath(dir, e->name) : dir;
    bool is_dir = e->mask & IN_ISDIR;
    if (e->mask & IN_MOVED_FROM) {
      from.push_back({e->cookie, path, is_dir});
      continue;
    }
    if (e->mask & IN_MOVED_TO) {
      WatchEvent ev{"created", path, "", is_dir};
      for (auto f = from.begin(); f != from.end(); ++f) {
        if (f->cookie != e->cookie) continue;
        ev.type = "moved";
        ev.from = f->path;
        from.erase(f);
        break;
      }
      if (is_dir && ev.type == "moved") {
        // The watches below the moved directory keep working; their paths change.
        for (auto& [wd, p2] : paths_) {
          if (p2 == ev.from || p2.rfind(ev.from + "/", 0) == 0)
            p2 = path + p2.substr(ev.from.size());
        }
      }
      out.push_back(ev);
      // Moved in from outside the tree: watch it and what is in it.
      if (is_dir && recursive_ && ev.type == "created") WatchNewDir(path, &out);
      continue;
    }
    if (e->mask & IN_CREATE) {
      out.push_back({"created", path, "", is_dir});
      if (is_dir && recursive_) WatchNewDir(path, &out);
      continue;
    }
    if (e->mask & IN_DELETE) {
      out.push_back({"deleted", path, "", is_dir});
      continue;
    }
    if (e->mask & (IN_MODIFY | IN_ATTRIB)) {
      // A burst of writes is one change per read.
      bool seen = false;
      for (const auto& o : out)
        if (o.type == "modified" && o.path == path) seen = true;
      if (!seen) out.push_back({"modified", path, "", is_dir});
      continue;
    }
  }
  // Moved out of the watched tree: gone from here.
  for (const auto& f : from) out.push_back({"deleted", f.path, "", f.dir});
  return out;
}

}  // namespace hutch::files
