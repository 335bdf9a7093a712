// The host side of the file operations (files_protocol.h), over the blocking agent client
// (client.h): each operation is a connection of its own. Blocking; call off network threads.
// Errors: the files API's own (not_found, conflict, …) as the agent reported them; unavailable
// when the agent does not answer or went away.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/client.h"
#include "agent/files_protocol.h"
#include "agent/transport.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::agent {

// One file operation's connection: the request sent, answers read as they come.
class FileCall {
 public:
  // Connects, says Hello and sends the request (`type` one of FileStat … FileWatch).
  static Result<FileCall> Start(const Transport& transport, MessageType type,
                                const FileRequest& request);

  // The next answer on the operation's stream within timeout_ms (a negative one: no limit);
  // nullopt on timeout. A FileError is its Status. With `fd`, an fd that came with the frame
  // is stored there (else it is closed).
  Result<std::optional<Frame>> Next(int64_t timeout_ms, UniqueFd* fd = nullptr);
  // The next answer, which must be of type `want`.
  Result<Frame> Expect(MessageType want, int64_t timeout_ms, UniqueFd* fd = nullptr);
  Status Send(MessageType type, std::string_view payload);
  // Sends data as FileData frames (empty: the end marker), first looking whether the agent
  // has given up on the operation (a FileError waits): then that error.
  Status SendData(std::string_view data);
  // Makes a blocked Next() return (unavailable) and every later call fail. Thread-safe.
  void Cancel();

  const std::string& session_id() const { return client_.session_id(); }

 private:
  explicit FileCall(AgentClient client) : client_(std::move(client)) {}
  Status Unexpected(const Frame& frame, std::string_view want) const;

  AgentClient client_;
  uint32_t stream_ = 1;
};

// Reads up to n bytes of what is to be written into buf; 0 at its end.
using FileReadFn = std::function<Result<size_t>(char* buf, size_t n)>;

// What FileRead opened: a directory, or a regular file of `size` bytes whose bytes come either
// from `fd` (the transport carried it) or, after a Range(), as frames from `call`.
struct FileDownload {
  bool directory = false;
  uint64_t size = 0;
  UniqueFd fd;                     // set when the agent passed the file
  std::unique_ptr<FileCall> call;  // set otherwise (streamed mode)
};

// The bytes of an operation that streams them (a streamed download, an archive), piece by piece.
class FileDataReader {
 public:
  explicit FileDataReader(std::unique_ptr<FileCall> call) : call_(std::move(call)) {}
  // The data comes through `pipe` (the read end of a pipe the agent passed; FileArchive), and
  // the call says after its end whether it was complete. `cancel` is an eventfd for Cancel.
  FileDataReader(std::unique_ptr<FileCall> call, UniqueFd pipe, UniqueFd cancel)
      : call_(std::move(call)), pipe_(std::move(pipe)), cancel_(std::move(cancel)) {}
  // The next piece; nullopt after the end marker. An error after the first piece means the
  // data is incomplete.
  Result<std::optional<std::string>> Next();
  // Makes a blocked Next() return. Thread-safe.
  void Cancel();

 private:
  // Next() while the data comes through the pipe.
  Result<std::optional<std::string>> NextFromPipe();

  std::unique_ptr<FileCall> call_;
  UniqueFd pipe_;
  UniqueFd cancel_;
  bool done_ = false;
};

Result<files::Entry> FileStat(const Transport& t, const std::string& path);
Result<files::Listing> FileList(const Transport& t, const std::string& path, uint32_t depth,
                                uint64_t limit);
// Asks for the file's fd when the transport carries fds; a directory answers directory = true.
Result<FileDownload> FileOpenRead(const Transport& t, const std::string& path);
// The bytes [offset, offset + length) of a streamed download.
Result<std::unique_ptr<FileDataReader>> FileReadRange(FileDownload download, uint64_t offset,
                                                      uint64_t length);
// request: path, has_mode/mode, parents. Streams what `read` yields.
Result<FileEntryMessage> FileWrite(const Transport& t, const FileRequest& request,
                                   const FileReadFn& read);
Status FileRemove(const Transport& t, const std::string& path, bool recursive);
Result<files::Entry> FileMkdir(const Transport& t, const FileRequest& request);
Result<files::Entry> FileMove(const Transport& t, const std::string& from, const std::string& to,
                              bool overwrite);
// An uncompressed tar of the file or tree at `path`.
Result<std::unique_ptr<FileDataReader>> FileArchive(const Transport& t, const std::string& path);
// An archive being extracted: the caller writes the uncompressed tar as it has it.
class FileExtractUpload {
 public:
  explicit FileExtractUpload(std::unique_ptr<FileCall> call) : call_(std::move(call)) {}
  // The agent's error (a malicious entry, a limit) as soon as it has one.
  Status Write(std::string_view tar_bytes);
  // The end of the archive: what was extracted.
  Result<FileExtracted> Finish();

 private:
  std::unique_ptr<FileCall> call_;
};
// request: path, parents, max_bytes, max_entries.
Result<std::unique_ptr<FileExtractUpload>> FileExtract(const Transport& t,
                                                       const FileRequest& request);

// A watch in place in the sandbox.
class FileWatchStream {
 public:
  explicit FileWatchStream(std::unique_ptr<FileCall> call) : call_(std::move(call)) {}
  // Changes within timeout_ms (empty on timeout); gone() once the directory went away.
  Result<std::vector<files::WatchEvent>> Wait(int64_t timeout_ms);
  bool gone() const { return gone_; }
  void Cancel() { call_->Cancel(); }

 private:
  std::unique_ptr<FileCall> call_;
  bool gone_ = false;
};
Result<std::unique_ptr<FileWatchStream>> FileWatch(const Transport& t, const std::string& path,
                                                   bool recursive);

}  // namespace hutch::agent
