#include "api/file_handlers.h"

#include <atomic>
#include <charconv>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "api/stream_routes.h"
#include "common/log.h"
#include "controller/activity_log.h"
#include "controller/sandbox_files.h"
#include "core/scopes.h"
#include "files/entry_json.h"

namespace hutch::api {

namespace {

using controller::SandboxFiles;
using controller::SessionService;

// Listing bounds.
constexpr int64_t kMaxListDepth = 32;
constexpr int64_t kDefaultListLimit = 10000;
constexpr int64_t kMaxListLimit = 100000;

RouteSpec Spec(std::string action, bool audit_reads = false, bool stream_body = false) {
  RouteSpec spec = RouteSpec::For(core::kScopeFiles, std::move(action), "session", audit_reads);
  spec.stream_request_body = stream_body;
  return spec;
}

// The session's files, for a handler: running or paused sessions only.
Result<SandboxFiles> OpenFiles(SessionService& service, const RouteContext& c) {
  core::Session touched;
  Result<SandboxFiles> r = SandboxFiles::Open(service, c.principal, c.Param("id"), &touched);
  if (!touched.id.empty()) {
    c.audit.object_id = touched.id;
    c.audit.object_owner = touched.owner;
  }
  return r;
}

// Records a file operation done through the API in the session's activity (file.upload,
// file.download, file.delete, file.rename, file.mkdir), the path as its command.
void RecordFile(SessionService& service, const SandboxFiles& sandbox, const RouteContext& c,
                std::string_view type, const std::string& path, json::object data = {}) {
  if (controller::ActivityLog* log = service.activity_log())
    log->Record(sandbox.session(), type, c.principal.Actor(), files::ShownPath(path), std::nullopt,
                std::move(data));
}

Result<std::string> PathParam(const ApiRequest& req, std::string_view key, bool required) {
  if (!req.HasQuery(key)) {
    if (required) return InvalidArgument(fmt::format("{} is required (?{}=/dir/file)", key, key));
    return std::string("/");
  }
  std::string p = req.Query(key);
  RETURN_IF_ERROR(files::CheckPath(p));
  return p;
}

// GET …/archive?path=a&path=b: the paths, checked. Each is named in the archive after its last
// component (as a one-path archive names it), so those names must differ, and "/" — whose
// entries have no name of their own — cannot stand beside others.
Result<std::vector<std::string>> ArchivePaths(const ApiRequest& req) {
  constexpr size_t kMaxArchivePaths = 64;
  auto it = req.query.find("path");
  if (it == req.query.end()) return std::vector<std::string>();
  const std::vector<std::string>& paths = it->second;
  if (paths.size() > kMaxArchivePaths)
    return InvalidArgument(
        fmt::format("at most {} paths in one archive, got {}", kMaxArchivePaths, paths.size()));
  if (paths.size() < 2) return paths;
  std::map<std::string, size_t> by_name;
  std::vector<std::string> shown;
  for (size_t i = 0; i < paths.size(); ++i) {
    Status ok = files::CheckPath(paths[i]);
    if (!ok.ok()) return ok.WithContext(fmt::format("path[{}]", i));
    shown.push_back(files::ShownPath(paths[i]));
    if (shown[i] == "/")
      return InvalidArgument(fmt::format(
          "path[{}] '{}' is the root: it cannot be archived beside other paths (archive it "
          "alone)",
          i, paths[i]));
    for (size_t j = 0; j < i; ++j)
      if (shown[j] == shown[i])
        return InvalidArgument(
            fmt::format("path[{}] '{}' is path[{}] again ({})", i, paths[i], j, shown[i]));
    std::string name = shown[i].substr(shown[i].rfind('/') + 1);
    if (auto [at, fresh] = by_name.emplace(name, i); !fresh)
      return InvalidArgument(
          fmt::format("path[{}] '{}' and path[{}] '{}' would both be '{}' in the archive",
                      at->second, paths[at->second], i, paths[i], name));
  }
  return paths;
}

// "0644", "644", "755" (octal) or a JSON integer.
Result<uint32_t> ParseMode(std::string_view text) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v > 07777)
    return InvalidArgument(
        fmt::format("mode '{}' must be octal permission bits such as 0644", text));
  return v;
}

