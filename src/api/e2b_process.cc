// process.Process of the E2B API's envd part: Start, Connect, List, SendInput, StreamInput,
// SendSignal, Update and CloseStdin over the processes controller/live_processes.h keeps
// (started, they stay reachable by pid or tag after the stream that started them ends).
#include <csignal>

#include <fmt/format.h>

#include "api/e2b_envd.h"
#include "e2b/proto/process.pb.h"

namespace hutch::api::e2b {

namespace {

using controller::LiveEvent;
using controller::LiveProcess;
using controller::LiveSubscription;

// A stream answers at least this often (a KeepAlive event when nothing else came), well inside
// the server's kMaxStreamSilence.
constexpr int64_t kKeepAliveMs = 10'000;

std::string EndStatus(const core::ExitInfo& exit) {
  if (exit.signal != 0) {
    const char* name = sigdescr_np(exit.signal);
    std::string text = name ? name : fmt::format("signal {}", exit.signal);
    for (char& ch : text) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return "signal: " + text;
  }
  return fmt::format("exit status {}", exit.exit_code);
}

// The events of one process as Start or Connect streams them: the start event with its pid,
// then output and the end; keepalives while nothing happens.
template <typename Response>
class ProcessEventStream : public BodyStream {
 public:
  ProcessEventStream(ConnectCodec codec, const LiveProcess& p,
                     std::shared_ptr<LiveSubscription> sub)
      : codec_(codec), pid_(p.pid()), pty_(p.request().tty), sub_(std::move(sub)) {}

  std::optional<std::string> Next() override {
    if (done_) return std::nullopt;
    Response r;
    if (!started_) {
      started_ = true;
      r.mutable_event()->mutable_start()->set_pid(static_cast<uint32_t>(pid_));
      return StreamMessage(codec_, r);
    }
    if (ended_) {
      done_ = true;
      return StreamEnd(nullptr);
    }
    std::optional<LiveEvent> e = sub_->Wait(kKeepAliveMs);
    if (cancelled_) return std::nullopt;
    if (!e) {
      r.mutable_event()->mutable_keepalive();
      return StreamMessage(codec_, r);
    }
    auto* event = r.mutable_event();
    switch (e->kind) {
      case LiveEvent::Kind::kStdout:
        // A terminal has one output stream, E2B's pty.
        if (pty_)
          event->mutable_data()->set_pty(std::move(e->data));
        else
          event->mutable_data()->set_stdout(std::move(e->data));
        break;
      case LiveEvent::Kind::kStderr:
        event->mutable_data()->set_stderr(std::move(e->data));
        break;
      case LiveEvent::Kind::kEnd: {
        ended_ = true;
        auto* end = event->mutable_end();
        if (!e->error.empty()) {
          end->set_exit_code(-1);
          end->set_exited(false);
          end->set_status("error");
          end->set_error(e->error);
          break;
        }
        end->set_exit_code(e->exit.signal != 0 ? -1 : e->exit.exit_code);
        end->set_exited(e->exit.signal == 0);
        end->set_status(EndStatus(e->exit));
        break;
      }
    }
    return StreamMessage(codec_, r);
  }

  void Cancel() override {
    cancelled_ = true;
    sub_->Cancel();
  }

