// The agent protocol's streaming operations (message types 18 and up in protocol.h).
//
// Streaming exec. The client opens a stream with StreamExec; the agent answers Started{pid}
// (or Error), then Stdout/Stderr frames as the command writes, and ends the stream with Exit.
// The client sends Stdin (an empty one closes stdin), Resize (PTY only) and Signal frames.
//
// Flow control is credit-based per stream and per direction, like HTTP/2's windows: a sender
// may have at most `window` bytes of data in flight that the receiver has not granted back
// with Window{bytes}. Output credit starts at StreamExecRequest::window (the client chooses);
// stdin credit starts at kStdinWindow. The agent stops reading a command's pipe when the
// stream has no credit left, so a fast producer with a slow reader blocks in write(2) on a full
// pipe instead of growing anyone's memory; the agent grants stdin credit back only as the
// command reads. A peer that sends beyond its credit is a protocol error (the stream ends).
//
// Background processes outlive the connection that started them: ProcessStart answers a
// ProcessList of the one new process. Their output goes to a bounded ring buffer per process
// (oldest bytes dropped and counted, the producer never waits); ProcessAttach answers
// Started{pid} (or Error{not_found}), replays the ring and, with follow, streams what comes
// after, under the same output credit, until the process has ended (then Exit). ProcessSignal and
// ProcessStdin answer the process's ProcessList entry.
//
// TCP relay (the port proxy and port-forward ride on it). TcpConnect{port, window} makes the
// agent connect to 127.0.0.1:port — it runs in the sandbox's network namespace, so this reaches
// the session's loopback with network mode `none` and needs no host port. The agent answers
// Started{0} once connected, or Error{unavailable} ("connect 127.0.0.1:8888: ECONNREFUSED").
// Then Stdin frames carry bytes to the connection (an empty one half-closes it: shutdown
// SHUT_WR) and Stdout frames bytes from it, under the same credits as a streaming exec. When the
// peer in the sandbox closes (EOF or an error) the agent sends what it read, then Exit
// {exit_code 0 on EOF, -1 on an error} and closes the socket; closing the agent connection
// closes every relayed socket of it.
//
// Standard library only: linked into the static agent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/exec.h"
#include "core/process.h"
#include "core/service.h"

namespace hutch::agent {

// Output credit a client gives when it has no better idea; also the most it may give at once.
inline constexpr uint32_t kDefaultWindow = core::kDefaultStreamWindow;
inline constexpr uint32_t kMaxWindow = 16u << 20;
// Stdin credit the agent gives every stream at its start.
inline constexpr uint32_t kStdinWindow = 256 * 1024;
// The largest Stdout/Stderr/Stdin payload a sender produces.
inline constexpr size_t kMaxDataChunk = 64 * 1024;
// Ring buffer of each background process (both streams together).
inline constexpr size_t kProcessRingBytes = 1 << 20;
using core::kMaxTagLen;

// The messages' values, shared with the API (core/process.h).
using core::ExitInfo;
using core::ListeningPort;
using core::ProcessInfo;
using core::ProcessStartRequest;
using core::ServiceInfo;
using core::StreamExecRequest;

// `selector` is a pid in decimal or a tag.
struct ProcessAttachRequest {
  std::string selector;
  bool follow = false;
  uint32_t window = kDefaultWindow;
};

struct ProcessSignalRequest {
  std::string selector;
  int32_t signal = 15;
};

struct ProcessStdinRequest {
  std::string selector;
  std::string data;
  bool close = false;  // close stdin after `data`
};

struct TcpConnectRequest {
  uint16_t port = 0;  // 1..65535
  uint32_t window = kDefaultWindow;
};

// A service (POST /v1/sessions/{id}/services): core/service.h; the agent supervises it.
using core::HealthCheck;
using core::ServiceSpec;

std::string EncodeServiceSpec(const ServiceSpec& m);
bool DecodeServiceSpec(std::string_view payload, ServiceSpec* out, std::string* error);
std::string EncodeServiceList(const std::vector<ServiceInfo>& m);
bool DecodeServiceList(std::string_view payload, std::vector<ServiceInfo>* out, std::string* error);

std::string EncodePortList(const std::vector<ListeningPort>& m);
bool DecodePortList(std::string_view payload, std::vector<ListeningPort>* out, std::string* error);
// The LISTEN sockets of a /proc/net/tcp (v6 false) or /proc/net/tcp6 (v6 true) text, appended
// to `out`; lines that do not parse are skipped.
void ParseProcNetTcp(std::string_view text, bool v6, std::vector<ListeningPort>* out);

// The session log (LogRead): the request asks for at most max_bytes from offset; the answer is
// a core::LogChunk. The agent reads the log through a read-only fd its driver gave it (it is a
// file of the host for the local driver, which the agent cannot open by path).
using core::LogChunk;
inline constexpr uint32_t kMaxLogChunk = 1 << 20;
struct LogReadRequest {
  uint64_t offset = 0;
  uint32_t max_bytes = 64 * 1024;  // at most kMaxLogChunk
};
std::string EncodeLogReadRequest(const LogReadRequest& m);
bool DecodeLogReadRequest(std::string_view payload, LogReadRequest* out, std::string* error);
std::string EncodeLogChunk(const LogChunk& m);
bool DecodeLogChunk(std::string_view payload, LogChunk* out, std::string* error);

std::string EncodeStreamExecRequest(const StreamExecRequest& m);
std::string EncodeTcpConnectRequest(const TcpConnectRequest& m);
std::string EncodeExitInfo(const ExitInfo& m);
std::string EncodeProcessList(const std::vector<ProcessInfo>& m);
std::string EncodeProcessStartRequest(const ProcessStartRequest& m);
std::string EncodeProcessAttachRequest(const ProcessAttachRequest& m);
std::string EncodeProcessSignalRequest(const ProcessSignalRequest& m);
std::string EncodeProcessStdinRequest(const ProcessStdinRequest& m);
std::string EncodeU32(uint32_t v);  // Window, Started (pid)
std::string EncodeI32(int32_t v);   // Signal
std::string EncodeResize(uint16_t rows, uint16_t cols);

// Each returns false and sets *error on malformed input, as protocol.h's decoders do.
bool DecodeStreamExecRequest(std::string_view payload, StreamExecRequest* out, std::string* error);
bool DecodeTcpConnectRequest(std::string_view payload, TcpConnectRequest* out, std::string* error);
bool DecodeExitInfo(std::string_view payload, ExitInfo* out, std::string* error);
bool DecodeProcessList(std::string_view payload, std::vector<ProcessInfo>* out, std::string* error);
bool DecodeProcessStartRequest(std::string_view payload, ProcessStartRequest* out,
                               std::string* error);
bool DecodeProcessAttachRequest(std::string_view payload, ProcessAttachRequest* out,
                                std::string* error);
bool DecodeProcessSignalRequest(std::string_view payload, ProcessSignalRequest* out,
                                std::string* error);
bool DecodeProcessStdinRequest(std::string_view payload, ProcessStdinRequest* out,
                               std::string* error);
bool DecodeU32(std::string_view payload, uint32_t* out, std::string* error);
bool DecodeI32(std::string_view payload, int32_t* out, std::string* error);
bool DecodeResize(std::string_view payload, uint16_t* rows, uint16_t* cols, std::string* error);

using core::IsValidTag;

}  // namespace hutch::agent
