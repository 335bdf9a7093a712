// `hutch port-forward ID [LOCAL:]PORT`: listens on a local port and relays every connection to
// PORT inside the session through GET /v1/sessions/{id}/ports/{port}/tcp, like
// `kubectl port-forward`. One WebSocket (and two threads) per connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/ws_client.h"
#include "common/unique_fd.h"

namespace hutch::cli {

namespace {

struct PortSpec {
  int local = 0;
  int remote = 0;
};

Result<int> ParsePort(std::string_view text, bool allow_zero) {
  int port = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || ptr != text.data() + text.size() || port < (allow_zero ? 0 : 1) ||
      port > 65535)
    return InvalidArgument(fmt::format("\"{}\" is not a port (1..65535)", text));
  return port;
}

// "8888" (the same port locally), "9000:8888", "0:8888" (any free local port).
Result<PortSpec> ParsePortSpec(std::string_view text) {
  PortSpec spec;
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    ASSIGN_OR_RETURN(spec.remote, ParsePort(text, false));
    spec.local = spec.remote;
    return spec;
  }
  ASSIGN_OR_RETURN(spec.local, ParsePort(text.substr(0, colon), true));
  ASSIGN_OR_RETURN(spec.remote, ParsePort(text.substr(colon + 1), false));
  return spec;
}

// Relays one accepted connection until both directions ended.
void RelayConnection(UniqueFd conn, std::unique_ptr<client::ExecSocket> ws, std::ostream* err) {
  int fd = conn.get();
  std::thread from_session([fd, &ws] {
    for (;;) {
      auto f = ws->Read(-1);
      if (!f.ok() || !f->has_value()) break;
      std::string_view data = (**f).data;
      while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          ::shutdown(fd, SHUT_RDWR);
          return;
        }
        data.remove_prefix(static_cast<size_t>(n));
      }
    }
    // The program in the session closed: so does our side (which also ends the read below).
    ::shutdown(fd, SHUT_RDWR);
  });
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // EOF from the local client: half-close toward the session, keep reading its answer.
      if (n == 0) (void)ws->Send(0, {});
      break;
    }
    Status st = ws->Send(0, std::string_view(buf, static_cast<size_t>(n)));
    if (!st.ok()) {
      *err << "port-forward: " << st.message() << "\n";
      break;
    }
  }
  from_session.join();
  ws->Close();
}

int RunPortForward(Command& cmd, const std::string& id, const PortSpec& ports,
                   const std::string& address) {
  auto api = cmd.Connect();
  if (!api.ok()) return cmd.Fail(api.status());
  // Fail early, before listening, when the session does not exist or is not ours.
  auto session = api->GetSession(id);
  if (!session.ok()) return cmd.Fail(session.status());

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(ports.local));
  if (inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1)
    return cmd.UsageError(
        InvalidArgument(fmt::format("--address {} is not an IPv4 address", address)));
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) return cmd.Fail(ErrnoError("socket", errno));
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return cmd.Fail(ErrnoError(fmt::format("listen on {}:{}", address, ports.local), errno));
  if (::listen(listener.get(), 64) != 0) return cmd.Fail(ErrnoError("listen", errno));
  socklen_t len = sizeof addr;
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  *cmd.io.out << fmt::format("Forwarding from {}:{} -> {} port {}\n", address, ntohs(addr.sin_port),
                             id, ports.remote);
  cmd.io.out->flush();

  client::TlsOptions tls;
  tls.ca_cert_file = cmd.config().ca_cert;
  tls.insecure = cmd.config().insecure;
  for (;;) {
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      return cmd.Fail(ErrnoError("accept", errno));
    }
    ::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto ws = client::ExecSocket::OpenPortTcp(cmd.config().url, cmd.config().token, id,
                                              ports.remote, tls);
    if (!ws.ok()) {
      // Say why and drop this connection; the next one may find the port open.
      *cmd.io.err << "port-forward: " << ws.status().message() << "\n";
      continue;
    }
    std::thread(RelayConnection, std::move(conn), std::move(*ws), cmd.io.err).detach();
  }
}

}  // namespace

void AddPortForwardCommand(CLI::App& app, int* exit_code, const Io& io) {
  auto cmd = NewCommand(io, "port-forward");
  auto id = std::make_shared<std::string>();
  auto spec = std::make_shared<std::string>();
  auto address = std::make_shared<std::string>("127.0.0.1");
  CLI::App* sub = AddCommand(
      app, "port-forward",
      "Listen on a local port and relay each connection to a port inside a session (like "
      "kubectl port-forward); works with network mode none. Runs until interrupted",
      "hutch port-forward dev 8888\n  hutch port-forward dev 9000:8888\n"
      "  hutch port-forward dev 0:5432   (any free local port; the line printed says which)");
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option("PORTS", *spec, "[LOCAL:]REMOTE, e.g. 8888 or 9000:8888")->required();
  sub->add_option("--address", *address, "local address to listen on (default 127.0.0.1)");
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, spec, address, exit_code] {
    auto ports = ParsePortSpec(*spec);
    if (!ports.ok()) {
      *exit_code = cmd->UsageError(ports.status());
      return;
    }
    *exit_code = RunPortForward(*cmd, *id, *ports, *address);
  });
}

}  // namespace hutch::cli
