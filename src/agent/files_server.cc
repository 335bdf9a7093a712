#include "agent/files_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "agent/files_protocol.h"
#include "agent/frame_io.h"
#include "files/archive.h"
#include "files/ops.h"
#include "files/resolve.h"
#include "files/tar.h"
#include "files/watch.h"

namespace hutch::agent {

namespace {

// How long one frame may take to go out or come in before the client counts as gone: a
// client that reads a download slowly still takes a chunk in this time.
constexpr int64_t kFrameTimeoutMs = 120000;
// After an error while the client streams data: how long to keep reading what it already sent.
constexpr int64_t kDrainTimeoutMs = 30000;
// How often a watch looks whether its client is still there.
constexpr int kWatchPollMs = 1000;

// One file operation on its connection.
class FileOperation {
 public:
  FileOperation(int fd, FrameParser* parser, uint32_t stream)
      : fd_(fd), parser_(parser), stream_(stream) {}

  void Serve(MessageType type, const FileRequest& req);

 private:
  bool Send(MessageType type, std::string_view payload) {
    std::string error;
    return WriteFrame(fd_, type, stream_, payload, MonotonicMs() + kFrameTimeoutMs, &error) ==
           IoStatus::kOk;
  }
  void Fail(const Status& status) { Send(MessageType::kFileError, EncodeFileError(status)); }
  // The next frame the client sends on our stream (a negative timeout: however long it takes).
  Result<Frame> Receive(int64_t timeout_ms);
  // Reads the client's FileData up to the end marker: n bytes into buf, 0 at the end.
  Result<size_t> ReadData(char* buf, size_t n);
  // After an error while the client was still sending data: drop the rest so that the error
  // reaches the client before the connection closes.
  void Drain();

  Status Read(const files::Root& root, const FileRequest& req);
  Status Write(const files::Root& root, const FileRequest& req);
  Status Archive(const files::Root& root, const FileRequest& req);
  Status ArchiveIntoPipe(files::TreeTar& tar);
  Status Extract(const files::Root& root, const FileRequest& req);
  Status Watch(const files::Root& root, const FileRequest& req);
  Status SendEntry(const files::Root& root, std::string_view path, bool created = false);

