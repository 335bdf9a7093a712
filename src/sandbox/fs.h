// Filesystem helpers for the host side of the sandbox: reading and writing small files (also
// cgroupfs and procfs ones), creating directories, copying a tree with `cp -a` semantics and
// removing one without ever following a symlink out of it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::sandbox {

Result<std::string> ReadFileToString(const std::string& path);

// Writes `data` with one write(2) to an existing file (cgroupfs and procfs files take a value
// per write). Errors name the file: "write /sys/fs/cgroup/…/pids.max: EINVAL".
Status WriteExistingFile(const std::string& path, std::string_view data);

// Creates or truncates `path` with `mode` and writes `data`.
Status WriteNewFile(const std::string& path, std::string_view data, mode_t mode);

// mkdir; an existing directory is OK.
Status MakeDir(const std::string& path, mode_t mode);
// mkdir -p with `mode` for the directories it creates.
Status MakeDirs(const std::string& path, mode_t mode);

// Removes `path` and all below it. Never follows a symlink: directories are opened with
// O_NOFOLLOW relative to their parent's fd, so a symlink planted in a sandbox's upper dir
// (pointing at /etc, say) is unlinked, not traversed. A missing `path` is OK.
Status RemoveTree(const std::string& path);

// Empties the directory open as `dirfd` the same way (its own entry stays). `what` names it in
// errors.
Status RemoveDirContents(int dirfd, const std::string& what);

// Copies `src` to `dst` like `cp -a`: symlinks stay symlinks, mode, owner and times are kept.
// Sockets, fifos and devices are skipped. `skip(relative_path)` can leave out subtrees
// ("ssl/private"); relative paths are relative to `src`.
Status CopyTree(const std::string& src, const std::string& dst,
                const std::function<bool(const std::string&)>& skip = nullptr);

// Whether `path` exists (lstat succeeds).
bool PathExists(const std::string& path);

}  // namespace hutch::sandbox
