// envd's HTTP file transfer in the E2B API: GET /files?path= answers the file's bytes, POST
// /files writes files from a multipart/form-data body (a part per file, its filename the path
// when ?path= is absent) or, with Content-Type application/octet-stream, the body as the file
// at ?path=. Both through the controller's SandboxFiles facade.
#include <fmt/format.h>

#include "api/e2b_common.h"
#include "api/e2b_envd.h"
#include "controller/sandbox_files.h"

namespace hutch::api::e2b {

namespace {

// A download's bytes as the server sends them.
class DownloadStream : public BodyStream {
 public:
  explicit DownloadStream(std::unique_ptr<controller::ByteSource> source)
      : source_(std::move(source)) {}
  std::optional<std::string> Next() override {
    Result<std::optional<std::string>> piece = source_->Next();
    if (!piece.ok()) return std::nullopt;  // cut short: the length tells the client
    return *piece;
  }
  void Cancel() override { source_->Cancel(); }

 private:
  std::unique_ptr<controller::ByteSource> source_;
};

struct Part {
  std::string filename;
  std::string data;
};

std::string ParamOf(std::string_view header, std::string_view name) {
  std::string key = std::string(name) + "=";
  size_t pos = 0;
  while ((pos = header.find(key, pos)) != std::string_view::npos) {
    if (pos == 0 || header[pos - 1] == ' ' || header[pos - 1] == ';') break;
    pos += key.size();
  }
  if (pos == std::string_view::npos) return "";
  std::string_view v = header.substr(pos + key.size());
  if (!v.empty() && v.front() == '"') {
    size_t end = v.find('"', 1);
    return std::string(v.substr(1, end == std::string_view::npos ? v.size() - 1 : end - 1));
  }
  return std::string(v.substr(0, v.find(';')));
}

// The parts of a multipart/form-data body named "file".
Result<std::vector<Part>> ParseMultipart(std::string_view content_type, std::string_view body) {
  std::string boundary = ParamOf(content_type, "boundary");
  if (boundary.empty()) return InvalidArgument("the multipart body names no boundary");
  std::string delim = "--" + boundary;
  std::vector<Part> parts;
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return InvalidArgument("the multipart body has no parts");
  for (;;) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") return InvalidArgument("a multipart delimiter is malformed");
    pos += 2;
    size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string_view::npos)
      return InvalidArgument("a multipart part has no end of headers");
    std::string_view head = body.substr(pos, head_end - pos);
    size_t next = body.find("\r\n" + delim, head_end + 4);
    if (next == std::string_view::npos) return InvalidArgument("a multipart part is not closed");
    std::string disposition;
    for (size_t line = 0; line < head.size();) {
      size_t eol = head.find("\r\n", line);
      std::string_view h =
          head.substr(line, eol == std::string_view::npos ? head.npos : eol - line);
      std::string lower(h.substr(0, 20));
      for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (lower.starts_with("content-disposition:")) disposition = std::string(h.substr(20));
      if (eol == std::string_view::npos) break;
      line = eol + 2;
    }
    if (ParamOf(disposition, "name") == "file")
      parts.push_back(Part{ParamOf(disposition, "filename"),
                           std::string(body.substr(head_end + 4, next - head_end - 4))});
    pos = next + 2;
  }
  return parts;
}

json::object EntryJson(const files::Entry& e) {
  json::object o;
  o["name"] = e.name;
  o["type"] = e.type == files::FileType::kDirectory ? "dir" : "file";
  o["path"] = e.path;
  return o;
}

Result<files::Entry> WriteOne(controller::SandboxFiles& files, const std::string& path,
                              std::string_view data) {
  files::WriteOptions opts;
  opts.parents = true;
  size_t offset = 0;
  auto read = [&](char* buf, size_t n) -> Result<size_t> {
    size_t take = std::min(n, data.size() - offset);
    std::memcpy(buf, data.data() + offset, take);
    offset += take;
    return take;
  };
  ASSIGN_OR_RETURN(controller::WrittenFile w, files.Write(path, opts, read));
  return w.entry;
}

}  // namespace

ApiResponse ServeFileDownload(EnvdDeps& deps, const EnvdCall& call, const ApiRequest& request) {
  if (!request.HasQuery("path")) return Error(InvalidArgument("path is required"));
  std::string path = EnvdPath(request.Query("path"));
  auto files = controller::SandboxFiles::Open(deps.service, call.who, call.session_id, nullptr);
  if (!files.ok()) return Error(files.status());
  auto download = files->OpenRead(path);
  if (!download.ok()) return Error(download.status());
  if (download->directory()) return Error(InvalidArgument(fmt::format("{} is a directory", path)));
  uint64_t size = download->size();
  auto source = download->Range(0, size);
  if (!source.ok()) return Error(source.status());
  ApiResponse r;
  r.status = 200;
  r.content_type = "application/octet-stream";
  r.stream = std::make_shared<DownloadStream>(std::move(*source));
  r.stream_length = size;
  return r;
}

ApiResponse ServeFileUpload(EnvdDeps& deps, const EnvdCall& call, const ApiRequest& request) {
  auto files = controller::SandboxFiles::Open(deps.service, call.who, call.session_id, nullptr);
  if (!files.ok()) return Error(files.status());
  if (std::string enc = request.Header("content-encoding"); !enc.empty() && enc != "identity")
    return Error(InvalidArgument(
        fmt::format("uploads with Content-Encoding {} are not supported; send the bytes", enc)));
  std::string content_type = request.Header("content-type");
  std::string query_path = request.Query("path");
  json::array written;
  if (content_type.starts_with("multipart/form-data")) {
    auto parts = ParseMultipart(content_type, request.body);
    if (!parts.ok()) return Error(parts.status());
    for (const Part& part : *parts) {
      std::string path = EnvdPath(!query_path.empty() ? query_path : part.filename);
      auto e = WriteOne(*files, path, part.data);
      if (!e.ok()) return Error(e.status());
      written.emplace_back(EntryJson(*e));
    }
  } else {
    if (query_path.empty()) return Error(InvalidArgument("path is required"));
    auto e = WriteOne(*files, EnvdPath(query_path), request.body);
    if (!e.ok()) return Error(e.status());
    written.emplace_back(EntryJson(*e));
  }
  if (written.empty()) return Error(InvalidArgument("the body holds no file"));
  return ApiResponse::Json(200, written);
}

}  // namespace hutch::api::e2b