  int fd_;
  FrameParser* parser_;
  uint32_t stream_;
  std::string pending_;  // FileData received, not yet taken by ReadData
  size_t pending_pos_ = 0;
  bool data_ended_ = false;
  bool receives_data_ = false;  // the operation reads FileData from the client
};

Result<Frame> FileOperation::Receive(int64_t timeout_ms) {
  for (;;) {
    Frame frame;
    std::string error;
    IoStatus st = ReadFrame(fd_, parser_, &frame,
                            timeout_ms < 0 ? kNoDeadline : MonotonicMs() + timeout_ms, &error);
    if (st != IoStatus::kOk) return Unavailable("the client went away: " + error);
    if (frame.stream_id != stream_) continue;
    return frame;
  }
}

Result<size_t> FileOperation::ReadData(char* buf, size_t n) {
  while (pending_pos_ >= pending_.size()) {
    if (data_ended_) return size_t{0};
    ASSIGN_OR_RETURN(Frame frame, Receive(kFrameTimeoutMs));
    if (frame.type != MessageType::kFileData)
      return InvalidArgument("expected FileData, got " + MessageTypeName(frame.type));
    pending_ = std::move(frame.payload);
    pending_pos_ = 0;
    if (pending_.empty()) data_ended_ = true;
  }
  size_t take = std::min(n, pending_.size() - pending_pos_);
  std::copy_n(pending_.data() + pending_pos_, take, buf);
  pending_pos_ += take;
  return take;
}

void FileOperation::Drain() {
  int64_t deadline = MonotonicMs() + kDrainTimeoutMs;
  while (!data_ended_ && MonotonicMs() < deadline) {
    auto frame = Receive(std::max<int64_t>(1, deadline - MonotonicMs()));
    if (!frame.ok()) return;
    if (frame->type == MessageType::kFileData && frame->payload.empty()) data_ended_ = true;
  }
}

Status FileOperation::SendEntry(const files::Root& root, std::string_view path, bool created) {
  FileEntryMessage m;
  auto e = files::Stat(root, path);
  // Done, but gone again already (a concurrent delete): the path is all there is to say.
  if (e.ok()) {
    m.entry = std::move(*e);
  } else {
    m.entry.path = files::ShownPath(path);
  }
  m.created = created;
  Send(MessageType::kFileEntry, EncodeFileEntry(m));
  return Status::Ok();
}

bool g_fd_passing = true;  // set once before the first connection

// Whether fds may go over this connection: only a unix socket carries them.
bool CarriesFds(int fd) {
  if (!g_fd_passing) return false;
  int domain = 0;
  socklen_t len = sizeof domain;
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

Status FileOperation::Read(const files::Root& root, const FileRequest& req) {
  RETURN_IF_ERROR(files::CheckPath(req.path));
  // A directory (a final symlink followed, as ls does) is listed by the client; anything else
  // is read.
  ASSIGN_OR_RETURN(UniqueFd probe, files::OpenInRoot(root.fd.get(), req.path, O_PATH));
  struct stat st;
  if (fstat(probe.get(), &st) != 0)
    return files::FsError("stat", files::ShownPath(req.path), errno);
  FileOpened opened;
  if (S_ISDIR(st.st_mode)) {
    opened.directory = true;
    Send(MessageType::kFileOpened, EncodeFileOpened(opened));
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(files::OpenedFile f, files::OpenForRead(root, req.path));
  opened.size = f.size;
  if (req.pass_fd && CarriesFds(fd_)) {
    opened.fd_attached = true;
    std::string error;
    WriteFrameWithFd(fd_, MessageType::kFileOpened, stream_, EncodeFileOpened(opened), f.fd.get(),
                     MonotonicMs() + kFrameTimeoutMs, &error);
    return Status::Ok();
  }
  if (!Send(MessageType::kFileOpened, EncodeFileOpened(opened))) return Status::Ok();
  // The client has chosen its range (a Range header applies to the size it just learnt).
  ASSIGN_OR_RETURN(Frame frame, Receive(kFrameTimeoutMs));
  FileRange range;
  std::string error;
  if (frame.type != MessageType::kFileRange || !DecodeFileRange(frame.payload, &range, &error))
    return InvalidArgument("expected FileRange: " + error);
  std::unique_ptr<char[]> buf(new char[kFileChunk]);
  uint64_t offset = range.offset, left = range.length;
  while (left > 0) {
    ssize_t n = pread(f.fd.get(), buf.get(), std::min<uint64_t>(left, kFileChunk),
                      static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return files::FsError("read", files::ShownPath(req.path), errno);
    if (n == 0) break;  // the file shrank: the client sees a short body
    if (!Send(MessageType::kFileData, std::string_view(buf.get(), static_cast<size_t>(n))))
      return Status::Ok();
    offset += static_cast<uint64_t>(n);
    left -= static_cast<uint64_t>(n);
  }
  Send(MessageType::kFileData, {});
  return Status::Ok();
}

Status FileOperation::Write(const files::Root& root, const FileRequest& req) {
  RETURN_IF_ERROR(files::CheckPath(req.path));
  files::WriteOptions opts;
  if (req.has_mode) opts.mode = req.mode;
  opts.parents = req.parents;
  ASSIGN_OR_RETURN(files::PendingWrite w, files::BeginWrite(root, req.path, opts));
  if (req.pass_fd) {
    // The client may write the temporary file itself: an fd of a regular file we just created,
    // nothing it could walk from. It says it is done with an empty FileData.
    FileOpened opened;
    opened.fd_attached = CarriesFds(fd_);
    std::string error;
    IoStatus st =
        opened.fd_attached
            ? WriteFrameWithFd(fd_, MessageType::kFileOpened, stream_, EncodeFileOpened(opened),
                               w.fd(), MonotonicMs() + kFrameTimeoutMs, &error)
            : WriteFrame(fd_, MessageType::kFileOpened, stream_, EncodeFileOpened(opened),
                         MonotonicMs() + kFrameTimeoutMs, &error);
    if (st != IoStatus::kOk) return Status::Ok();  // the client is gone; w removes the file
    if (opened.fd_attached) {
      // However long the client's own upload takes: a client that goes away closes the socket.
      ASSIGN_OR_RETURN(Frame frame, Receive(-1));
      if (frame.type != MessageType::kFileData || !frame.payload.empty())
        return InvalidArgument("expected the end of the upload, got " +
                               MessageTypeName(frame.type));
      data_ended_ = true;
      ASSIGN_OR_RETURN(files::WriteResult done, w.Commit());
      return SendEntry(root, req.path, done.created);
    }
  }
  std::unique_ptr<char[]> buf(new char[kFileChunk]);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, ReadData(buf.get(), kFileChunk));
    if (n == 0) break;
    RETURN_IF_ERROR(w.Append(std::string_view(buf.get(), n)));
  }
  ASSIGN_OR_RETURN(files::WriteResult done, w.Commit());
  return SendEntry(root, req.path, done.created);
}

Status FileOperation::Archive(const files::Root& root, const FileRequest& req) {
  RETURN_IF_ERROR(files::CheckPath(req.path));
  ASSIGN_OR_RETURN(std::unique_ptr<files::TreeTar> tar, files::TreeTar::Open(root, req.path));
  if (req.pass_fd && CarriesFds(fd_)) return ArchiveIntoPipe(*tar);
  if (!Send(MessageType::kFileOpened, EncodeFileOpened(FileOpened{}))) return Status::Ok();
  for (;;) {
    // An error here comes after data went out: the client ends the archive without its trailer.
    ASSIGN_OR_RETURN(std::optional<std::string> piece, tar->Next(kFileChunk));
    if (!piece) break;
    if (!Send(MessageType::kFileData, *piece)) return Status::Ok();
  }
  Send(MessageType::kFileData, {});
  return Status::Ok();
}

// The tar goes into a pipe whose read end the client got with FileOpened: the bytes are copied
// once into the pipe and once out of it, instead of being framed, sent through the socket and
// parsed out of frames again (an archive of 10,000 small files took 1.4x the server's own tar
// that way; docs/benchmarks.md). The pipe is closed before the end marker or the error goes
// out on the connection, so the client, having read the pipe to its end, learns there whether
// what it read was complete.
Status FileOperation::ArchiveIntoPipe(files::TreeTar& tar) {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd r(ends[0]), w(ends[1]);
  // A chunk fits, so a piece costs one write; more would be kernel memory the sandbox is
  // charged for while the server is slow. (A failure leaves the default 64 KiB.)
  (void)fcntl(w.get(), F_SETPIPE_SZ, static_cast<int>(kFileChunk));
  FileOpened opened;
  opened.fd_attached = true;
  std::string error;
  if (WriteFrameWithFd(fd_, MessageType::kFileOpened, stream_, EncodeFileOpened(opened), r.get(),
                       MonotonicMs() + kFrameTimeoutMs, &error) != IoStatus::kOk)
    return Status::Ok();  // the client is gone
  r.Reset();
  for (;;) {
    auto piece = tar.Next(kFileChunk);
    if (!piece.ok()) {
      w.Reset();  // first: the client reads the pipe to its end before it looks for the error
      return piece.status();
    }
    if (!*piece) break;
    std::string_view left = **piece;
    while (!left.empty()) {
      // Blocking: a slow reader holds the agent here, as a full socket does. The client's end
      // closed (it went away) answers EPIPE; SIGPIPE is ignored.
      ssize_t n = write(w.get(), left.data(), left.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::Ok();
      left.remove_prefix(static_cast<size_t>(n));
    }
  }
  w.Reset();
  Send(MessageType::kFileData, {});
  return Status::Ok();
}

Status FileOperation::Extract(const files::Root& root, const FileRequest& req) {
  RETURN_IF_ERROR(files::CheckPath(req.path));
  files::ExtractLimits limits;
  if (req.max_bytes > 0) limits.max_bytes = std::min(req.max_bytes, limits.max_bytes);
  if (req.max_entries > 0) limits.max_entries = std::min(req.max_entries, limits.max_entries);
  ASSIGN_OR_RETURN(UniqueFd dest, files::OpenDir(root, req.path, req.parents));
  files::Extractor ex(root, std::move(dest), files::ShownPath(req.path), limits);
  files::TarReader reader(ex);
  std::unique_ptr<char[]> buf(new char[kFileChunk]);
  while (!reader.ended()) {
    ASSIGN_OR_RETURN(size_t n, ReadData(buf.get(), kFileChunk));
    if (n == 0) break;
    RETURN_IF_ERROR(reader.Feed(std::string_view(buf.get(), n)));
  }
  // What follows the archive's end (padding to a record, as tar writes) is read and dropped.
  Drain();
  if (!reader.ended()) RETURN_IF_ERROR(reader.Finish());
  RETURN_IF_ERROR(ex.Finish());
  Send(MessageType::kFileExtracted,
       EncodeFileExtracted(FileExtracted{ex.entries(), ex.files(), ex.bytes()}));
  return Status::Ok();
}

Status FileOperation::Watch(const files::Root& root, const FileRequest& req) {
  RETURN_IF_ERROR(files::CheckPath(req.path));
  ASSIGN_OR_RETURN(std::unique_ptr<files::Watcher> watcher,
                   files::Watcher::Open(root, req.path, req.recursive));
  if (!Send(MessageType::kFileEvents, EncodeFileEvents(FileEvents{}))) return Status::Ok();
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<files::WatchEvent> events, watcher->Wait(kWatchPollMs));
    if (!events.empty() || watcher->gone()) {
      FileEvents m{std::move(events), watcher->gone()};
      if (!Send(MessageType::kFileEvents, EncodeFileEvents(m)) || m.gone) return Status::Ok();
    }
    // The client says nothing after its request: anything readable is its close.
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) != 0) return Status::Ok();
  }
}

