#include "agent/requests.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/agent_error.h"
#include "agent/command.h"
#include "agent/message_bridge.h"
#include "agent/stream_protocol.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

// Where a request's answer goes: frames on the request's stream.
class Reply {
 public:
  Reply(std::string* out, uint32_t stream) : out_(out), stream_(stream) {}
  void Send(MessageType type, std::string_view payload) {
    AppendFrame(out_, type, stream_, payload);
  }
  void Error(ErrorCode code, const std::string& message) {
    Send(MessageType::kError, EncodeError(ErrorMessage{code, message}));
  }
  void Error(const Status& status) {
    Send(MessageType::kError, EncodeError(ToErrorMessage(status)));
  }
  // A payload that did not decode.
  void Malformed(const Status& status) { Error(ErrorCode::kMalformed, status.message()); }
  void Processes(const Result<ProcessInfo>& info) {
    if (!info.ok()) return Error(info.status());
    Send(MessageType::kProcessList, EncodeProcessList({*info}));
  }
  void Services(const Result<ServiceInfo>& info) {
    if (!info.ok()) return Error(info.status());
    Send(MessageType::kServiceList, EncodeServiceList({*info}));
  }

 private:
  std::string* out_;
  uint32_t stream_;
};

// A /proc file's text (up to 4 MiB: a /proc/net/tcp of tens of thousands of sockets); false
// when it cannot be opened.
bool ReadSmallFile(const char* path, std::string* out) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || out->size() > (4u << 20)) break;
    out->append(buf, static_cast<size_t>(n));
  }
  return true;
}

