// The agent protocol: how the server (or any host-side client) talks to hutch-agent.
//
// A connection carries frames:
//
//   [u32 payload length][u8 type][u32 stream id][payload]      (little-endian, 9-byte header)
//
// Stream 0 is the connection itself: the first frame each side sends is a Hello on stream 0
// carrying kProtocolVersion, and an Error on stream 0 ends the connection. Every other stream
// is one operation, opened by the client with a request frame on a stream id it has not used
// on this connection; the agent answers on the same id. Today the only operation is a
// run-to-completion exec (ExecRequest → ExecResult | Error), and the streaming operations of
// stream_protocol.h (streaming exec with PTYs, background processes), which carry credit-based
// flow control per stream, the TCP relay (TcpConnect) that the port proxy rides on, and the
// file operations of files_protocol.h, each of which takes a connection of its own. A peer
// answers a type it does not know with Error{kUnsupported} on that stream, so newer clients can
// probe older agents.
//
// Message payloads use the encoding of wire.h. Decoders check every length against the bytes
// present and reject trailing bytes; a malformed frame yields an error, never a crash.
//
// Depends on the C++ standard library only: it is linked into the static agent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/exec.h"

namespace hutch::agent {

// Bumped on any incompatible change of framing or of an existing message.
inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderSize = 9;
// Larger frames are refused before their payload is read.
inline constexpr uint32_t kMaxFramePayload = 64u << 20;
// An exec result carries both streams in one frame; each is capped so the frame fits.
inline constexpr int64_t kMaxExecOutputBytes = 16 << 20;

// Wire values: never renumber, only add.
enum class MessageType : uint8_t {
  kHello = 1,  // stream 0, each side's first frame
  kError = 2,  // answers a request on its stream; on stream 0 it ends the connection
  kExecRequest = 16,
  kExecResult = 17,
  // Streaming operations (stream_protocol.h); each lives on its own stream id.
  kStreamExec = 18,     // client: start a command whose output streams
  kStarted = 19,        // agent: the command runs (ProcessInfo)
  kStdin = 20,          // client: bytes for stdin; an empty payload closes stdin
  kStdout = 21,         // agent: bytes the command wrote (a PTY's output comes here too)
  kStderr = 22,         // agent
  kWindow = 23,         // either: more credit for the data the other side may send (u32)
  kResize = 24,         // client: a PTY's new size
  kSignal = 25,         // client: a signal for the command's process group
  kExit = 26,           // agent: the stream's last frame (ExitInfo)
  kProcessStart = 27,   // client: start a background process → ProcessList
  kProcessList = 28,    // client: list background processes; agent: the answer
  kProcessAttach = 29,  // client: replay (and follow) a process's output → data…, Exit
  kProcessSignal = 30,  // client: signal a background process → ProcessList
  kProcessStdin = 31,   // client: write to a background process's stdin → ProcessList
  kInterrupt = 32,      // client: SIGINT to every foreground command → ProcessList (empty)
  kTcpConnect = 33,     // client: relay a TCP connection to 127.0.0.1:port in the sandbox
  kServiceStart = 34,   // client: start a supervised service (ServiceSpec) → ServiceList
  kServiceList = 35,    // client: list the services; agent: the answer
  kServiceStop = 36,    // client: stop and forget a service (its name) → ServiceList
  kPortList = 37,       // client: the TCP ports listening in the sandbox; agent: the answer
  kLogRead = 38,        // client: the session log from an offset; agent: the answer (LogChunk)
  kActivityRead = 39,   // client: activity lines past a seq (bridge_protocol.h); agent: a batch
  // File operations (files_protocol.h); each takes a connection of its own. Numbered from 64
  // so that other additions can go on from 38.
  kFileStat = 64,       // client: FileRequest → FileEntry
  kFileList = 65,       // client: FileRequest → FileListing
  kFileRead = 66,       // client: FileRequest → FileOpened [+ fd], or FileRange → FileData…
  kFileWrite = 67,      // client: FileRequest, FileData…, FileData{} → FileEntry
  kFileRemove = 68,     // client: FileRequest → FileEntry (the path only)
  kFileMkdir = 69,      // client: FileRequest → FileEntry
  kFileMove = 70,       // client: FileRequest → FileEntry (of `to`)
  kFileArchive = 71,    // client: FileRequest → FileOpened, FileData… (a tar), FileData{}
  kFileExtract = 72,    // client: FileRequest, FileData… (a tar), FileData{} → FileExtracted
  kFileWatch = 73,      // client: FileRequest → FileEvents (ready), FileEvents…
  kFileOpened = 74,     // agent: what FileRead opened (a directory, or a file and its size)
  kFileRange = 75,      // client: which bytes of the opened file to stream
  kFileData = 76,       // either: bytes of a file or tar; an empty one ends them
  kFileEntry = 77,      // agent
  kFileListing = 78,    // agent
  kFileExtracted = 79,  // agent
  kFileEvents = 80,     // agent
  kFileError = 81,      // agent: a file operation failed (FileError: the API's error code)
  // Agents and messages (message_bridge.h, docs/agents.md): the connection that sends
  // MessageAttach becomes the relay between the server and the in-sandbox message socket.
  kMessageAttach = 100,  // client: relay the message socket here; agent: the same, accepted
  kLocalLine = 101,      // either: one line of a local connection (LocalLine)
  kLocalClosed = 102,    // agent: a local connection ended; client: end it (LocalLine, no bytes)
};

// A human-readable name for logs ("ExecRequest", "type 99").
std::string MessageTypeName(MessageType type);

struct Frame {
  MessageType type = MessageType::kError;
  uint32_t stream_id = 0;
  std::string payload;
};

// Appends one encoded frame to *out.
void AppendFrame(std::string* out, MessageType type, uint32_t stream_id, std::string_view payload);
std::string EncodeFrame(MessageType type, uint32_t stream_id, std::string_view payload);

// Splits a byte stream into frames. Feed bytes with Append, take frames with Next.
class FrameParser {
 public:
  explicit FrameParser(uint32_t max_payload = kMaxFramePayload) : max_payload_(max_payload) {}

