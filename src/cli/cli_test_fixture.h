// The fixture of the command tests: runs `hutch …` as parsed from argv by CLI11, against a
// loopback server whose answers each test fakes, with captured stdout and stderr and a fresh
// HOME. Test code only.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/loopback_server.h"
#include "cli/test_util.h"
#include "common/json.h"

namespace hutch::cli::testing {

// A fake answer with `v` as its JSON body.
inline CannedResponse Json(const json::value& v, int status = 200) {
  CannedResponse r;
  r.status = status;
  r.body = json::serialize(v);
  return r;
}

// A fake error answer in the API's shape.
inline CannedResponse Error(int status, std::string_view code, std::string_view message) {
  return Json(json::object{{"error", json::object{{"code", code}, {"message", message}}}}, status);
}

// An exec (or run) answer.
inline json::object ExecAnswer(int exit_code, std::string out, std::string err, int signal = 0,
                               bool timed_out = false) {
  return json::object{{"exit_code", exit_code}, {"signal", signal},       {"stdout", out},
                      {"stderr", err},          {"timed_out", timed_out}, {"truncated", false},
                      {"duration_ms", 4}};
}

// A request's JSON body.
inline json::object Body(const ServedRequest& r) { return json::parse(r.body).as_object(); }

class CliTest : public ::testing::Test {
 protected:
  struct Run {
    int code = -1;
    std::string out;
    std::string err;
  };

  CliTest() {
    env_.Set("HOME", home_.path());
    for (const char* name :
         {"XDG_CONFIG_HOME", "HUTCH_URL", "HUTCH_TOKEN", "HUTCH_CA_CERT", "HUTCH_INSECURE"})
      env_.Unset(name);
  }

  // Runs `hutch args…` with --url and --token of the loopback server added after the command's
  // name ("token create" for a group), so they come before any `--`.
  Run Hutch(std::vector<std::string> args, std::optional<std::string> stdin_data = std::nullopt) {
    static const std::set<std::string> kGroups = {"token",    "user",   "checkpoint",
                                                  "template", "volume", "port"};
    size_t at = args.size() > 1 && kGroups.count(args[0]) ? 2 : 1;
    args.insert(args.begin() + static_cast<std::ptrdiff_t>(std::min(at, args.size())),
                {"--url", server_.url(), "--token", "tok"});
    return HutchBare(std::move(args), std::move(stdin_data));
  }

  // Runs `hutch args…` as given.
  Run HutchBare(std::vector<std::string> args,
                std::optional<std::string> stdin_data = std::nullopt) {
    CLI::App app{"hutch"};
    app.require_subcommand(1);
    std::ostringstream out, err;
    Io io;
    io.out = &out;
    io.err = &err;
    io.read_stdin = [stdin_data] { return stdin_data; };
    Run run;
    AddClientCommands(app, &run.code, io);
    std::vector<const char*> argv = {"hutch"};
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      run.code = ExitCodeForParseError(app, e);
    }
    run.out = out.str();
    run.err = err.str();
    return run;
  }

  // What the fake server answers from now on.
  void Handle(std::function<CannedResponse(const ServedRequest&)> h) {
    std::lock_guard lock(mu_);
    handler_ = std::move(h);
  }

  TempDir home_;
  ScopedEnv env_;
  std::mutex mu_;
  std::function<CannedResponse(const ServedRequest&)> handler_ = [](const ServedRequest&) {
    return Error(404, "not_found", "no such route");
  };
  LoopbackServer server_{[this](const ServedRequest& r) {
    std::lock_guard lock(mu_);
    return handler_(r);
  }};
};

}  // namespace hutch::cli::testing
