// filesystem.Filesystem of the E2B API's envd part: Stat, MakeDir, Move, ListDir, Remove,
// WatchDir (streaming) and the polled watchers (CreateWatcher, GetWatcherEvents,
// RemoveWatcher), over the controller's SandboxFiles facade.
#include <sys/stat.h>

#include <fmt/format.h>

#include "api/e2b_envd.h"
#include "api/e2b_watchers.h"
#include "controller/sandbox_files.h"
#include "e2b/proto/filesystem.pb.h"

namespace hutch::api::e2b {

namespace {

constexpr int64_t kKeepAliveMs = 10'000;
constexpr size_t kMaxListEntries = 100'000;

Result<controller::SandboxFiles> OpenFiles(EnvdDeps& deps, const EnvdCall& call) {
  return controller::SandboxFiles::Open(deps.service, call.who, call.session_id, nullptr);
}

std::string Permissions(const files::Entry& e) {
  std::string s(10, '-');
  if (e.type == files::FileType::kDirectory) s[0] = 'd';
  if (e.type == files::FileType::kSymlink) s[0] = 'l';
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (e.mode & (0400u >> i)) s[1 + i] = rwx[i];
  return s;
}

std::string UserName(uint32_t id) { return id == 0 ? "root" : std::to_string(id); }

void FillEntry(const files::Entry& e, filesystem::EntryInfo* out) {
  out->set_name(e.name);
  out->set_path(e.path);
  switch (e.type) {
    case files::FileType::kDirectory:
      out->set_type(filesystem::FILE_TYPE_DIRECTORY);
      break;
    case files::FileType::kSymlink:
      out->set_type(filesystem::FILE_TYPE_SYMLINK);
      break;
    case files::FileType::kFile:
      out->set_type(filesystem::FILE_TYPE_FILE);
      break;
    default:
      out->set_type(filesystem::FILE_TYPE_UNSPECIFIED);
      break;
  }
  out->set_size(static_cast<int64_t>(e.size));
  out->set_mode(e.mode & 07777);
  out->set_permissions(Permissions(e));
  out->set_owner(UserName(e.uid));
  out->set_group(UserName(e.gid));
  out->mutable_modified_time()->set_seconds(e.mtime_ns / 1'000'000'000);
  out->mutable_modified_time()->set_nanos(static_cast<int32_t>(e.mtime_ns % 1'000'000'000));
  if (e.type == files::FileType::kSymlink) out->set_symlink_target(e.target);
}

filesystem::EventType EventTypeOf(const std::string& type) {
  if (type == "created") return filesystem::EVENT_TYPE_CREATE;
  if (type == "modified") return filesystem::EVENT_TYPE_WRITE;
  if (type == "deleted") return filesystem::EVENT_TYPE_REMOVE;
  if (type == "moved") return filesystem::EVENT_TYPE_RENAME;
  return filesystem::EVENT_TYPE_UNSPECIFIED;
}

// `path` relative to the watched directory, as envd names an event's file.
std::string RelativeTo(const std::string& dir, const std::string& path) {
  std::string prefix = dir.ends_with('/') ? dir : dir + "/";
  return path.starts_with(prefix) ? path.substr(prefix.size()) : path;
}

// Fills `out` from hutch's watch events; false for those envd has no type for (overflow).
bool FillEvent(const std::string& dir, const files::WatchEvent& e,
               filesystem::FilesystemEvent* out) {
  filesystem::EventType type = EventTypeOf(e.type);
  if (type == filesystem::EVENT_TYPE_UNSPECIFIED) return false;
  out->set_name(RelativeTo(dir, e.path));
  out->set_type(type);
  return true;
}

template <typename Req>
Result<Req> Decode(const ConnectCodec& codec, const ApiRequest& request) {
  Req req;
  RETURN_IF_ERROR(DecodeRequest(codec, request.body, &req));
  return req;
}

// Runs a unary method: decode, open the sandbox's files, answer.
template <typename Req, typename Resp, typename F>
ApiResponse Unary(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                  const ApiRequest& request, F&& body) {
  Result<Req> req = Decode<Req>(codec, request);
  if (!req.ok()) return UnaryError(ToRpcError(req.status()));
  Result<controller::SandboxFiles> files = OpenFiles(deps, call);
  if (!files.ok()) return UnaryError(ToRpcError(files.status()));
  Resp resp;
  if (Status st = body(*files, *req, resp); !st.ok()) return UnaryError(ToRpcError(st));
  return UnaryAnswer(codec, resp);
}

// WatchDir's answer: a start event, then the changes as they come; keepalives in between.
class WatchStream : public BodyStream {
 public:
  WatchStream(ConnectCodec codec, std::string dir, controller::SandboxFiles files,
              std::unique_ptr<controller::FileWatch> watch)
      : codec_(codec), dir_(std::move(dir)), files_(std::move(files)), watch_(std::move(watch)) {}

  std::optional<std::string> Next() override {
    if (done_) return std::nullopt;
    filesystem::WatchDirResponse r;
    if (!started_) {
      started_ = true;
      r.mutable_start();
      return StreamMessage(codec_, r);
    }
    while (pending_.empty()) {
      if (cancelled_) return std::nullopt;
      if (watch_->gone()) {
        done_ = true;
        return StreamEnd(nullptr);
      }
      Result<std::vector<files::WatchEvent>> events = watch_->Wait(kKeepAliveMs);
      if (cancelled_) return std::nullopt;
      if (!events.ok()) {
        done_ = true;
        RpcError e = ToRpcError(events.status());
        return StreamEnd(&e);
      }
      if (events->empty()) {
        r.mutable_keepalive();
        return StreamMessage(codec_, r);
      }
      for (auto& e : *events) pending_.push_back(std::move(e));
    }
    files::WatchEvent e = std::move(pending_.front());
    pending_.erase(pending_.begin());
    if (!FillEvent(dir_, e, r.mutable_filesystem())) r.mutable_keepalive();
    return StreamMessage(codec_, r);
  }

  void Cancel() override {
    cancelled_ = true;
    watch_->Cancel();
  }

 private:
  ConnectCodec codec_;
  std::string dir_;
  controller::SandboxFiles files_;
  std::unique_ptr<controller::FileWatch> watch_;
  std::vector<files::WatchEvent> pending_;
  bool started_ = false, done_ = false;
  std::atomic<bool> cancelled_{false};
};

ApiResponse WatchDir(EnvdDeps& deps, const EnvdCall& call, const ConnectCodec& codec,
                     const ApiRequest& request) {
  Result<filesystem::WatchDirRequest> req = Decode<filesystem::WatchDirRequest>(codec, request);
  if (!req.ok()) return StreamError(codec, ToRpcError(req.status()));
  Result<controller::SandboxFiles> files = OpenFiles(deps, call);
  if (!files.ok()) return StreamError(codec, ToRpcError(files.status()));
  std::string dir = EnvdPath(req->path());
  auto watch = files->Watch(dir, req->recursive());
  if (!watch.ok()) return StreamError(codec, ToRpcError(watch.status()));
  return StreamAnswer(
      codec, std::make_shared<WatchStream>(codec, dir, std::move(*files), std::move(*watch)));
}

ApiResponse Dispatch(EnvdDeps& deps, const EnvdCall& call, std::string_view method,
                     const ConnectCodec& codec, const ApiRequest& request) {
  using namespace filesystem;
  if (method == "Stat")
    return Unary<StatRequest, StatResponse>(
        deps, call, codec, request, [](auto& files, const auto& req, auto& resp) -> Status {
          ASSIGN_OR_RETURN(files::Entry e, files.Stat(EnvdPath(req.path())));
          FillEntry(e, resp.mutable_entry());
          return Status::Ok();
        });
  if (method == "MakeDir") {
    // An existing path is already_exists, which the SDKs answer with false.
    Result<MakeDirRequest> req = Decode<MakeDirRequest>(codec, request);
    if (!req.ok()) return UnaryError(ToRpcError(req.status()));
    Result<controller::SandboxFiles> files = OpenFiles(deps, call);
    if (!files.ok()) return UnaryError(ToRpcError(files.status()));
    std::string path = EnvdPath(req->path());
    if (files->Stat(path).ok())
      return UnaryError(RpcError{"already_exists", fmt::format("{} exists already", path)});
    Result<files::Entry> e = files->MakeDir(path, 0755, true);
    if (!e.ok()) return UnaryError(ToRpcError(e.status()));
    MakeDirResponse resp;
    FillEntry(*e, resp.mutable_entry());
    return UnaryAnswer(codec, resp);
  }
  if (method == "Move")
    return Unary<MoveRequest, MoveResponse>(
        deps, call, codec, request, [](auto& files, const auto& req, auto& resp) -> Status {
          ASSIGN_OR_RETURN(files::Entry e,
                           files.Move(EnvdPath(req.source()), EnvdPath(req.destination()), true));
          FillEntry(e, resp.mutable_entry());
          return Status::Ok();
        });
  if (method == "ListDir")
    return Unary<ListDirRequest, ListDirResponse>(
        deps, call, codec, request, [](auto& files, const auto& req, auto& resp) -> Status {
          int depth = req.depth() == 0 ? 1 : static_cast<int>(std::min<uint32_t>(req.depth(), 64));
          ASSIGN_OR_RETURN(files::Listing l,
                           files.List(EnvdPath(req.path()), depth, kMaxListEntries));
          for (const files::Entry& e : l.entries) FillEntry(e, resp.add_entries());
          return Status::Ok();
        });
  if (method == "Remove")
    return Unary<RemoveRequest, RemoveResponse>(deps, call, codec, request,
                                                [](auto& files, const auto& req, auto&) -> Status {
                                                  return files.Remove(EnvdPath(req.path()), true);
                                                });
  if (method == "CreateWatcher")
    return Unary<CreateWatcherRequest, CreateWatcherResponse>(
        deps, call, codec, request, [&](auto& files, const auto& req, auto& resp) -> Status {
          std::string dir = EnvdPath(req.path());
          ASSIGN_OR_RETURN(auto watch, files.Watch(dir, req.recursive()));
          resp.set_watcher_id(deps.watchers->Add(call.session_id, dir, std::move(watch)));
          return Status::Ok();
        });
  if (method == "GetWatcherEvents") {
    Result<GetWatcherEventsRequest> req = Decode<GetWatcherEventsRequest>(codec, request);
    if (!req.ok()) return UnaryError(ToRpcError(req.status()));
    std::string dir;
    auto events = deps.watchers->Drain(call.session_id, req->watcher_id(), &dir);
    if (!events.ok()) return UnaryError(ToRpcError(events.status()));
    GetWatcherEventsResponse resp;
    for (const files::WatchEvent& e : *events) {
      FilesystemEvent out;
      if (FillEvent(dir, e, &out)) *resp.add_events() = std::move(out);
    }
    return UnaryAnswer(codec, resp);
  }
  if (method == "RemoveWatcher") {
    Result<RemoveWatcherRequest> req = Decode<RemoveWatcherRequest>(codec, request);
    if (!req.ok()) return UnaryError(ToRpcError(req.status()));
    if (Status st = deps.watchers->Remove(call.session_id, req->watcher_id()); !st.ok())
      return UnaryError(ToRpcError(st));
    return UnaryAnswer(codec, RemoveWatcherResponse());
  }
  return UnaryError(
      RpcError{"unimplemented", fmt::format("filesystem.Filesystem/{} does not exist", method)});
}

}  // namespace

ApiResponse ServeFilesystemRpc(EnvdDeps& deps, const EnvdCall& call, std::string_view method,
                               const ApiRequest& request) {
  bool streaming = method == "WatchDir";
  Result<ConnectCodec> codec = CodecOf(request, streaming);
  if (!codec.ok()) return UnaryError(ToRpcError(codec.status()));
  if (streaming) return WatchDir(deps, call, *codec, request);
  ApiResponse r = Dispatch(deps, call, method, *codec, request);
  return r;
}

}  // namespace hutch::api::e2b
