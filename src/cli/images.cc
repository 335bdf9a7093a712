// Image commands (image ls, get, rm, import, build), commit, and task get.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_commands.h"
#include "cli/tar_producer.h"
#include "common/time.h"
#include "common/unique_fd.h"
#include "files/archive.h"

namespace hutch::cli {

namespace {

bool ShowProgress(const Command& cmd) {
  return !cmd.flags.json() && cmd.io.err == &std::cerr && ::isatty(STDERR_FILENO);
}

int64_t Num(const json::object& o, const char* k) {
  const json::value* x = o.if_contains(k);
  return x && x->is_int64() ? x->get_int64() : 0;
}

void PrintImages(const Command& cmd, const json::array& items) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(json::object{{"images", items}});
    return;
  }
  Table t({"NAME", "SOURCE", "LAYERS", "SIZE", "CREATED", "USED BY"});
  TimePoint now = Now();
  for (const auto& v : items) {
    const json::object& i = v.as_object();
    std::optional<TimePoint> at = JsonTime(i, "created_at");
    size_t layers =
        i.if_contains("layers") && i.at("layers").is_array() ? i.at("layers").as_array().size() : 0;
    size_t used = i.if_contains("used_by") && i.at("used_by").is_array()
                      ? i.at("used_by").as_array().size()
                      : 0;
    bool builtin =
        i.if_contains("builtin") && i.at("builtin").is_bool() && i.at("builtin").get_bool();
    t.AddRow({JsonString(i, "name"), JsonString(i, "source"),
              builtin ? "-" : std::to_string(layers),
              builtin ? "-" : FormatBytes(Num(i, "size_bytes")),
              at ? FormatAgeSince(*at, now) + " ago" : "-", std::to_string(used)});
  }
  t.Print(*cmd.io.out);
}

void PrintImageDetail(const Command& cmd, const json::object& i) {
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(i);
    return;
  }
  std::ostream& out = *cmd.io.out;
  out << "name:     " << JsonString(i, "name") << "\n";
  out << "source:   " << JsonString(i, "source");
  if (!JsonString(i, "source_digest").empty()) out << " (" << JsonString(i, "source_digest") << ")";
  out << "\n";
  out << "size:     " << FormatBytes(Num(i, "size_bytes")) << "\n";
  out << "created:  " << (JsonString(i, "created_at").empty() ? "-" : JsonString(i, "created_at"))
      << "\n";
  out << "used by:  " << JsonStringList(i, "used_by") << "\n";
  if (const json::value* l = i.if_contains("layers"); l && l->is_array()) {
    out << "layers:\n";
    for (const auto& lv : l->as_array()) {
      const json::object& lo = lv.as_object();
      out << "  " << JsonString(lo, "digest") << "  " << FormatBytes(Num(lo, "size_bytes")) << "\n";
    }
  }
  if (const json::value* c = i.if_contains("config"); c && c->is_object()) {
    out << "env:      " << JsonStringList(c->as_object(), "env") << "\n";
    out << "cmd:      " << JsonStringList(c->as_object(), "cmd") << "\n";
  }
}