// At most request.max_bytes of the session log from request.offset, and its size now. The
// buffer lives for this call only (the agent's memory budget). REQUIRES: log_fd >= 0.
Result<LogChunk> ReadLog(int log_fd, const LogReadRequest& request) {
  LogChunk chunk;
  struct stat st;
  if (fstat(log_fd, &st) != 0) return Internal(std::string("fstat the log: ") + strerror(errno));
  chunk.size = static_cast<uint64_t>(st.st_size);
  if (request.offset >= chunk.size) return chunk;
  chunk.data.resize(
      static_cast<size_t>(std::min<uint64_t>(request.max_bytes, chunk.size - request.offset)));
  ssize_t n;
  do {
    n = pread(log_fd, chunk.data.data(), chunk.data.size(), static_cast<off_t>(request.offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Internal(std::string("read the log: ") + strerror(errno));
  chunk.data.resize(static_cast<size_t>(n));
  return chunk;
}

// A handler of a request whose payload decodes into a T.
template <typename T>
using DecodedHandler = void (*)(const T&, const StreamContext&, Reply&);

// Decodes the payload with `decode` and hands it to `handle`; a payload that does not decode is
// answered kMalformed.
template <typename T, bool (*decode)(std::string_view, T*, std::string*), DecodedHandler<T> handle>
void Decoded(const Frame& frame, const StreamContext& ctx, Reply& reply) {
  Result<T> request = DecodePayload(decode, frame.payload);
  if (!request.ok()) return reply.Malformed(request.status());
  handle(*request, ctx, reply);
}

void RunToCompletion(const core::ExecRequest& request, const StreamContext& ctx, Reply& reply) {
  // Blocks this connection's other streams while it runs; the host opens a connection per
  // run-to-completion exec.
  Result<core::ExecResult> result = RunCommand(request, *ctx.session_env, ctx.reaper);
  if (!result.ok()) return reply.Error(result.status());
  reply.Send(MessageType::kExecResult, EncodeExecResult(*result));
}

void StartProcess(const ProcessStartRequest& request, const StreamContext& ctx, Reply& reply) {
  reply.Processes(ctx.processes->Start(request));
}

void ListProcesses(const Frame&, const StreamContext& ctx, Reply& reply) {
  reply.Send(MessageType::kProcessList, EncodeProcessList(ctx.processes->List()));
}

void SignalProcess(const ProcessSignalRequest& request, const StreamContext& ctx, Reply& reply) {
  reply.Processes(ctx.processes->Signal(request.selector, request.signal));
}

void WriteProcessStdin(const ProcessStdinRequest& request, const StreamContext& ctx, Reply& reply) {
  reply.Processes(ctx.processes->WriteStdin(request.selector, request.data, request.close));
}

void StartService(const ServiceSpec& spec, const StreamContext& ctx, Reply& reply) {
  reply.Services(ctx.services->Start(spec));
}

void ListServices(const Frame&, const StreamContext& ctx, Reply& reply) {
  reply.Send(MessageType::kServiceList, EncodeServiceList(ctx.services->List()));
}

void StopService(const Frame& frame, const StreamContext& ctx, Reply& reply) {
  reply.Services(ctx.services->Stop(std::string(frame.payload)));
}

void ListPorts(const Frame&, const StreamContext&, Reply& reply) {
  std::vector<ListeningPort> ports;
  for (bool v6 : {false, true}) {
    std::string text;
    if (ReadSmallFile(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", &text))
      ParseProcNetTcp(text, v6, &ports);
  }
  std::sort(ports.begin(), ports.end(), [](const ListeningPort& a, const ListeningPort& b) {
    return a.port != b.port ? a.port < b.port : a.address < b.address;
  });
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  reply.Send(MessageType::kPortList, EncodePortList(ports));
}

void ReadSessionLog(const LogReadRequest& request, const StreamContext& ctx, Reply& reply) {
  if (ctx.log_fd < 0) {
    return reply.Error(ErrorCode::kUnsupported, "this sandbox's agent was given no log to read");
  }
  Result<LogChunk> chunk = ReadLog(ctx.log_fd, request);
  if (!chunk.ok()) return reply.Error(ErrorCode::kInternal, chunk.status().message());
  reply.Send(MessageType::kLogRead, EncodeLogChunk(*chunk));
}

void ReadActivityLines(const Frame& frame, const StreamContext&, Reply& reply) {
  uint64_t after = 0;
  std::string instance;
  if (!DecodeActivityRead(frame.payload, &instance, &after))
    return reply.Error(ErrorCode::kInvalidArgument, "ActivityRead: a cursor and an instance");
  reply.Send(MessageType::kActivityRead, EncodeActivityBatch(ReadActivity(instance, after)));
}

void Interrupt(const Frame&, const StreamContext&, Reply& reply) {
  ProcessInfo info;
  info.pid = InterruptForeground();  // how many jobs were interrupted
  info.running = false;
  reply.Send(MessageType::kProcessList, EncodeProcessList({info}));
}

using Handler = void (*)(const Frame&, const StreamContext&, Reply&);

struct Route {
  MessageType type;
  Handler handler;
};

constexpr Route kRoutes[] = {
    {MessageType::kExecRequest, Decoded<core::ExecRequest, DecodeExecRequest, RunToCompletion>},
    {MessageType::kProcessStart,
     Decoded<ProcessStartRequest, DecodeProcessStartRequest, StartProcess>},
    {MessageType::kProcessList, ListProcesses},
    {MessageType::kProcessSignal,
     Decoded<ProcessSignalRequest, DecodeProcessSignalRequest, SignalProcess>},
    {MessageType::kProcessStdin,
     Decoded<ProcessStdinRequest, DecodeProcessStdinRequest, WriteProcessStdin>},
    {MessageType::kServiceStart, Decoded<ServiceSpec, DecodeServiceSpec, StartService>},
    {MessageType::kServiceList, ListServices},
    {MessageType::kServiceStop, StopService},
    {MessageType::kPortList, ListPorts},
    {MessageType::kLogRead, Decoded<LogReadRequest, DecodeLogReadRequest, ReadSessionLog>},
    {MessageType::kInterrupt, Interrupt},
    {MessageType::kActivityRead, ReadActivityLines},
};

}  // namespace

bool AnswerRequest(const Frame& frame, const StreamContext& ctx, std::string* out) {
  for (const Route& route : kRoutes) {
    if (route.type != frame.type) continue;
    Reply reply(out, frame.stream_id);
    route.handler(frame, ctx, reply);
    return true;
  }
  return false;
}

}  // namespace hutch::agent
