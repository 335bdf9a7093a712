#include "agent/file_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "agent/frame_io.h"

namespace hutch::agent {

namespace {

// Answers that need the agent to do work first (a listing, a recursive delete, a move across
// directories) get this long; streams wait per frame.
constexpr int64_t kAnswerTimeoutMs = 120000;

}  // namespace

Result<FileCall> FileCall::Start(const Transport& transport, MessageType type,
                                 const FileRequest& request) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(transport));
  FileCall call(std::move(client));
  RETURN_IF_ERROR(call.Send(type, EncodeFileRequest(request)));
  return call;
}

Status FileCall::Send(MessageType type, std::string_view payload) {
  std::string error;
  if (WriteFrame(client_.fd_.get(), type, stream_, payload, MonotonicMs() + kAnswerTimeoutMs,
                 &error) != IoStatus::kOk) {
    return client_.Failure("does not answer", error);
  }
  return Status::Ok();
}

Status FileCall::Unexpected(const Frame& frame, std::string_view want) const {
  return Internal(fmt::format("agent of {} answered a file operation with {}, not {}",
                              client_.session_id_, MessageTypeName(frame.type), want));
}

Result<std::optional<Frame>> FileCall::Next(int64_t timeout_ms, UniqueFd* fd) {
  int64_t deadline = timeout_ms < 0 ? kNoDeadline : MonotonicMs() + timeout_ms;
  for (;;) {
    Frame frame;
    std::string error;
    int received = -1;
    IoStatus st = fd ? ReadFrameWithFd(client_.fd_.get(), &client_.parser_, &frame, &received,
                                       deadline, &error)
                     : ReadFrame(client_.fd_.get(), &client_.parser_, &frame, deadline, &error);
    UniqueFd got(received);
    if (st == IoStatus::kTimeout) return std::optional<Frame>();
    if (st != IoStatus::kOk) return client_.Failure("does not answer", error);
    if (frame.stream_id != stream_ && frame.stream_id != 0) continue;
    if (frame.type == MessageType::kFileError) {
      Status status;
      if (!DecodeFileError(frame.payload, &status, &error)) return client_.Failure("sent", error);
      return status;
    }
    if (frame.type == MessageType::kError) {
      // An agent older than the file operations answers Error{unsupported}.
      ErrorMessage em;
      if (!DecodeError(frame.payload, &em, &error)) return client_.Failure("sent", error);
      return StatusFromAgentError(em, client_.session_id_);
    }
    if (fd && got) *fd = std::move(got);
    return std::optional<Frame>(std::move(frame));
  }
}

Result<Frame> FileCall::Expect(MessageType want, int64_t timeout_ms, UniqueFd* fd) {
  ASSIGN_OR_RETURN(std::optional<Frame> frame, Next(timeout_ms, fd));
  if (!frame) {
    return client_.Failure("does not answer",
                           fmt::format("no {} within {} ms", MessageTypeName(want), timeout_ms));
  }
  if (frame->type != want) return Unexpected(*frame, MessageTypeName(want));
  return std::move(*frame);
}

Status FileCall::SendData(std::string_view data) {
  pollfd p{client_.fd_.get(), POLLIN, 0};
  if (poll(&p, 1, 0) > 0) {
    // The agent says something before the data ended: only an error can come now.
    ASSIGN_OR_RETURN(std::optional<Frame> frame, Next(kAnswerTimeoutMs));
    if (frame) return Unexpected(*frame, "FileError");
  }
  do {
    std::string_view piece = data.substr(0, kFileChunk);
    RETURN_IF_ERROR(Send(MessageType::kFileData, piece));
    data.remove_prefix(piece.size());
  } while (!data.empty());
  return Status::Ok();
}

void FileCall::Cancel() { shutdown(client_.fd_.get(), SHUT_RDWR); }

void FileDataReader::Cancel() {
  call_->Cancel();
  if (cancel_) {
    uint64_t one = 1;
    (void)!write(cancel_.get(), &one, sizeof one);
  }
}

