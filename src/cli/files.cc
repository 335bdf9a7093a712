// hutch cp, ls and cat: files in and out of sessions. Files travel as their bytes, directories as
// a tar stream (built and taken apart here with src/files, the same code the server uses), both
// streamed: memory stays flat whatever the size. A progress bar shows on a terminal for
// transfers over a few MB.
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/tar_producer.h"
#include "files/archive.h"
#include "files/ops.h"
#include "files/tar.h"

namespace hutch::cli {

namespace {

// Transfers smaller than this show no progress bar.
constexpr uint64_t kProgressMinBytes = 4 << 20;

struct RemotePath {
  std::string session;
  std::string path;
};

// "ID:/path" (or "name:path") names a path in a session; anything else is local. A local path
// with a ':' in it can be written ./a:b.
std::optional<RemotePath> ParseRemote(std::string_view arg) {
  if (arg.starts_with("/") || arg.starts_with(".")) return std::nullopt;
  size_t colon = arg.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  RemotePath r;
  r.session = std::string(arg.substr(0, colon));
  r.path = std::string(arg.substr(colon + 1));
  if (r.path.empty()) r.path = "/";
  return r;
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "12.3 MiB / 100.0 MiB  12%  45.6 MiB/s" on one line of stderr, redrawn at most every 100 ms.
class Progress {
 public:
  Progress(std::ostream& err, bool terminal, std::optional<uint64_t> total, std::string label)
      : err_(err),
        terminal_(terminal),
        total_(total),
        label_(std::move(label)),
        start_(std::chrono::steady_clock::now()),
        last_(start_) {}
  void Add(uint64_t n) {
    done_ += n;
    if (!terminal_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    if (!shown_ && (total_ ? *total_ : done_) < kProgressMinBytes) return;
    Draw(now);
  }
  void Done() {
    if (!shown_) return;
    Draw(std::chrono::steady_clock::now());
    err_ << "\n" << std::flush;
  }

 private:
  static std::string Size(uint64_t b) {
    if (b >= (uint64_t{1} << 30)) return fmt::format("{:.1f} GiB", b / double(uint64_t{1} << 30));
    if (b >= (1 << 20)) return fmt::format("{:.1f} MiB", b / double(1 << 20));
    return fmt::format("{:.1f} KiB", b / 1024.0);
  }
  void Draw(std::chrono::steady_clock::time_point now) {
    shown_ = true;
    double secs = std::chrono::duration<double>(now - start_).count();
    std::string rate = secs > 0 ? Size(static_cast<uint64_t>(done_ / secs)) + "/s" : "";
    std::string line;
    if (total_ && *total_ > 0) {
      int pct = static_cast<int>(std::min<uint64_t>(100, done_ * 100 / *total_));
      int filled = pct / 5;
      line = fmt::format("{} [{}{}] {:3}%  {} / {}  {}", label_, std::string(filled, '#'),
                         std::string(20 - filled, ' '), pct, Size(done_), Size(*total_), rate);
    } else {
      line = fmt::format("{}  {}  {}", label_, Size(done_), rate);
    }
    err_ << "\r" << line << "\x1b[K" << std::flush;
  }
  std::ostream& err_;
  bool terminal_;
  std::optional<uint64_t> total_;
  std::string label_;
  uint64_t done_ = 0;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

bool StderrIsTerminal(const Io& io) { return io.err == &std::cerr && isatty(STDERR_FILENO); }

std::string FilesTarget(const RemotePath& r, std::string_view route, std::string extra = "") {
  return fmt::format("/v1/sessions/{}/{}?path={}{}", client::QueryEscape(r.session), route,
                     client::QueryEscape(r.path), extra);
}

Result<json::object> RemoteStat(client::ApiClient& api, const RemotePath& r) {
  return api.Call("GET", FilesTarget(r, "files/stat"));
}

Status CheckAnswer(const Result<client::HttpResponse>& res) {
  if (!res.ok()) return res.status();
  return client::StatusFromResponse(*res);
}

// Sum of the sizes of the regular files below `dir`, for the progress bar.
uint64_t g_tree_bytes = 0;
int AddSize(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F && S_ISREG(st->st_mode)) g_tree_bytes += static_cast<uint64_t>(st->st_size);
  return 0;
}
uint64_t TreeBytes(const std::string& dir) {
  g_tree_bytes = 0;
  nftw(dir.c_str(), AddSize, 64, FTW_PHYS);
  return g_tree_bytes;
}

Status Upload(client::ApiClient& api, const Io& io, const std::string& local, RemotePath remote) {
  struct stat st;
  if (stat(local.c_str(), &st) != 0) return ErrnoError(fmt::format("cannot read {}", local), errno);
  bool terminal = StderrIsTerminal(io);
  if (S_ISDIR(st.st_mode)) {
    // A directory travels as a tar stream and lands inside the destination (created if need
    // be), as `cp -r dir DEST/` does.
    files::Root host;
    host.fd = UniqueFd(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    char abs[PATH_MAX];
    if (!realpath(local.c_str(), abs)) return ErrnoError("realpath " + local, errno);
    ASSIGN_OR_RETURN(auto tar, files::TreeTar::Open(host, abs));
    Progress progress(*io.err, terminal, TreeBytes(abs), BaseName(local));
    client::HttpClient::Producer produce = TarProducer(*tar, [&](size_t n) { progress.Add(n); });
    auto res = api.http().Transfer("PUT", FilesTarget(remote, "archive", "&parents=true"),
                                   {{"Content-Type", "application/x-tar"}}, std::nullopt, produce,
                                   nullptr);
    progress.Done();
    return CheckAnswer(res);
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument(local + " is not a file or a directory");
  // Into an existing directory: under the file's own name.
  auto dst = RemoteStat(api, remote);
  if (remote.path.back() == '/' || (dst.ok() && JsonString(*dst, "type") == "directory"))
    remote.path = files::JoinPath(remote.path, BaseName(local));
  UniqueFd fd(open(local.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + local, errno);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  Progress progress(*io.err, terminal, size, BaseName(local));
  client::HttpClient::Producer produce = [&](char* buf, size_t cap) -> Result<size_t> {
    ssize_t n;
    do {
      n = read(fd.get(), buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError("read " + local, errno);
    progress.Add(static_cast<uint64_t>(n));
    return static_cast<size_t>(n);
  };
  auto res = api.http().Transfer(
      "PUT",
      FilesTarget(remote, "files", fmt::format("&parents=true&mode={:o}", st.st_mode & 0777)),
      {{"Content-Type", "application/octet-stream"}}, size, produce, nullptr);
  progress.Done();
  return CheckAnswer(res);
}

Status Download(client::ApiClient& api, const Io& io, const RemotePath& remote,
                const std::string& local) {
  ASSIGN_OR_RETURN(json::object st, RemoteStat(api, remote));
  bool terminal = StderrIsTerminal(io);
  struct stat lst;
  bool local_is_dir = stat(local.c_str(), &lst) == 0 && S_ISDIR(lst.st_mode);
  if (JsonString(st, "type") == "directory") {
    if (!local_is_dir && mkdir(local.c_str(), 0755) != 0)
      return ErrnoError("mkdir " + local, errno);
    files::Root host;
    host.fd = UniqueFd(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    UniqueFd dest(open(local.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dest) return ErrnoError("open " + local, errno);
    files::ExtractLimits limits;
    limits.max_bytes = ~uint64_t{0};
    limits.max_entries = ~uint64_t{0};
    limits.set_owners = geteuid() == 0;
    files::Extractor ex(host, std::move(dest), local, limits);
    files::TarReader reader(ex);
    Status failed;
    Progress progress(*io.err, terminal, std::nullopt, BaseName(remote.path));
    auto res = api.http().Transfer("GET", FilesTarget(remote, "archive"), {}, std::nullopt, nullptr,
                                   [&](std::string_view data) {
                                     progress.Add(data.size());
                                     failed = reader.Feed(data);
                                     return failed.ok();
                                   });
    progress.Done();
    RETURN_IF_ERROR(CheckAnswer(res));
    RETURN_IF_ERROR(failed);
    if (!reader.ended()) return Unavailable("the archive from the server ended early");
    return ex.Finish();
  }
  std::string target = local_is_dir ? local + "/" + BaseName(remote.path) : local;
  int mode = 0644;
  if (auto m = JsonString(st, "mode"); !m.empty())
    mode = static_cast<int>(std::stoul(m, nullptr, 8));
  UniqueFd fd(open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0777));
  if (!fd) return ErrnoError("create " + target, errno);
  uint64_t size = st.contains("size") ? st.at("size").to_number<uint64_t>() : 0;
  Progress progress(*io.err, terminal, size, BaseName(remote.path));
  Status failed;
  auto res = api.http().Transfer("GET", FilesTarget(remote, "files"), {}, std::nullopt, nullptr,
                                 [&](std::string_view data) {
                                   progress.Add(data.size());
                                   while (!data.empty()) {
                                     ssize_t n = write(fd.get(), data.data(), data.size());
                                     if (n < 0 && errno == EINTR) continue;
                                     if (n < 0) {
                                       failed = ErrnoError("write " + target, errno);
                                       return false;
                                     }
                                     data.remove_prefix(static_cast<size_t>(n));
                                   }
                                   return true;
                                 });
  progress.Done();
  RETURN_IF_ERROR(CheckAnswer(res));
  return failed;
}

void AddCpCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "cp");
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->hints[Code::kNotFound] = "`hutch ls ID:/dir` lists the files of a session's directory";
  CLI::App* sub = AddCommand(
      app, "cp",
      "Copy files and directories into or out of a session (SRC DEST, one of them ID:PATH); "
      "directories travel as a tar stream and land inside DEST",
      "hutch cp ./dir dev:/work   ·   hutch cp dev:/out/result.csv .");
  sub->add_option("SRC DEST", *args, "ID:PATH for a path in a session, else a local path")
      ->required()
      ->expected(2);
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, args, exit_code] {
    const std::string& src = (*args)[0];
    const std::string& dst = (*args)[1];
    auto rsrc = ParseRemote(src), rdst = ParseRemote(dst);
    if (rsrc.has_value() == rdst.has_value()) {
      *exit_code = cmd->UsageError(InvalidArgument(
          "exactly one of SRC and DEST must be in a session (ID:PATH), the other local"));
      return;
    }
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    Status st = rdst ? Upload(*api, cmd->io, src, *rdst) : Download(*api, cmd->io, *rsrc, dst);
    *exit_code = st.ok() ? kExitOk : cmd->Fail(st);
  });
}

}  // namespace

int ListSessionFiles(Command& cmd, const std::string& arg, int depth) {
  cmd.hints[Code::kNotFound] = "`hutch ls ID:/` lists the top of a session's files";
  auto remote = ParseRemote(arg);
  if (!remote) return cmd.UsageError(InvalidArgument(fmt::format("'{}' is not ID:PATH", arg)));
  auto api = cmd.Connect();
  if (!api.ok()) return cmd.Fail(api.status());
  auto st = RemoteStat(*api, *remote);
  if (!st.ok()) return cmd.Fail(st.status());
  json::array entries;
  if (JsonString(*st, "type") == "directory") {
    auto listing = api->Call("GET", FilesTarget(*remote, "files", fmt::format("&depth={}", depth)));
    if (!listing.ok()) return cmd.Fail(listing.status());
    if (cmd.flags.json()) {
      *cmd.io.out << PrettyJson(*listing);
      return kExitOk;
    }
    entries = (*listing)["entries"].as_array();
  } else {
    if (cmd.flags.json()) {
      *cmd.io.out << PrettyJson(*st);
      return kExitOk;
    }
    entries.push_back(*st);
  }
  Table table({"MODE", "OWNER", "SIZE", "MODIFIED", "NAME"});
  std::string base = files::ShownPath(remote->path);
  for (const auto& v : entries) {
    const json::object& e = v.as_object();
    std::string type = JsonString(e, "type");
    std::string name = JsonString(e, "path");
    if (name.rfind(base + "/", 0) == 0) name = name.substr(base == "/" ? 1 : base.size() + 1);
    if (type == "directory") name += "/";
    if (type == "symlink") name += " -> " + JsonString(e, "target");
    std::string mtime = JsonString(e, "mtime").substr(0, 19);
    if (mtime.size() == 19) mtime[10] = ' ';
    table.AddRow(
        {JsonString(e, "mode"),
         fmt::format("{}:{}", e.at("uid").to_number<int64_t>(), e.at("gid").to_number<int64_t>()),
         type == "directory" ? "-" : FormatBytes(e.at("size").to_number<int64_t>()), mtime, name});
  }
  table.Print(*cmd.io.out);
  return kExitOk;
}

namespace {

void AddCatCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "cat");
  auto args = std::make_shared<std::vector<std::string>>();
  cmd->hints[Code::kNotFound] = "`hutch ls ID:/dir` lists the files of a session's directory";
  CLI::App* sub = AddCommand(app, "cat", "Print files in a session (ID:PATH) to stdout",
                             "hutch cat dev:/work/result.csv");
  sub->add_option("ID:PATH", *args, "files in sessions")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, args, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    int code = kExitOk;
    for (const std::string& arg : *args) {
      auto remote = ParseRemote(arg);
      if (!remote) {
        code = cmd->UsageError(InvalidArgument(fmt::format("'{}' is not ID:PATH", arg)));
        continue;
      }
      auto st = RemoteStat(*api, *remote);
      if (st.ok() && JsonString(*st, "type") == "directory") {
        code = cmd->Fail(InvalidArgument(fmt::format("{}: is a directory", arg)));
        continue;
      }
      auto res = api->http().Transfer("GET", FilesTarget(*remote, "files"), {}, std::nullopt,
                                      nullptr, [&](std::string_view data) {
                                        cmd->io.out->write(
                                            data.data(), static_cast<std::streamsize>(data.size()));
                                        return static_cast<bool>(*cmd->io.out);
                                      });
      cmd->io.out->flush();
      if (Status s = CheckAnswer(res); !s.ok()) code = cmd->Fail(s.WithContext(arg));
    }
    *exit_code = code;
  });
}

}  // namespace

void AddFileCommands(CLI::App& app, int* exit_code, const Io& io) {
  AddCpCommand(app, exit_code, io);
  AddCatCommand(app, exit_code, io);
}

}  // namespace hutch::cli