  enum class Result { kFrame, kNeedMore, kError };

  void Append(std::string_view bytes) { buffer_.append(bytes); }
  // kFrame: *out holds the next frame. kNeedMore: the buffer ends inside a frame.
  // kError: *error says why (a length over the maximum); the stream cannot be resynchronised.
  Result Next(Frame* out, std::string* error);
  // How many more bytes the current frame needs (at least 1 when Next said kNeedMore).
  size_t BytesWanted() const;
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  uint32_t max_payload_;
  std::string buffer_;
  size_t consumed_ = 0;
};

struct Hello {
  uint32_t version = kProtocolVersion;
  std::string peer;  // "hutch-agent 0.1.0", "hutch-driver-local": for error messages and logs
  // The client's: the per-sandbox secret its driver issued at create (docs/architecture.md,
  // "One credential scheme"). Encoded after `peer` only when not empty, so a client reaching a
  // sandbox made before secrets existed sends the Hello its older agent decodes.
  std::string secret;
};
inline constexpr size_t kMaxSecretLen = 256;

// Wire values: never renumber, only add.
enum class ErrorCode : uint32_t {
  kInternal = 1,
  kInvalidArgument = 2,
  kVersionMismatch = 3,
  kMalformed = 4,          // a frame or payload that does not decode
  kUnsupported = 5,        // a message type this peer does not know
  kResourceExhausted = 6,  // fork/thread creation failed (pids limit), too many connections
  kUnavailable = 7,
  kNotFound = 8,          // no such process
  kAlreadyExists = 9,     // a service or process of that name exists
  kUnauthenticated = 10,  // the client's Hello lacks the sandbox's secret or has another
};

std::string_view ErrorCodeName(ErrorCode code);

struct ErrorMessage {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// Limits enforced by the decoders.
inline constexpr size_t kMaxArgs = 64 * 1024;
inline constexpr size_t kMaxEnv = 64 * 1024;
inline constexpr size_t kMaxStringLen = kMaxFramePayload;

std::string EncodeHello(const Hello& m);
std::string EncodeError(const ErrorMessage& m);
std::string EncodeExecRequest(const core::ExecRequest& m);
std::string EncodeExecResult(const core::ExecResult& m);

// Each returns false and sets *error ("ExecRequest: truncated string at offset 9") on
// malformed input; *out is then unspecified.
bool DecodeHello(std::string_view payload, Hello* out, std::string* error);

// The agent's check of a client's Hello: its protocol version, then (when the agent was given
// one) the sandbox's secret, compared in constant time. False with the Error to answer (the
// connection is then closed).
bool AcceptClientHello(const Hello& hello, std::string_view expected_secret, std::string_view me,
                       ErrorMessage* refusal);
bool DecodeError(std::string_view payload, ErrorMessage* out, std::string* error);
bool DecodeExecRequest(std::string_view payload, core::ExecRequest* out, std::string* error);
bool DecodeExecResult(std::string_view payload, core::ExecResult* out, std::string* error);

}  // namespace hutch::agent