Result<std::optional<uint32_t>> ModeField(const json::object& body) {
  const json::value* m = FieldReader(body).Raw("mode");
  if (!m || m->is_null()) return std::optional<uint32_t>();
  if (m->is_string()) {
    ASSIGN_OR_RETURN(uint32_t v, ParseMode(std::string(m->as_string())));
    return std::optional<uint32_t>(v);
  }
  if (m->is_int64() && m->as_int64() >= 0 && m->as_int64() <= 07777)
    return std::optional<uint32_t>(static_cast<uint32_t>(m->as_int64()));
  return InvalidArgument("mode must be an octal string such as \"0755\"");
}

// Streams a download or an archive to the client.
class SourceStream final : public BodyStream {
 public:
  SourceStream(std::unique_ptr<controller::ByteSource> source, std::string shown,
               std::string session)
      : source_(std::move(source)), shown_(std::move(shown)), session_(std::move(session)) {}
  std::optional<std::string> Next() override {
    if (done_) return std::nullopt;
    auto piece = source_->Next();
    if (!piece.ok()) {
      // The status line is gone; the client sees a body (or an archive) without its end.
      LOG_SESSION_WARN(session_, "sending {}: {}", shown_, piece.status().ToString());
      done_ = true;
      return std::nullopt;
    }
    if (!*piece) done_ = true;
    return std::move(*piece);
  }
  void Cancel() override { source_->Cancel(); }

 private:
  std::unique_ptr<controller::ByteSource> source_;
  std::string shown_, session_;
  bool done_ = false;
};

// Watch streams open at once, server-wide: each holds an inotify instance, of which a host has
// 128 per user by default (fs.inotify.max_user_instances), shared with everything else root runs.
constexpr int kMaxWatchStreams = 64;

// GET …/files/watch: Server-Sent Events, one per change.
class WatchStream final : public BodyStream {
 public:
  WatchStream(std::unique_ptr<controller::FileWatch> watcher, std::string shown,
              std::shared_ptr<std::atomic<int>> open)
      : watcher_(std::move(watcher)), shown_(std::move(shown)), open_(std::move(open)) {}
  ~WatchStream() override { open_->fetch_sub(1); }

  std::optional<std::string> Next() override {
    if (!started_) {
      started_ = true;
      // The first bytes tell the client the watch is in place: changes after them are seen.
      return fmt::format("retry: 2000\nevent: ready\ndata: {}\n\n",
                         json::serialize(json::object{{"path", shown_}}));
    }
    auto deadline = std::chrono::steady_clock::now() + kMaxStreamSilence;
    while (!cancelled_ && !watcher_->gone()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return std::string(": ping\n\n");
      auto events = watcher_->Wait(left);
      if (!events.ok()) return std::nullopt;
      if (events->empty()) continue;
      std::string chunk;
      for (const auto& e : *events) {
        json::object o;
        o["type"] = e.type;
        o["path"] = e.path;
        if (!e.from.empty()) o["from"] = e.from;
        o["directory"] = e.directory;
        chunk += fmt::format("event: {}\ndata: {}\n\n", e.type, json::serialize(o));
      }
      return chunk;
    }
    return std::nullopt;
  }
  void Cancel() override {
    cancelled_ = true;
    watcher_->Cancel();
  }

 private:
  std::unique_ptr<controller::FileWatch> watcher_;
  std::string shown_;
  std::shared_ptr<std::atomic<int>> open_;
  std::atomic<bool> cancelled_{false};
  bool started_ = false;
};