 private:
  ConnectCodec codec_;
  int pid_;
  bool pty_;
  std::shared_ptr<LiveSubscription> sub_;
  bool started_ = false, ended_ = false, done_ = false;
  std::atomic<bool> cancelled_{false};
};

Result<std::shared_ptr<LiveProcess>> Select(EnvdDeps& deps, const EnvdCall& call,
                                            const process::ProcessSelector& sel) {
  if (sel.selector_case() == process::ProcessSelector::SELECTOR_NOT_SET)
    return InvalidArgument("the process selector names no pid or tag");
  return deps.processes->Find(call.session_id, sel.pid(), sel.tag());
}

// Decodes `req` from the request's body and finds the process it names.
template <class Request>
Result<std::shared_ptr<LiveProcess>> DecodeAndSelect(EnvdDeps& deps, const EnvdCall& call,
                                                     const ConnectCodec& codec,
                                                     const ApiRequest& request, Request* req) {
  RETURN_IF_ERROR(DecodeRequest(codec, request.body, req));
  return Select(deps, call, req->process());
}

ApiResponse Start(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                  const ApiRequest& request) {
  process::StartRequest req;
  if (Status st = DecodeRequest(codec, request.body, &req); !st.ok())
    return StreamError(codec, ToRpcError(st));
  const process::ProcessConfig& cfg = req.process();
  if (cfg.cmd().empty())
    return StreamError(codec, ToRpcError(InvalidArgument("process.cmd is empty")));
  core::StreamExecRequest spec;
  spec.exec.argv.push_back(cfg.cmd());
  spec.exec.argv.insert(spec.exec.argv.end(), cfg.args().begin(), cfg.args().end());
  spec.exec.env.insert(cfg.envs().begin(), cfg.envs().end());
  spec.exec.cwd = cfg.cwd();
  if (req.has_pty()) {
    spec.tty = true;
    spec.rows = static_cast<uint16_t>(req.pty().size().rows() ? req.pty().size().rows() : 24);
    spec.cols = static_cast<uint16_t>(req.pty().size().cols() ? req.pty().size().cols() : 80);
  }
  controller::SandboxAgent agent(deps.service);
  controller::LiveOptions options;
  options.tag = req.tag();
  // Without stdin the command reads end-of-file, as E2B's envd gives it.
  bool close_stdin = !req.stdin() && !spec.tty;
  auto started = deps.processes->Start(agent, call.who, call.session_id, spec, std::move(options),
                                       close_stdin, /*subscribe=*/true);
  if (!started.ok()) return StreamError(codec, ToRpcError(started.status()));
  auto [proc, sub] = std::move(*started);
  return StreamAnswer(codec, std::make_shared<ProcessEventStream<process::StartResponse>>(
                                 codec, *proc, std::move(sub)));
}

ApiResponse Connect(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                    const ApiRequest& request) {
  process::ConnectRequest req;
  auto proc = DecodeAndSelect(deps, call, codec, request, &req);
  if (!proc.ok()) return StreamError(codec, ToRpcError(proc.status()));
  std::shared_ptr<LiveSubscription> sub = (*proc)->Subscribe();
  if (!sub)
    return StreamError(codec,
                       ToRpcError(NotFound(fmt::format("process {} ended", (*proc)->pid()))));
  return StreamAnswer(codec, std::make_shared<ProcessEventStream<process::ConnectResponse>>(
                                 codec, **proc, std::move(sub)));
}

ApiResponse List(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                 const ApiRequest& request) {
  process::ListRequest req;
  if (Status st = DecodeRequest(codec, request.body, &req); !st.ok())
    return UnaryError(ToRpcError(st));
  process::ListResponse out;
  for (const auto& p : deps.processes->List(call.session_id)) {
    process::ProcessInfo* info = out.add_processes();
    info->set_pid(static_cast<uint32_t>(p->pid()));
    if (!p->options().tag.empty()) info->set_tag(p->options().tag);
    process::ProcessConfig* cfg = info->mutable_config();
    const core::ExecRequest& exec = p->request().exec;
    cfg->set_cmd(exec.argv.front());
    for (size_t i = 1; i < exec.argv.size(); ++i) cfg->add_args(exec.argv[i]);
    for (const auto& [k, v] : exec.env) (*cfg->mutable_envs())[k] = v;
    if (!exec.cwd.empty()) cfg->set_cwd(exec.cwd);
  }
  return UnaryAnswer(codec, out);
}

Status SendInputTo(LiveProcess& p, const process::ProcessInput& input) {
  switch (input.input_case()) {
    case process::ProcessInput::kStdin:
      return p.WriteInput(input.stdin());
    case process::ProcessInput::kPty:
      return p.WriteInput(input.pty());
    case process::ProcessInput::INPUT_NOT_SET:
      break;
  }
  return Status::Ok();
}

ApiResponse SendInput(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                      const ApiRequest& request) {
  process::SendInputRequest req;
  auto proc = DecodeAndSelect(deps, call, codec, request, &req);
  if (!proc.ok()) return UnaryError(ToRpcError(proc.status()));
  if (Status st = SendInputTo(**proc, req.input()); !st.ok()) return UnaryError(ToRpcError(st));
  return UnaryAnswer(codec, process::SendInputResponse());
}

// The client-streaming StreamInput, with the whole request body as its stream: over HTTP/1.1
// a client sends it complete (a start, then data), and hutch writes it in order.
ApiResponse StreamInput(EnvdDeps& deps, const EnvdCall& call, const ApiRequest& request) {
  Result<ConnectCodec> codec = CodecOf(request, true);
  if (!codec.ok()) return UnaryError(ToRpcError(codec.status()));
  auto envelopes = SplitEnvelopes(request.body);
  if (!envelopes.ok()) return StreamError(*codec, ToRpcError(envelopes.status()));
  std::shared_ptr<LiveProcess> proc;
  ConnectCodec unary = *codec;
  unary.streaming = false;
  for (const Envelope& e : *envelopes) {
    if (e.flags & 0x02) break;
    process::StreamInputRequest req;
    if (Status st = DecodeRequest(unary, e.payload, &req); !st.ok())
      return StreamError(*codec, ToRpcError(st));
    if (req.has_start()) {
      auto found = Select(deps, call, req.start().process());
      if (!found.ok()) return StreamError(*codec, ToRpcError(found.status()));
      proc = *found;
    } else if (req.has_data()) {
      if (!proc)
        return StreamError(*codec, ToRpcError(InvalidArgument("data came before the start event")));
      if (Status st = SendInputTo(*proc, req.data().input()); !st.ok())
        return StreamError(*codec, ToRpcError(st));
    }
  }
  ApiResponse r;
  r.status = 200;
  r.content_type = codec->binary ? "application/connect+proto" : "application/connect+json";
  r.body = StreamMessage(*codec, process::StreamInputResponse()) + StreamEnd(nullptr);
  return r;
}

ApiResponse SendSignal(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                       const ApiRequest& request) {
  process::SendSignalRequest req;
  if (Status st = DecodeRequest(codec, request.body, &req); !st.ok())
    return UnaryError(ToRpcError(st));
  int sig = req.signal() == process::SIGNAL_SIGKILL   ? SIGKILL
            : req.signal() == process::SIGNAL_SIGTERM ? SIGTERM
                                                      : 0;
  if (sig == 0) return UnaryError(ToRpcError(InvalidArgument("signal must be SIGTERM or SIGKILL")));
  auto proc = Select(deps, call, req.process());
  if (!proc.ok()) return UnaryError(ToRpcError(proc.status()));
  if (Status st = (*proc)->Signal(sig); !st.ok()) return UnaryError(ToRpcError(st));
  return UnaryAnswer(codec, process::SendSignalResponse());
}

ApiResponse Update(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                   const ApiRequest& request) {
  process::UpdateRequest req;
  auto proc = DecodeAndSelect(deps, call, codec, request, &req);
  if (!proc.ok()) return UnaryError(ToRpcError(proc.status()));
  if (req.has_pty()) {
    const auto& size = req.pty().size();
    if (Status st =
            (*proc)->Resize(static_cast<uint16_t>(size.rows()), static_cast<uint16_t>(size.cols()));
        !st.ok())
      return UnaryError(ToRpcError(st));
  }
  return UnaryAnswer(codec, process::UpdateResponse());
}

ApiResponse CloseStdin(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                       const ApiRequest& request) {
  process::CloseStdinRequest req;
  auto proc = DecodeAndSelect(deps, call, codec, request, &req);
  if (!proc.ok()) return UnaryError(ToRpcError(proc.status()));
  if (Status st = (*proc)->CloseStdin(); !st.ok()) return UnaryError(ToRpcError(st));
  return UnaryAnswer(codec, process::CloseStdinResponse());
}

}  // namespace

ApiResponse ServeProcessRpc(EnvdDeps& deps, const EnvdCall& call, std::string_view method,
                            const ApiRequest& request) {
  if (method == "StreamInput") return StreamInput(deps, call, request);
  using Fn = ApiResponse (*)(EnvdDeps&, const EnvdCall&, const ConnectCodec&, const ApiRequest&);
  static const std::tuple<std::string_view, bool, Fn> kMethods[] = {
      {"Start", true, Start},
      {"Connect", true, Connect},
      {"List", false, List},
      {"SendInput", false, SendInput},
      {"SendSignal", false, SendSignal},
      {"Update", false, Update},
      {"CloseStdin", false, CloseStdin},
  };
  for (const auto& [name, streaming, fn] : kMethods) {
    if (name != method) continue;
    Result<ConnectCodec> codec = CodecOf(request, streaming);
    if (!codec.ok()) return UnaryError(ToRpcError(codec.status()));
    return fn(deps, call, *codec, request);
  }
  return UnaryError(
      RpcError{"unimplemented", fmt::format("process.Process/{} does not exist", method)});
}

}  // namespace hutch::api::e2b