Result<std::optional<std::string>> FileDataReader::NextFromPipe() {
  // Two chunks at most: the caller joins pieces into bigger ones anyway, and a read returns
  // what the pipe holds (one chunk, as the agent sizes it).
  std::string piece(2 * kFileChunk, '\0');
  for (;;) {
    pollfd p[2] = {{pipe_.get(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll the archive pipe", errno);
    }
    if (p[1].revents) return Unavailable("the archive was cancelled");
    ssize_t n = read(pipe_.get(), piece.data(), piece.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ErrnoError("read the archive pipe", errno);
    if (n > 0) {
      piece.resize(static_cast<size_t>(n));
      return std::optional<std::string>(std::move(piece));
    }
    // The agent closed the pipe: the connection says whether the tar was complete.
    pipe_.Reset();
    ASSIGN_OR_RETURN(Frame frame, call_->Expect(MessageType::kFileData, kAnswerTimeoutMs));
    if (!frame.payload.empty())
      return Internal(
          fmt::format("agent of {} sent archive data after closing its pipe", call_->session_id()));
    done_ = true;
    return std::optional<std::string>();
  }
}

Result<std::optional<std::string>> FileDataReader::Next() {
  if (done_) return std::optional<std::string>();
  if (pipe_) return NextFromPipe();
  ASSIGN_OR_RETURN(Frame frame, call_->Expect(MessageType::kFileData, kAnswerTimeoutMs));
  if (frame.payload.empty()) {
    done_ = true;
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(frame.payload));
}

namespace {

Result<FileEntryMessage> EntryAnswer(FileCall& call) {
  ASSIGN_OR_RETURN(Frame frame, call.Expect(MessageType::kFileEntry, kAnswerTimeoutMs));
  FileEntryMessage m;
  std::string error;
  if (!DecodeFileEntry(frame.payload, &m, &error))
    return Internal(fmt::format("agent of {} sent {}", call.session_id(), error));
  return m;
}

// Streams what `read` yields as FileData, then the end marker.
Status StreamData(FileCall& call, const FileReadFn& read) {
  std::unique_ptr<char[]> buf(new char[kFileChunk]);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, read(buf.get(), kFileChunk));
    if (n == 0) break;
    RETURN_IF_ERROR(call.SendData(std::string_view(buf.get(), n)));
  }
  return call.SendData({});
}

}  // namespace

Result<files::Entry> FileStat(const Transport& t, const std::string& path) {
  FileRequest req;
  req.path = path;
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileStat, req));
  ASSIGN_OR_RETURN(FileEntryMessage m, EntryAnswer(call));
  return std::move(m.entry);
}

Result<files::Listing> FileList(const Transport& t, const std::string& path, uint32_t depth,
                                uint64_t limit) {
  FileRequest req;
  req.path = path;
  req.depth = depth;
  req.limit = limit;
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileList, req));
  ASSIGN_OR_RETURN(Frame frame, call.Expect(MessageType::kFileListing, kAnswerTimeoutMs));
  files::Listing listing;
  std::string error;
  if (!DecodeFileListing(frame.payload, &listing, &error))
    return Internal(fmt::format("agent of {} sent {}", call.session_id(), error));
  return listing;
}

Result<FileDownload> FileOpenRead(const Transport& t, const std::string& path) {
  FileRequest req;
  req.path = path;
  req.pass_fd = t.CarriesFds();
  ASSIGN_OR_RETURN(FileCall started, FileCall::Start(t, MessageType::kFileRead, req));
  auto call = std::make_unique<FileCall>(std::move(started));
  UniqueFd fd;
  ASSIGN_OR_RETURN(Frame frame, call->Expect(MessageType::kFileOpened, kAnswerTimeoutMs, &fd));
  FileOpened opened;
  std::string error;
  if (!DecodeFileOpened(frame.payload, &opened, &error))
    return Internal(fmt::format("agent of {} sent {}", call->session_id(), error));
  FileDownload d;
  d.directory = opened.directory;
  d.size = opened.size;
  if (opened.directory) return d;
  if (opened.fd_attached) {
    // What the agent passed must be what the protocol allows: a regular file, read only. Any
    // other fd (a directory it could walk from, a socket or fifo that blocks) is refused.
    struct stat st;
    if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        (fcntl(fd.get(), F_GETFL) & O_ACCMODE) != O_RDONLY) {
      return Internal(
          fmt::format("agent of {} passed no regular file for {}", call->session_id(), path));
    }
    d.fd = std::move(fd);
    return d;
  }
  d.call = std::move(call);
  return d;
}