struct ByteRange {
  uint64_t start = 0;
  uint64_t length = 0;
};
// Parses a single "bytes=a-b", "bytes=a-" or "bytes=-n" range against `size`. nullopt: no range
// that we honour (absent, several, malformed: the whole file is sent, as RFC 9110 allows);
// an error: unsatisfiable (416).
Result<std::optional<ByteRange>> ParseRange(std::string_view h, uint64_t size) {
  if (h.empty() || !h.starts_with("bytes=") || h.find(',') != std::string_view::npos)
    return std::optional<ByteRange>();
  std::string_view spec = h.substr(6);
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return std::optional<ByteRange>();
  auto num = [](std::string_view t, uint64_t* v) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *v);
    return !t.empty() && ec == std::errc() && p == t.data() + t.size();
  };
  std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  uint64_t first = 0, last = 0;
  ByteRange r;
  if (a.empty()) {
    if (!num(b, &last)) return std::optional<ByteRange>();
    if (last == 0 || size == 0) return InvalidArgument("range not satisfiable");
    r.length = std::min(last, size);
    r.start = size - r.length;
    return std::optional<ByteRange>(r);
  }
  if (!num(a, &first)) return std::optional<ByteRange>();
  if (b.empty()) {
    last = size ? size - 1 : 0;
  } else if (!num(b, &last) || last < first) {
    return std::optional<ByteRange>();
  }
  if (first >= size) return InvalidArgument("range not satisfiable");
  last = std::min(last, size - 1);
  r.start = first;
  r.length = last - first + 1;
  return std::optional<ByteRange>(r);
}

ApiResponse GetFiles(SessionService& service, const RouteContext& c) {
  const ApiRequest& req = c.request;
  Result<SandboxFiles> sandbox = OpenFiles(service, c);
  if (!sandbox.ok()) return ApiResponse::Error(sandbox.status());
  Result<std::string> path = PathParam(req, "path", false);
  if (!path.ok()) return ApiResponse::Error(path.status());
  // A directory (a final symlink followed, as ls does) lists; anything else is read.
  Result<controller::FileDownload> f = sandbox->OpenRead(*path);
  if (!f.ok()) return ApiResponse::Error(f.status());
  if (f->directory()) {
    return Respond(200, [&]() -> Result<json::value> {
      ASSIGN_OR_RETURN(int64_t depth, QueryInt(req, "depth", 1, 1, kMaxListDepth));
      ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", kDefaultListLimit, 1, kMaxListLimit));
      ASSIGN_OR_RETURN(files::Listing l,
                       sandbox->List(*path, static_cast<int>(depth), static_cast<size_t>(limit)));
      json::array entries;
      for (const auto& e : l.entries) entries.emplace_back(files::ToJson(e));
      json::object o;
      o["path"] = files::ShownPath(*path);
      o["entries"] = std::move(entries);
      o["truncated"] = l.truncated;
      return json::value(std::move(o));
    });
  }
  const uint64_t size = f->size();
  Result<std::optional<ByteRange>> range = ParseRange(req.Header("range"), size);
  if (!range.ok()) {
    ApiResponse r = ApiResponse::Error(InvalidArgument(
        fmt::format("range '{}' is not satisfiable for {} bytes", req.Header("range"), size)));
    r.status = 416;
    r.headers.emplace_back("Content-Range", fmt::format("bytes */{}", size));
    return r;
  }
  ApiResponse r;
  r.status = 200;
  r.content_type = "application/octet-stream";
  r.headers.emplace_back("Accept-Ranges", "bytes");
  uint64_t start = 0, length = size;
  if (*range) {
    start = (*range)->start;
    length = (*range)->length;
    r.status = 206;
    r.headers.emplace_back("Content-Range",
                           fmt::format("bytes {}-{}/{}", start, start + length - 1, size));
  }
  Result<std::unique_ptr<controller::ByteSource>> source = f->Range(start, length);
  if (!source.ok()) return ApiResponse::Error(source.status());
  RecordFile(service, *sandbox, c, "file.download", *path,
             json::object{{"bytes", static_cast<int64_t>(length)}});
  r.stream_length = length;
  r.stream = std::make_shared<SourceStream>(std::move(*source), files::ShownPath(*path),
                                            sandbox->session().id);
  return r;
}

