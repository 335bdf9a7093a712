// The agent protocol's file operations (message types 64 and up in protocol.h): the files API of
// a session runs in its agent, which resolves every path inside its own root with src/files
// (RESOLVE_IN_ROOT, resolve.h) as the sandbox's root user.
//
// Every file operation takes a connection of its own: the client sends one request (a
// FileRequest, on stream 1 by convention) after the Hello exchange, the agent serves it to the
// end on that connection's thread, blocking, and then closes the connection. Flow control is
// the socket's own: both sides write blocking, so a slow reader stops the writer without
// anyone's memory growing (the agent holds one chunk of kFileChunk bytes per operation).
//
//   FileStat   {path}                          → FileEntry (a final symlink is reported)
//   FileList   {path, depth, limit}            → FileListing
//   FileRead   {path, pass_fd}                 → FileOpened{directory} — the client lists it
//                                              → FileOpened{size, fd_attached} + the file's fd
//                                                (SCM_RIGHTS, unix sockets only): done
//                                              → FileOpened{size}; client: FileRange{offset,
//                                                length} → FileData… FileData{}
//   FileWrite  {path, mode?, parents, pass_fd}
//              with pass_fd: → FileOpened{fd_attached} + the fd of the temporary file the
//                agent made beside the target (O_WRONLY; unix sockets only); the client
//                writes it and sends FileData{} → FileEntry{created} (anything else instead of
//                FileData{}: the agent removes the file, then answers FileError)
//              without (or no fd attached): FileData…, FileData{} → FileEntry{created}
//   FileRemove {path, recursive}               → FileEntry (path only)
//   FileMkdir  {path, mode?, parents}          → FileEntry
//   FileMove   {path, to, overwrite}           → FileEntry of `to`
//   FileArchive {path, pass_fd}                → FileOpened, FileData… (an uncompressed tar),
//                                                FileData{}
//              with pass_fd (unix sockets only): → FileOpened{fd_attached} + the read end of a
//                pipe the agent writes the tar into; once the tar is complete, or an error cut
//                it short, the agent closes the pipe and then sends FileData{} (complete) or
//                FileError on the connection
//   FileExtract {path, parents, max_bytes, max_entries}, FileData… (an uncompressed tar),
//              FileData{}                      → FileExtracted
//   FileWatch  {path, recursive}               → FileEvents{} (the watch is in place), then
//                                                FileEvents per batch of changes; one with
//                                                `gone` ends it. The client closes to stop.
//
// Any step may instead answer FileError (the files API's error: its code and message), after
// which the agent closes the connection. While the client streams FileData to the agent, it
// looks for a FileError before each frame and stops sending when one came; the agent reads
// and drops what was already in flight until the end marker, so the error is not lost to a
// connection reset.
//
// The fd of FileRead is an fd of an already resolved regular file the agent opened O_RDONLY
// inside the sandbox, that of FileWrite one of a new regular file it created O_WRONLY, that of
// FileArchive the read end of a pipe: the server may only read the first and the last and
// write the second (docs/architecture.md, "File descriptors
// over the local transport"), and checks that it got what the protocol allows. A transport
// that cannot carry fds asks without pass_fd, and the agent never attaches one to a socket that
// is not AF_UNIX.
//
// Standard library only (the struct types come from files/ headers, no code): linked into the
// static agent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "files/ops.h"
#include "files/watch.h"

namespace hutch::agent {

// The largest FileData payload a sender produces, and the agent's buffer per operation.
inline constexpr size_t kFileChunk = 256 * 1024;

struct FileRequest {
  std::string path;
  std::string to;  // FileMove
  bool has_mode = false;
  uint32_t mode = 0;  // 07777
  bool parents = false;
  bool recursive = false;  // FileRemove, FileWatch
  bool overwrite = false;  // FileMove
  bool pass_fd = false;    // FileRead, FileWrite, FileArchive: the transport carries fds
  uint32_t depth = 1;      // FileList
  uint64_t limit = 0;      // FileList: most entries
  uint64_t max_bytes = 0;  // FileExtract
  uint64_t max_entries = 0;
};

struct FileOpened {
  bool directory = false;
  uint64_t size = 0;
  bool fd_attached = false;
};

struct FileRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct FileEntryMessage {
  files::Entry entry;
  bool created = false;  // FileWrite: no file was there before
};

struct FileExtracted {
  uint64_t entries = 0;
  uint64_t files = 0;
  uint64_t bytes = 0;
};

struct FileEvents {
  std::vector<files::WatchEvent> events;
  bool gone = false;  // the watched directory was deleted or moved away: the last frame
};

std::string EncodeFileRequest(const FileRequest& m);
std::string EncodeFileOpened(const FileOpened& m);
std::string EncodeFileRange(const FileRange& m);
std::string EncodeFileEntry(const FileEntryMessage& m);
std::string EncodeFileListing(const files::Listing& m);
std::string EncodeFileExtracted(const FileExtracted& m);
std::string EncodeFileEvents(const FileEvents& m);
// A files API error as FileError: its code (invalid_argument … internal) and message.
std::string EncodeFileError(const Status& status);

// Each returns false and sets *error on malformed input, as protocol.h's decoders do.
bool DecodeFileRequest(std::string_view payload, FileRequest* out, std::string* error);
bool DecodeFileOpened(std::string_view payload, FileOpened* out, std::string* error);
bool DecodeFileRange(std::string_view payload, FileRange* out, std::string* error);
bool DecodeFileEntry(std::string_view payload, FileEntryMessage* out, std::string* error);
bool DecodeFileListing(std::string_view payload, files::Listing* out, std::string* error);
bool DecodeFileExtracted(std::string_view payload, FileExtracted* out, std::string* error);
bool DecodeFileEvents(std::string_view payload, FileEvents* out, std::string* error);
bool DecodeFileError(std::string_view payload, Status* out, std::string* error);

// Whether `type` opens a file operation (FileStat … FileWatch).
bool IsFileRequest(uint8_t type);

}  // namespace hutch::agent