Result<std::unique_ptr<FileDataReader>> FileReadRange(FileDownload download, uint64_t offset,
                                                      uint64_t length) {
  if (!download.call) return Internal("FileReadRange of a download without a stream");
  RETURN_IF_ERROR(
      download.call->Send(MessageType::kFileRange, EncodeFileRange(FileRange{offset, length})));
  return std::make_unique<FileDataReader>(std::move(download.call));
}

namespace {

// A failed write(2) to a file of the sandbox, as the files API reports it.
Status WriteError(const std::string& path, int err) {
  std::string message = fmt::format("write {}: {}", path, strerror(err));
  if (err == ENOSPC || err == EDQUOT) return Status(Code::kInsufficientStorage, message);
  if (err == EFBIG) return PayloadTooLarge(message);
  return Internal(message);
}

// Writes what `read` yields into `fd` (the temporary file the agent passed).
Status WriteToFd(int fd, const std::string& path, const FileReadFn& read) {
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, read(buf.get(), kChunk));
    if (n == 0) return Status::Ok();
    for (size_t done = 0; done < n;) {
      ssize_t w = write(fd, buf.get() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return WriteError(path, errno);
      done += static_cast<size_t>(w);
    }
  }
}

}  // namespace

Result<FileEntryMessage> FileWrite(const Transport& t, const FileRequest& request,
                                   const FileReadFn& read) {
  FileRequest req = request;
  req.pass_fd = t.CarriesFds();
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileWrite, req));
  if (req.pass_fd) {
    UniqueFd fd;
    ASSIGN_OR_RETURN(Frame frame, call.Expect(MessageType::kFileOpened, kAnswerTimeoutMs, &fd));
    FileOpened opened;
    std::string error;
    if (!DecodeFileOpened(frame.payload, &opened, &error))
      return Internal(fmt::format("agent of {} sent {}", call.session_id(), error));
    if (opened.fd_attached) {
      // Only a regular file opened for writing: anything else is not what the protocol allows.
      struct stat st;
      if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
          (fcntl(fd.get(), F_GETFL) & O_ACCMODE) != O_WRONLY) {
        return Internal(fmt::format("agent of {} passed no file to write {} to", call.session_id(),
                                    request.path));
      }
      if (Status st = WriteToFd(fd.get(), request.path, read); !st.ok()) {
        // Anything but the end marker makes the agent drop the temporary file; its answer
        // (a FileError) comes after it did, so the target is as it was when we return.
        fd.Reset();
        if (call.Send(MessageType::kFileError, EncodeFileError(st)).ok())
          (void)call.Next(kAnswerTimeoutMs);
        return st;
      }
      RETURN_IF_ERROR(call.Send(MessageType::kFileData, {}));
      return EntryAnswer(call);
    }
  }
  RETURN_IF_ERROR(StreamData(call, read));
  return EntryAnswer(call);
}

Status FileRemove(const Transport& t, const std::string& path, bool recursive) {
  FileRequest req;
  req.path = path;
  req.recursive = recursive;
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileRemove, req));
  return EntryAnswer(call).status();
}

Result<files::Entry> FileMkdir(const Transport& t, const FileRequest& request) {
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileMkdir, request));
  ASSIGN_OR_RETURN(FileEntryMessage m, EntryAnswer(call));
  return std::move(m.entry);
}

