// The files API of a session, for api/file_handlers.cc: one facade over where a sandbox's files
// are served from (docs/architecture.md, "The transport contract").
//
// A running or paused session's files are served by its agent, over the transport its driver
// hands out (agent/file_client.h): the agent resolves every path inside its own root. Pausing
// freezes the sandbox's processes but not its agent (drivers/local: the cgroup's work leaf), so
// a paused session's files are read and written the same way while nothing in it runs.
//
// Activity, agent-failed handling (a sandbox that died under a call moves to error) and the
// session state check are here, once. Blocking: call from the blocking pool.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "core/principal.h"
#include "core/session.h"
#include "files/archive.h"
#include "files/codec.h"
#include "files/ops.h"
#include "files/watch.h"

namespace hutch::agent {
class Transport;
}

namespace hutch::controller {

class SessionService;

// Bytes of a download or an archive, piece by piece.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The next piece; nullopt at the end. An error after the first piece: the data is cut short.
  virtual Result<std::optional<std::string>> Next() = 0;
  // Makes a blocked Next() return. Thread-safe.
  virtual void Cancel() = 0;
};

// A watch on a directory of the sandbox.
class FileWatch {
 public:
  virtual ~FileWatch() = default;
  // Changes within timeout_ms (empty on timeout or after Cancel()).
  virtual Result<std::vector<files::WatchEvent>> Wait(int64_t timeout_ms) = 0;
  // The watched directory went away: nothing more comes.
  virtual bool gone() const = 0;
  virtual void Cancel() = 0;
};

// What GET …/files opened: a directory (list it) or a regular file of `size` bytes.
class FileDownload {
 public:
  struct Impl;
  explicit FileDownload(std::unique_ptr<Impl> impl);
  FileDownload(FileDownload&&) noexcept;
  ~FileDownload();
  bool directory() const;
  uint64_t size() const;
  // The bytes [offset, offset + length); once per download.
  Result<std::unique_ptr<ByteSource>> Range(uint64_t offset, uint64_t length);

 private:
  std::unique_ptr<Impl> impl_;
};

struct WrittenFile {
  files::Entry entry;
  bool created = false;
};

struct Extracted {
  uint64_t entries = 0, files = 0, bytes = 0;
};

// Reads up to n bytes of a request body into buf; 0 at its end.
using BodyReadFn = std::function<Result<size_t>(char* buf, size_t n)>;

class SandboxFiles {
 public:
  // The files of a running or paused session of `who`; conflict in other states. Counts as
  // activity. `touched` receives the session (for the audit trail) once it is known.
  static Result<SandboxFiles> Open(SessionService& service, const core::Principal& who,
                                   std::string_view id_or_name, core::Session* touched);
  SandboxFiles(SandboxFiles&&) noexcept;
  ~SandboxFiles();

  Result<files::Entry> Stat(const std::string& path);
  Result<files::Listing> List(const std::string& path, int depth, size_t limit);
  Result<FileDownload> OpenRead(const std::string& path);
  Result<WrittenFile> Write(const std::string& path, const files::WriteOptions& opts,
                            const BodyReadFn& read);
  Status Remove(const std::string& path, bool recursive);
  Result<files::Entry> MakeDir(const std::string& path, uint32_t mode, bool parents);
  Result<files::Entry> Move(const std::string& from, const std::string& to, bool overwrite);
  // A tar of the file or tree at `path`, compressed with `c`.
  Result<std::unique_ptr<ByteSource>> Archive(const std::string& path, files::Compression c);
  // One tar of several paths, each named after its last component as Archive names it (the
  // caller keeps those names apart). Each path is checked to exist first (not_found naming it),
  // then archived in turn.
  Result<std::unique_ptr<ByteSource>> ArchiveMany(const std::vector<std::string>& paths,
                                                  files::Compression c);
  // Extracts the tar `read` yields (gzip, zstd or plain, detected) below directory `path`.
  Result<Extracted> Extract(const std::string& path, bool parents,
                            const files::ExtractLimits& limits, const BodyReadFn& read);
  Result<std::unique_ptr<FileWatch>> Watch(const std::string& path, bool recursive);

  const core::Session& session() const { return session_; }

 private:
  SandboxFiles(SessionService& service, core::Session session);
  // An agent call's failure: the session moves to error when its sandbox is gone.
  Status Failed(const Status& status);
  template <typename T>
  Result<T> Checked(Result<T> r) {
    if (!r.ok()) return Failed(r.status());
    return r;
  }

  SessionService* service_;
  core::Session session_;
  std::shared_ptr<const agent::Transport> transport_;
};

}  // namespace hutch::controller