using OpenWatches = std::shared_ptr<std::atomic<int>>;

// GET …/files/watch: the changes under ?path= as SSE, while fewer than kMaxWatchStreams are open.
ApiResponse WatchFiles(SessionService& service, const OpenWatches& open_watches,
                       const RouteContext& c) {
  const ApiRequest& req = c.request;
  Result<SandboxFiles> sandbox = OpenFiles(service, c);
  if (!sandbox.ok()) return ApiResponse::Error(sandbox.status());
  Result<std::string> path = PathParam(req, "path", false);
  if (!path.ok()) return ApiResponse::Error(path.status());
  Result<bool> recursive = QueryBool(req, "recursive", false);
  if (!recursive.ok()) return ApiResponse::Error(recursive.status());
  if (open_watches->fetch_add(1) >= kMaxWatchStreams) {
    open_watches->fetch_sub(1);
    return ApiResponse::Error(ResourceExhausted(
        fmt::format("{} file watches are open, the most this server allows; try again later",
                    kMaxWatchStreams)));
  }
  auto watcher = sandbox->Watch(*path, *recursive);
  if (!watcher.ok()) {
    open_watches->fetch_sub(1);
    return ApiResponse::Error(watcher.status());
  }
  ApiResponse r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream =
      std::make_shared<WatchStream>(std::move(*watcher), files::ShownPath(*path), open_watches);
  return r;
}

// GET …/files/stat.
Result<json::value> StatFile(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(SandboxFiles sandbox, OpenFiles(service, c));
  ASSIGN_OR_RETURN(std::string path, PathParam(c.request, "path", false));
  ASSIGN_OR_RETURN(files::Entry e, sandbox.Stat(path));
  return json::value(files::ToJson(e));
}

// The request's streamed body as the controller reads it; none reads as empty.
controller::BodyReadFn BodyReader(const ApiRequest& req) {
  BodySource* body = req.body_source.get();
  return [body](char* buf, size_t n) -> Result<size_t> {
    if (!body) return size_t{0};
    return body->Read(buf, n);
  };
}

// PUT …/files: the body written to ?path=; 201 when the file is new.
ApiResponse PutFile(SessionService& service, const RouteContext& c) {
  const ApiRequest& req = c.request;
  bool created = false;
  ApiResponse r = Respond(200, [&]() -> Result<json::value> {
    ASSIGN_OR_RETURN(SandboxFiles sandbox, OpenFiles(service, c));
    ASSIGN_OR_RETURN(std::string path, PathParam(req, "path", true));
    files::WriteOptions opts;
    if (req.HasQuery("mode")) {
      ASSIGN_OR_RETURN(uint32_t mode, ParseMode(req.Query("mode")));
      opts.mode = mode;
    }
    ASSIGN_OR_RETURN(opts.parents, QueryBool(req, "parents", false));
    ASSIGN_OR_RETURN(controller::WrittenFile w, sandbox.Write(path, opts, BodyReader(req)));
    created = w.created;
    RecordFile(service, sandbox, c, "file.upload", path,
               json::object{{"bytes", static_cast<int64_t>(w.entry.size)}, {"created", created}});
    return json::value(files::ToJson(w.entry));
  });
  if (created && r.status == 200) r.status = 201;
  return r;
}

// DELETE …/files.
Result<json::value> DeleteFile(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(SandboxFiles sandbox, OpenFiles(service, c));
  ASSIGN_OR_RETURN(std::string path, PathParam(c.request, "path", true));
  ASSIGN_OR_RETURN(bool recursive, QueryBool(c.request, "recursive", false));
  RETURN_IF_ERROR(sandbox.Remove(path, recursive));
  RecordFile(service, sandbox, c, "file.delete", path, json::object{{"recursive", recursive}});
  json::object o;
  o["path"] = files::ShownPath(path);
  o["deleted"] = true;
  return json::value(std::move(o));
}

