// Shared by the files API's integration and security tests: a real server, a session, and raw
// HTTP over a socket for uploads and downloads of any size (streamed both ways, so a test can
// move gigabytes without holding them).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <dirent.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cli/http_client.h"
#include "common/unique_fd.h"
#include "testing/server_process.h"

namespace hutch::testing {

struct RawResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;  // unless a body callback took it
  uint64_t body_bytes = 0;
};

// Whether the fd at `fd_path` (/proc/<pid>/fd/<n>, linking to `target`) is of a kind only the
// server's warm pools open: the netns pool's (network namespaces; while it makes one: net.lock
// under /run/hutch, rtnetlink sockets, /proc/sys/net files) or the disk pool's (its images
// under data_dir/disks, loop devices, an fsopen context, then the root directory of the
// filesystem on a loop device it keeps). A files request opens none of those kinds; what it
// opens (sockets to the client and the agent, pipes, eventfds, files) counts.
inline bool IsWarmPoolFd(const std::string& fd_path, const std::string& target,
                         const std::string& data_dir) {
  constexpr unsigned kLoopMajor = 7;  // linux/major.h LOOP_MAJOR
  for (const std::string& prefix :
       {std::string("net:["), std::string("/run/hutch/"), std::string("/proc/sys/net/"),
        data_dir + "/disks/", std::string("/dev/loop"), std::string("anon_inode:[fscontext]")}) {
    if (target.starts_with(prefix)) return true;
  }
  if (target.starts_with("socket:")) {
    char proto[32] = {};
    ssize_t n = getxattr(fd_path.c_str(), "system.sockprotoname", proto, sizeof proto - 1);
    return n > 0 && std::string_view(proto).starts_with("NETLINK");
  }
  struct stat st;
  return stat(fd_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && major(st.st_dev) == kLoopMajor;
}

class FilesFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    auto server = ServerProcess::Start(HUTCH_BINARY, "", ServerArgs());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto s = Api().CreateSession(json::parse(CreateBody()).as_object());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    session_ = s->id;
  }
  void TearDown() override {
    if (server_ && !session_.empty()) (void)Api().DeleteSession(session_);
  }
  virtual std::string CreateBody() { return "{}"; }
  // Extra arguments of `hutch serve`.
  virtual std::vector<std::string> ServerArgs() { return {}; }

  client::ApiClient Api() {
    auto http = client::HttpClient::Create(server_->url(), server_->token());
    EXPECT_TRUE(http.ok());
    return client::ApiClient(std::move(*http));
  }
  std::string Files(std::string_view query) {
    return "/v1/sessions/" + session_ + "/files" + std::string(query);
  }
  std::string Q(std::string_view s) { return client::QueryEscape(s); }

  // Runs a shell command in the session; returns stdout (fails the test on a non-zero exit).
  std::string Sh(const std::string& command) {
    json::object body;
    body["command"] = command;
    auto r = Api().Exec(session_, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0) << command << ": " << r->stderr_data;
    return r->stdout_data;
  }

  // Waits up to 5 s for the server's fd count to come down to `want` (connections close
  // asynchronously after their answer); returns the last count.
  int WaitServerFds(int want) {
    int n = ServerFds();
    for (int i = 0; i < 100 && n > want; ++i) {
      usleep(50000);
      n = ServerFds();
    }
    return n;
  }
  // The server's open fds, less its warm pools' (IsWarmPoolFd): those refill on background
  // threads after the session's create took from them, often while a test's first requests
  // run, so a count taken then may predate the refill, or include a refill's transient fds.
  int ServerFds() {
    int n = 0;
    std::string dir = "/proc/" + std::to_string(server_->pid()) + "/fd";
    if (DIR* d = opendir(dir.c_str())) {
      while (struct dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string fd = dir + "/" + e->d_name;
        std::error_code ec;
        std::string target = std::filesystem::read_symlink(fd, ec).string();
        if (!ec && !IsWarmPoolFd(fd, target, server_->data_dir())) ++n;  // ec: closed meanwhile
      }
      closedir(d);
    }
    return n;
  }

  // One request on a fresh connection. The body comes from `produce` (called until it returns
  // false; Content-Length `length`) or from `body`; the answer's body goes to `consume` when
  // given. `target` is sent as is (tests send malformed ones on purpose).
  RawResponse Raw(const std::string& method, const std::string& target, const std::string& body,
                  const std::string& extra_headers = "",
                  const std::function<bool(std::string*)>& produce = nullptr, uint64_t length = 0,
                  const std::function<void(std::string_view)>& consume = nullptr) {
    RawResponse out;
    std::string addr = server_->url().substr(7);
    uint16_t port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return out;
    uint64_t len = produce ? length : body.size();
    std::string head = method + " " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       server_->token() + "\r\nContent-Length: " + std::to_string(len) +
                       "\r\nConnection: close\r\n" + extra_headers + "\r\n";
    auto send_all = [&](std::string_view d) {
      while (!d.empty()) {
        ssize_t n = send(fd.get(), d.data(), d.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        d.remove_prefix(static_cast<size_t>(n));
      }
      return true;
    };
    bool sent = send_all(head) && (produce ? true : send_all(body));
    if (produce && sent) {
      std::string piece;
      while (produce(&piece)) {
        if (!send_all(piece)) break;
        piece.clear();
      }
    }
    std::string buf(1 << 20, '\0');
    bool in_body = false;
    ssize_t n;
    while ((n = read(fd.get(), buf.data(), buf.size())) > 0) {
      std::string_view got(buf.data(), static_cast<size_t>(n));
      if (!in_body) {
        out.head.append(got);
        size_t end = out.head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        in_body = true;
        got = std::string_view(out.head).substr(end + 4);
        std::string rest(got);
        out.head.resize(end);
        out.status = std::stoi(out.head.substr(9, 3));
        out.body_bytes += rest.size();
        if (consume)
          consume(rest);
        else
          out.body += rest;
        continue;
      }
      out.body_bytes += got.size();
      if (consume)
        consume(got);
      else
        out.body.append(got);
    }
    return out;
  }

  std::unique_ptr<ServerProcess> server_;
  std::string session_;
};

}  // namespace hutch::testing
