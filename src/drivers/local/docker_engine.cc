// The Engine API client: the driver's only Beast translation unit (Beast and Asio dominate
// compile time). HTTP/1.1 over the Engine's unix socket, one connection per call, every step
// asynchronous on a private io_context under one deadline (beast::basic_stream's expiry), so a
// hung Engine costs at most `timeout`.
#include "drivers/local/docker_engine.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/json.h"

namespace hutch::drivers::local {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using Stream = beast::basic_stream<asio::local::stream_protocol>;

// The Engine API version asked for: Docker 20.10's; later engines still serve it, and a pinned
// version keeps the answers' shape fixed.
constexpr std::string_view kApiVersion = "v1.41";
constexpr uint64_t kMaxBodyBytes = 8 << 20;

struct Answer {
  int status = 0;
  std::string body;
};

// Runs one asynchronous step to completion on `ioc`; its error.
template <typename Initiate>
beast::error_code Run(asio::io_context& ioc, Initiate&& initiate) {
  std::optional<beast::error_code> result;
  initiate([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result.value_or(asio::error::operation_aborted);
}

Status Failure(const std::string& socket_path, std::string_view step, const beast::error_code& ec,
               std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout)
    return Unavailable(fmt::format("the Docker Engine at {} did not answer within {} ms ({})",
                                   socket_path, timeout.count(), step));
  return Unavailable(
      fmt::format("the Docker Engine at {}: {}: {}", socket_path, step, ec.message()));
}

// GET `target` (after the version prefix) on the Engine at `socket_path`.
Result<Answer> Get(const std::string& socket_path, const std::string& target,
                   std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  Stream stream(ioc);
  stream.expires_after(timeout);
  beast::error_code ec = Run(ioc, [&](auto handler) {
    stream.async_connect(asio::local::stream_protocol::endpoint(socket_path), std::move(handler));
  });
  if (ec) return Failure(socket_path, "connect", ec, timeout);
  http::request<http::empty_body> req{http::verb::get, fmt::format("/{}{}", kApiVersion, target),
                                      11};
  // The Engine ignores Host on its socket, but HTTP/1.1 requires one.
  req.set(http::field::host, "docker");
  req.keep_alive(false);
  ec = Run(ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  if (ec) return Failure(socket_path, "send " + target, ec, timeout);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBodyBytes);
  ec =
      Run(ioc, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  if (ec) return Failure(socket_path, "read the answer to " + target, ec, timeout);
  return Answer{static_cast<int>(parser.get().result_int()), std::move(parser.get().body())};
}

// The Engine's own error text ({"message": …}), else the body.
std::string EngineMessage(const Answer& a) {
  auto o = ParseJsonObject(a.body);
  if (o.ok())
    if (const json::value* m = o->if_contains("message"); m && m->is_string())
      return std::string(m->as_string());
  return a.body.substr(0, 200);
}

bool SafeSelector(std::string_view s) {
  return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// GET /containers/{id}/json: the object, or not_found.
Result<json::object> Inspect(const std::string& socket_path, std::string_view id,
                             std::chrono::milliseconds timeout) {
  // Docker's ids and names are [a-zA-Z0-9][a-zA-Z0-9_.-]*: anything else cannot name a
  // container, and must not reach the request line.
  if (!SafeSelector(id)) return InvalidArgument(fmt::format("bad container id or name '{}'", id));
  ASSIGN_OR_RETURN(Answer a, Get(socket_path, fmt::format("/containers/{}/json", id), timeout));
  if (a.status == 404)
    return NotFound(fmt::format("no Docker container '{}' on {}", id, socket_path));
  if (a.status != 200)
    return Unavailable(fmt::format("the Docker Engine at {} answered {} to inspect {}: {}",
                                   socket_path, a.status, id, EngineMessage(a)));
  return ParseJsonObject(a.body);
}

}  // namespace

Result<std::string> FindDockerContainer(const std::string& socket_path, std::string_view id_or_name,
                                        std::string_view name_glob,
                                        std::chrono::milliseconds timeout) {
  if (!id_or_name.empty()) {
    ASSIGN_OR_RETURN(json::object c, Inspect(socket_path, id_or_name, timeout));
    const json::value* id = c.if_contains("Id");
    if (!id || !id->is_string())
      return Internal(
          fmt::format("the Docker Engine at {} answered no Id for '{}'", socket_path, id_or_name));
    return std::string(id->as_string());
  }
  // Running containers only (the list's default), each with its names ("/web-1").
  ASSIGN_OR_RETURN(Answer a, Get(socket_path, "/containers/json", timeout));
  if (a.status != 200)
    return Unavailable(fmt::format("the Docker Engine at {} answered {} to list containers: {}",
                                   socket_path, a.status, EngineMessage(a)));
  boost::system::error_code parse_error;
  json::value list = json::parse(a.body, parse_error);
  if (parse_error || !list.is_array())
    return Internal(fmt::format("the Docker Engine at {} listed no array", socket_path));
  std::string glob(name_glob);
  std::vector<std::pair<std::string, std::string>> matches;  // name, id
  for (const json::value& v : list.as_array()) {
    if (!v.is_object()) continue;
    const json::object& c = v.as_object();
    const json::value* id = c.if_contains("Id");
    const json::value* names = c.if_contains("Names");
    if (!id || !id->is_string() || !names || !names->is_array()) continue;
    for (const json::value& n : names->as_array()) {
      if (!n.is_string()) continue;
      std::string name(n.as_string());
      if (name.starts_with("/")) name.erase(0, 1);
      if (fnmatch(glob.c_str(), name.c_str(), 0) == 0) {
        matches.emplace_back(name, std::string(id->as_string()));
        break;
      }
    }
  }
  if (matches.empty())
    return NotFound(
        fmt::format("no running Docker container named like '{}' on {}", name_glob, socket_path));
  std::sort(matches.begin(), matches.end());
  return matches.front().second;
}

Result<pid_t> DockerContainerPid(const std::string& socket_path, std::string_view id,
                                 std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(json::object c, Inspect(socket_path, id, timeout));
  const json::value* state = c.if_contains("State");
  if (!state || !state->is_object())
    return Internal(
        fmt::format("the Docker Engine at {} answered no State for {}", socket_path, id));
  const json::object& s = state->as_object();
  const json::value* running = s.if_contains("Running");
  const json::value* paused = s.if_contains("Paused");
  const json::value* pid = s.if_contains("Pid");
  if (!running || !running->is_bool() || !running->as_bool())
    return NotFound(fmt::format("Docker container {} is not running", id.substr(0, 12)));
  // A paused container's processes are frozen: a shell would hang in it.
  if (paused && paused->is_bool() && paused->as_bool())
    return Conflict(fmt::format("Docker container {} is paused", id.substr(0, 12)));
  if (!pid || !pid->is_int64() || pid->as_int64() <= 0)
    return Internal(fmt::format("Docker container {} has no State.Pid", id.substr(0, 12)));
  return static_cast<pid_t>(pid->as_int64());
}

}  // namespace hutch::drivers::local