// A session's files and the request's JSON body, for the routes that take one.
struct FilesCall {
  SandboxFiles sandbox;
  json::object body;
};

Result<FilesCall> OpenWithBody(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(SandboxFiles sandbox, OpenFiles(service, c));
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(c.request.body));
  return FilesCall{std::move(sandbox), std::move(body)};
}

// POST …/files/mkdir {path, mode?, parents?}.
Result<json::value> MakeDir(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(FilesCall call, OpenWithBody(service, c));
  const json::object& body = call.body;
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({"path", "mode", "parents"}));
  std::optional<std::string> path;
  RETURN_IF_ERROR(r.String("path", &path, files::kMaxPath + 1));
  if (!path) return InvalidArgument("path is required");
  RETURN_IF_ERROR(files::CheckPath(*path));
  std::optional<bool> parents;
  RETURN_IF_ERROR(r.Bool("parents", &parents));
  ASSIGN_OR_RETURN(std::optional<uint32_t> mode, ModeField(body));
  ASSIGN_OR_RETURN(files::Entry e,
                   call.sandbox.MakeDir(*path, mode.value_or(0755), parents.value_or(false)));
  RecordFile(service, call.sandbox, c, "file.mkdir", *path);
  return json::value(files::ToJson(e));
}

// POST …/files/move {from, to, overwrite?}.
Result<json::value> MoveFile(SessionService& service, const RouteContext& c) {
  ASSIGN_OR_RETURN(FilesCall call, OpenWithBody(service, c));
  FieldReader r(call.body);
  RETURN_IF_ERROR(r.RejectUnknown({"from", "to", "overwrite"}));
  std::optional<std::string> from, to;
  RETURN_IF_ERROR(r.String("from", &from, files::kMaxPath + 1));
  RETURN_IF_ERROR(r.String("to", &to, files::kMaxPath + 1));
  if (!from || !to) return InvalidArgument("from and to are required");
  RETURN_IF_ERROR(files::CheckPath(*from));
  RETURN_IF_ERROR(files::CheckPath(*to));
  std::optional<bool> overwrite;
  RETURN_IF_ERROR(r.Bool("overwrite", &overwrite));
  ASSIGN_OR_RETURN(files::Entry e, call.sandbox.Move(*from, *to, overwrite.value_or(false)));
  RecordFile(service, call.sandbox, c, "file.rename", *from,
             json::object{{"to", files::ShownPath(*to)}});
  return json::value(files::ToJson(e));
}

// The Content-Disposition of an archive of `shown`: its last component, quotes, backslashes and
// control characters made '_', and the compression's extension.
std::string AttachmentHeader(const std::string& shown, files::Compression comp) {
  std::string base = shown == "/" ? "root" : shown.substr(shown.rfind('/') + 1);
  const char* ext = comp == files::Compression::kGzip   ? ".tar.gz"
                    : comp == files::Compression::kZstd ? ".tar.zst"
                                                        : ".tar";
  std::string filename;
  for (char ch : base)
    filename += (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 32) ? '_' : ch;
  return fmt::format("attachment; filename=\"{}{}\"", filename, ext);
}

// GET …/archive: ?path= (one or several) as a tar stream, or why not.
Result<ApiResponse> ArchiveResponse(SessionService& service, const RouteContext& c) {
  const ApiRequest& req = c.request;
  ASSIGN_OR_RETURN(SandboxFiles sandbox, OpenFiles(service, c));
  ASSIGN_OR_RETURN(std::string path, PathParam(req, "path", true));
  ASSIGN_OR_RETURN(files::Compression comp, files::ParseCompression(req.Query("compress")));
  std::string shown = files::ShownPath(path);
  ASSIGN_OR_RETURN(std::vector<std::string> several, ArchivePaths(req));
  // With several paths the archive holds each under its last component; it is named after the
  // session.
  if (several.size() > 1) shown = "/" + sandbox.session().name;
  ASSIGN_OR_RETURN(
      std::unique_ptr<controller::ByteSource> source,
      several.size() > 1 ? sandbox.ArchiveMany(several, comp) : sandbox.Archive(path, comp));
  ApiResponse r;
  r.content_type = std::string(files::ContentType(comp));
  r.headers.emplace_back("Content-Disposition", AttachmentHeader(shown, comp));
  r.stream = std::make_shared<SourceStream>(std::move(source), shown, c.audit.object_id);
  return r;
}