Result<files::Entry> FileMove(const Transport& t, const std::string& from, const std::string& to,
                              bool overwrite) {
  FileRequest req;
  req.path = from;
  req.to = to;
  req.overwrite = overwrite;
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileMove, req));
  ASSIGN_OR_RETURN(FileEntryMessage m, EntryAnswer(call));
  return std::move(m.entry);
}

Result<std::unique_ptr<FileDataReader>> FileArchive(const Transport& t, const std::string& path) {
  FileRequest req;
  req.path = path;
  req.pass_fd = t.CarriesFds();
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileArchive, req));
  auto owned = std::make_unique<FileCall>(std::move(call));
  UniqueFd pipe;
  ASSIGN_OR_RETURN(Frame frame, owned->Expect(MessageType::kFileOpened, kAnswerTimeoutMs, &pipe));
  FileOpened opened;
  std::string error;
  if (!DecodeFileOpened(frame.payload, &opened, &error))
    return Internal(fmt::format("agent of {} sent {}", owned->session_id(), error));
  if (!opened.fd_attached) return std::make_unique<FileDataReader>(std::move(owned));
  // Only the read end of a pipe is what an archive may hand over: a regular file, a
  // directory or a socket is refused.
  struct stat st;
  if (!pipe || fstat(pipe.get(), &st) != 0 || !S_ISFIFO(st.st_mode) ||
      (fcntl(pipe.get(), F_GETFL) & O_ACCMODE) != O_RDONLY)
    return Internal(
        fmt::format("agent of {} passed an fd that is not an archive's pipe", owned->session_id()));
  UniqueFd cancel(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel) return ErrnoError("eventfd", errno);
  return std::make_unique<FileDataReader>(std::move(owned), std::move(pipe), std::move(cancel));
}

Result<std::unique_ptr<FileExtractUpload>> FileExtract(const Transport& t,
                                                       const FileRequest& request) {
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileExtract, request));
  return std::make_unique<FileExtractUpload>(std::make_unique<FileCall>(std::move(call)));
}

Status FileExtractUpload::Write(std::string_view tar_bytes) {
  if (tar_bytes.empty()) return Status::Ok();  // an empty FileData would end the archive
  return call_->SendData(tar_bytes);
}

Result<FileExtracted> FileExtractUpload::Finish() {
  RETURN_IF_ERROR(call_->SendData({}));
  ASSIGN_OR_RETURN(Frame frame, call_->Expect(MessageType::kFileExtracted, kAnswerTimeoutMs));
  FileExtracted m;
  std::string error;
  if (!DecodeFileExtracted(frame.payload, &m, &error))
    return Internal(fmt::format("agent of {} sent {}", call_->session_id(), error));
  return m;
}

Result<std::vector<files::WatchEvent>> FileWatchStream::Wait(int64_t timeout_ms) {
  if (gone_) return std::vector<files::WatchEvent>();
  ASSIGN_OR_RETURN(std::optional<Frame> frame, call_->Next(timeout_ms));
  if (!frame) return std::vector<files::WatchEvent>();
  FileEvents m;
  std::string error;
  if (frame->type != MessageType::kFileEvents || !DecodeFileEvents(frame->payload, &m, &error))
    return Internal(fmt::format("agent of {} sent {} in a watch {}", call_->session_id(),
                                MessageTypeName(frame->type), error));
  gone_ = m.gone;
  return std::move(m.events);
}

Result<std::unique_ptr<FileWatchStream>> FileWatch(const Transport& t, const std::string& path,
                                                   bool recursive) {
  FileRequest req;
  req.path = path;
  req.recursive = recursive;
  ASSIGN_OR_RETURN(FileCall call, FileCall::Start(t, MessageType::kFileWatch, req));
  auto owned = std::make_unique<FileCall>(std::move(call));
  // The first FileEvents says the watch is in place.
  RETURN_IF_ERROR(owned->Expect(MessageType::kFileEvents, kAnswerTimeoutMs).status());
  return std::make_unique<FileWatchStream>(std::move(owned));
}

}  // namespace hutch::agent