// Follows a task to its end: a progress line on a terminal, then the result (the image) or the
// task's error. Answers the exit code.
int WaitTask(const Command& cmd, client::ApiClient& api, json::object task) {
  const bool show = ShowProgress(cmd);
  std::string id = JsonString(task, "id");
  bool printed = false;
  for (;;) {
    std::string state = JsonString(task, "state");
    if (state == "succeeded" || state == "failed") break;
    if (show) {
      double p = 0;
      if (const json::value* v = task.if_contains("progress"); v && v->is_number())
        p = v->to_number<double>();
      int filled = static_cast<int>(p * 30);
      std::string msg = JsonString(task, "message");
      if (msg.size() > 60) msg = msg.substr(0, 57) + "...";
      std::cerr << fmt::format("\r\033[K[{}{}] {:3.0f}% {}", std::string(filled, '#'),
                               std::string(30 - filled, '.'), p * 100, msg)
                << std::flush;
      printed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto next = api.Call("GET", "/v1/tasks/" + client::QueryEscape(id));
    if (!next.ok()) {
      if (printed) std::cerr << "\r\033[K" << std::flush;
      return cmd.Fail(next.status());
    }
    task = std::move(*next);
  }
  if (printed) std::cerr << "\r\033[K" << std::flush;
  if (JsonString(task, "state") == "failed") {
    const json::value* e = task.if_contains("error");
    std::string code = "internal", message = "the task failed";
    if (e && e->is_object()) {
      code = JsonString(e->as_object(), "code");
      message = JsonString(e->as_object(), "message");
    }
    if (cmd.flags.json()) *cmd.io.out << PrettyJson(task);
    return cmd.Fail(Status(CodeFromName(code), message));
  }
  const json::value* result = task.if_contains("result");
  if (cmd.flags.json()) {
    *cmd.io.out << PrettyJson(task);
  } else if (result && result->is_object()) {
    PrintImageDetail(cmd, result->as_object());
    *cmd.io.out << "took:     " << JsonString(task, "message") << "\n";
  }
  return kExitOk;
}

// The archive to upload: a file as it is, a directory as a tar made here (an OCI layout, or a
// rootfs).
Result<json::object> UploadImage(Command& cmd, client::ApiClient& api, const std::string& name,
                                 const std::string& local, const std::string& format) {
  struct stat st;
  if (stat(local.c_str(), &st) != 0) return ErrnoError("cannot read " + local, errno);
  std::string target = fmt::format("/v1/images/{}/import?format={}", client::QueryEscape(name),
                                   client::QueryEscape(format));
  const bool show = ShowProgress(cmd);
  uint64_t sent = 0;
  auto tick = [&](size_t n) {
    sent += n;
    if (show && (sent >> 24) != ((sent - n) >> 24))
      std::cerr << fmt::format("\r\033[Kuploading {}", FormatBytes(static_cast<int64_t>(sent)))
                << std::flush;
  };
  std::string body;
  auto collect = [&](std::string_view d) {
    body.append(d);
    return true;
  };
  Result<client::HttpResponse> res = Internal("no upload");
  if (S_ISDIR(st.st_mode)) {
    // The directory as the root of the walk: its entries then carry no prefix, as a rootfs or
    // an OCI layout's files must.
    files::Root dir;
    dir.fd = UniqueFd(open(local.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir.fd) return ErrnoError("open " + local, errno);
    ASSIGN_OR_RETURN(auto tar, files::TreeTar::Open(dir, "/"));
    client::HttpClient::Producer produce = TarProducer(*tar, tick);
    res = api.http().Transfer("POST", target, {{"Content-Type", "application/x-tar"}}, std::nullopt,
                              produce, collect);
  } else {
    UniqueFd fd(open(local.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return ErrnoError("cannot read " + local, errno);
    client::HttpClient::Producer produce = [&](char* buf, size_t cap) -> Result<size_t> {
      ssize_t n;
      while ((n = read(fd.get(), buf, cap)) < 0 && errno == EINTR) {
      }
      if (n < 0) return ErrnoError("read " + local, errno);
      tick(static_cast<size_t>(n));
      return static_cast<size_t>(n);
    };
    res = api.http().Transfer("POST", target, {{"Content-Type", "application/x-tar"}},
                              static_cast<uint64_t>(st.st_size), produce, collect);
  }
  if (show) std::cerr << "\r\033[K" << std::flush;
  if (!res.ok()) return res.status();
  RETURN_IF_ERROR(client::StatusFromResponse(*res));
  if (res->body.empty() && !body.empty()) res->body = body;
  auto parsed = ParseJsonObject(res->body.empty() ? body : res->body);
  if (!parsed.ok())
    return Internal("the server's answer is not JSON: " + parsed.status().message());
  return *parsed;
}

// Starts a task with `start` and follows it to its end, or with `no_wait` prints it as it is now:
// its id (or the JSON with -o json). Answers the exit code.
int StartTask(Command& cmd, bool no_wait,
              const std::function<Result<json::object>(client::ApiClient& api)>& start) {
  auto api = cmd.Connect();
  if (!api.ok()) return cmd.Fail(api.status());
  auto task = start(*api);
  if (!task.ok()) return cmd.Fail(task.status());
  if (!no_wait) return WaitTask(cmd, *api, *task);
  *cmd.io.out << (cmd.flags.json() ? PrettyJson(*task) : JsonString(*task, "id") + "\n");
  return kExitOk;
}

void AddImageLsCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "image ls");
  CLI::App* sub = AddCommand(group, "ls", "List the images", "hutch image ls");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback(
      [cmd, exit_code] { ListAndPrint(*cmd, exit_code, "/v1/images", "images", PrintImages); });
}

void AddImageGetCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "image get");
  auto name = std::make_shared<std::string>();
  CLI::App* sub = AddCommand(group, "get", "Show an image: layers, size, config, sessions on it",
                             "hutch image get deb");
  sub->add_option("NAME", *name, "image name")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, name, exit_code] {
    auto r = cmd->CallOrFail(exit_code, "GET", "/v1/images/" + client::QueryEscape(*name));
    if (!r) return;
    PrintImageDetail(*cmd, *r);
    *exit_code = kExitOk;
  });
}

void AddImageRmCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "image rm");
  auto names = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddCommand(group, "rm", "Delete images (refused while a session uses one)",
                             "hutch image rm deb old");
  sub->add_option("NAME", *names, "image names")->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, names, exit_code] {
    *exit_code = CallForEachId(
        *cmd, *names, "deleted", "DELETE",
        [&](const std::string& name) { return "/v1/images/" + client::QueryEscape(name); },
        Connection::kOnce);
  });
}

void AddImageImportCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "image import");
  auto name = std::make_shared<std::string>();
  auto path = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("auto");
  auto no_wait = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(
      group, "import",
      "Import a rootfs tarball (plain, gzip, zstd), an OCI image layout (a directory or a tar "
      "of one) or a docker save archive",
      "hutch image import alpine alpine-oci.tar");
  sub->add_option("NAME", *name, "the new image's name")->required();
  sub->add_option("PATH", *path, "the archive, or a directory (rootfs or OCI layout)")->required();
  sub->add_option("--format", *format, "auto, rootfs, oci or docker-archive");
  sub->add_flag("--no-wait", *no_wait, "print the task and return at once");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, name, path, format, no_wait, exit_code] {
    *exit_code = StartTask(*cmd, *no_wait, [&](client::ApiClient& api) {
      return UploadImage(*cmd, api, *name, *path, *format);
    });
  });
}

void AddImageBuildCommand(CLI::App& group, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "image build");
  auto name = std::make_shared<std::string>();
  auto suite = std::make_shared<std::string>();
  auto include = std::make_shared<std::string>();
  auto variant = std::make_shared<std::string>();
  auto mirror = std::make_shared<std::string>();
  auto no_wait = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(group, "build", "Build a Debian image with debootstrap (a task)",
                             "hutch image build deb --debootstrap bookworm --include python3,git");
  sub->add_option("NAME", *name, "the new image's name")->required();
  sub->add_option("--debootstrap", *suite, "the Debian suite (bookworm, trixie, …)")->required();
  sub->add_option("--include", *include, "extra packages, comma separated");
  sub->add_option("--variant", *variant, "debootstrap variant (default minbase)");
  sub->add_option("--mirror", *mirror, "Debian mirror (default http://deb.debian.org/debian)");
  sub->add_flag("--no-wait", *no_wait, "print the task and return at once");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, name, suite, include, variant, mirror, no_wait, exit_code] {
    json::object deb;
    deb["suite"] = *suite;
    json::array inc;
    size_t start = 0;
    while (start < include->size()) {
      size_t comma = include->find(',', start);
      if (comma == std::string::npos) comma = include->size();
      if (comma > start) inc.emplace_back(include->substr(start, comma - start));
      start = comma + 1;
    }
    if (!inc.empty()) deb["include"] = std::move(inc);
    if (!variant->empty()) deb["variant"] = *variant;
    if (!mirror->empty()) deb["mirror"] = *mirror;
    json::object body{{"name", *name}, {"build", json::object{{"debootstrap", deb}}}};
    *exit_code = StartTask(*cmd, *no_wait, [&](client::ApiClient& api) {
      return api.Call("POST", "/v1/images", body);
    });
  });
}

void AddCommitCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "commit");
  auto id = std::make_shared<std::string>();
  auto image = std::make_shared<std::string>();
  auto no_wait = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(app, "commit",
                             "Save a session's files as a new image (its image plus its changes)",
                             "hutch commit dev dev-with-deps");
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("IMAGE", *image, "the new image's name")->required();
  sub->add_flag("--no-wait", *no_wait, "print the task and return at once");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, image, no_wait, exit_code] {
    *exit_code = StartTask(*cmd, *no_wait, [&](client::ApiClient& api) {
      return api.Call("POST", "/v1/sessions/" + client::QueryEscape(*id) + "/commit",
                      json::object{{"image", *image}});
    });
  });
}

void AddTaskGetCommand(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* tgroup = AddCommandGroup(app, "task", "Follow long jobs (imports, builds, commits)",
                                     "hutch task get tsk_…");
  auto cmd = NewCommand(io, "task get");
  auto id = std::make_shared<std::string>();
  auto wait = std::make_shared<bool>(false);
  CLI::App* sub = AddCommand(*tgroup, "get", "Show a task; --wait follows it to its end",
                             "hutch task get tsk_abc --wait");
  sub->add_option("ID", *id, "task id")->required();
  sub->add_flag("--wait", *wait, "follow it to its end");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, wait, exit_code] {
    auto api = cmd->ConnectOrFail(exit_code);
    if (!api) return;
    auto task = api->Call("GET", "/v1/tasks/" + client::QueryEscape(*id));
    if (!task.ok()) {
      *exit_code = cmd->Fail(task.status());
      return;
    }
    if (*wait) {
      *exit_code = WaitTask(*cmd, *api, *task);
      return;
    }
    *cmd->io.out << PrettyJson(*task);
    *exit_code = kExitOk;
  });
}

}  // namespace

void AddImageCommands(CLI::App& app, int* exit_code, const Io& io) {
  CLI::App* group = AddCommandGroup(
      app, "image",
      "Images sessions start from: list, inspect, import archives (rootfs tar, OCI layout, "
      "docker save), build Debian with debootstrap, delete",
      "hutch image build deb --debootstrap bookworm --include python3,git");
  for (auto add : {AddImageLsCommand, AddImageGetCommand, AddImageRmCommand, AddImageImportCommand,
                   AddImageBuildCommand})
    add(*group, exit_code, io);
  AddCommitCommand(app, exit_code, io);
  AddTaskGetCommand(app, exit_code, io);
}

}  // namespace hutch::cli