ApiResponse GetArchive(SessionService& service, const RouteContext& c) {
  Result<ApiResponse> r = ArchiveResponse(service, c);
  if (!r.ok()) return ApiResponse::Error(r.status());
  return std::move(*r);
}

// PUT …/archive: the body, a tar, extracted under ?path= within ?max_bytes= and ?max_entries=.
Result<json::value> PutArchive(SessionService& service, const RouteContext& c) {
  const ApiRequest& req = c.request;
  ASSIGN_OR_RETURN(SandboxFiles sandbox, OpenFiles(service, c));
  ASSIGN_OR_RETURN(std::string path, PathParam(req, "path", true));
  ASSIGN_OR_RETURN(bool parents, QueryBool(req, "parents", false));
  files::ExtractLimits limits;
  ASSIGN_OR_RETURN(int64_t max_bytes,
                   QueryInt(req, "max_bytes", static_cast<int64_t>(limits.max_bytes), 1,
                            static_cast<int64_t>(limits.max_bytes)));
  ASSIGN_OR_RETURN(int64_t max_entries,
                   QueryInt(req, "max_entries", static_cast<int64_t>(limits.max_entries), 1,
                            static_cast<int64_t>(limits.max_entries)));
  limits.max_bytes = static_cast<uint64_t>(max_bytes);
  limits.max_entries = static_cast<uint64_t>(max_entries);
  ASSIGN_OR_RETURN(controller::Extracted ex,
                   sandbox.Extract(path, parents, limits, BodyReader(req)));
  json::object o;
  o["path"] = files::ShownPath(path);
  o["entries"] = ex.entries;
  o["files"] = ex.files;
  o["bytes"] = ex.bytes;
  return json::value(std::move(o));
}

}  // namespace

void AddFileRoutes(Router& router, SessionService& service) {
  auto open_watches = std::make_shared<std::atomic<int>>(0);
  router.Add("GET", "/v1/sessions/{id}/files/watch", Spec("files.watch", /*audit_reads=*/true),
             [&service, open_watches](const RouteContext& c) {
               return WatchFiles(service, open_watches, c);
             });
  router.Add("GET", "/v1/sessions/{id}/files", Spec("files.read", /*audit_reads=*/true),
             OnService(service, GetFiles));
  router.Add("GET", "/v1/sessions/{id}/files/stat", Spec("files.stat"),
             JsonOnService(service, 200, StatFile));
  router.Add("PUT", "/v1/sessions/{id}/files", Spec("files.write", false, /*stream_body=*/true),
             OnService(service, PutFile));
  router.Add("DELETE", "/v1/sessions/{id}/files", Spec("files.delete"),
             JsonOnService(service, 200, DeleteFile));
  router.Add("POST", "/v1/sessions/{id}/files/mkdir", Spec("files.mkdir"),
             JsonOnService(service, 201, MakeDir));
  router.Add("POST", "/v1/sessions/{id}/files/move", Spec("files.move"),
             JsonOnService(service, 200, MoveFile));
  router.Add("GET", "/v1/sessions/{id}/archive", Spec("files.archive", /*audit_reads=*/true),
             OnService(service, GetArchive));
  router.Add("PUT", "/v1/sessions/{id}/archive", Spec("files.extract", false, /*stream_body=*/true),
             JsonOnService(service, 200, PutArchive));
}

}  // namespace hutch::api