void FileOperation::Serve(MessageType type, const FileRequest& req) {
  files::Root root;
  root.fd.Reset(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.fd) {
    Fail(files::FsError("open", "/", errno));
    return;
  }
  receives_data_ = type == MessageType::kFileWrite || type == MessageType::kFileExtract;
  Status st;
  switch (type) {
    case MessageType::kFileStat: {
      auto e = files::Stat(root, req.path);
      if (e.ok()) Send(MessageType::kFileEntry, EncodeFileEntry(FileEntryMessage{*e, false}));
      st = e.status();
      break;
    }
    case MessageType::kFileList: {
      auto l = files::List(root, req.path, static_cast<int>(std::min<uint32_t>(req.depth, 1024)),
                           static_cast<size_t>(req.limit));
      if (l.ok()) Send(MessageType::kFileListing, EncodeFileListing(*l));
      st = l.status();
      break;
    }
    case MessageType::kFileRead:
      st = Read(root, req);
      break;
    case MessageType::kFileWrite:
      st = Write(root, req);
      break;
    case MessageType::kFileRemove:
      st = files::Remove(root, req.path, req.recursive);
      if (st.ok()) {
        FileEntryMessage m;
        m.entry.path = files::ShownPath(req.path);
        Send(MessageType::kFileEntry, EncodeFileEntry(m));
      }
      break;
    case MessageType::kFileMkdir:
      st = files::MakeDir(root, req.path, req.has_mode ? req.mode : 0755, req.parents);
      if (st.ok()) st = SendEntry(root, req.path);
      break;
    case MessageType::kFileMove:
      st = files::Move(root, req.path, req.to, req.overwrite);
      if (st.ok()) st = SendEntry(root, req.to);
      break;
    case MessageType::kFileArchive:
      st = Archive(root, req);
      break;
    case MessageType::kFileExtract:
      st = Extract(root, req);
      break;
    case MessageType::kFileWatch:
      st = Watch(root, req);
      break;
    default:
      st = InvalidArgument("not a file operation: " + MessageTypeName(type));
      break;
  }
  if (st.ok()) return;
  if (receives_data_) {
    // Said first, so that a client looking for it between frames stops sending soon.
    Fail(st);
    Drain();
    return;
  }
  Fail(st);
}

}  // namespace

void ServeFileRequest(int fd, FrameParser* parser, const Frame& request) {
  FileRequest req;
  std::string error;
  FileOperation op(fd, parser, request.stream_id);
  if (!DecodeFileRequest(request.payload, &req, &error)) {
    std::string ignored;
    WriteFrame(fd, MessageType::kFileError, request.stream_id,
               EncodeFileError(InvalidArgument(error)), MonotonicMs() + kFrameTimeoutMs, &ignored);
    return;
  }
  op.Serve(request.type, req);
}

void AllowFdPassing(bool allowed) { g_fd_passing = allowed; }

}  // namespace hutch::agent
