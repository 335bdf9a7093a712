#include "agent/activity_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/bridge_protocol.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

// Writes `line` and a newline to the message socket. The socket is the agent's; the wait is
// bounded so a terminal never hangs on its prompt.
int SendLine(const std::string& line) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return 1;
  timeval tv{2, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, kMessageSocketPath, sizeof addr.sun_path - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "hutch: cannot reach %s: %s\n", kMessageSocketPath, strerror(errno));
    return 1;
  }
  std::string out = line + "\n";
  for (size_t done = 0; done < out.size();) {
    ssize_t n = send(fd.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "hutch: write to %s: %s\n", kMessageSocketPath, strerror(errno));
      return 1;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

bool IsMilestoneName(std::string_view name) {
  if (name.empty() || name.size() > 50) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

}  // namespace

std::string_view StripHistoryNumber(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] == ' ') ++i;
  size_t digits = i;
  while (digits < line.size() && line[digits] >= '0' && line[digits] <= '9') ++digits;
  if (digits == i || digits + 2 > line.size() || line.substr(digits, 2) != "  ") return line;
  line.remove_prefix(digits + 2);
  return line;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

int RunActivityClient(int argc, char** argv) {
  const char* history = nullptr;
  const char* cwd = nullptr;
  const char* exit_code = nullptr;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--history") == 0) {
      history = argv[i + 1];
    } else if (std::strcmp(argv[i], "--cwd") == 0) {
      cwd = argv[i + 1];
    } else if (std::strcmp(argv[i], "--exit-code") == 0) {
      exit_code = argv[i + 1];
    } else {
      history = nullptr;
      break;
    }
  }
  if (history == nullptr || argc % 2 != 0) {
    std::fprintf(stderr,
                 "usage: hutch-agent activity --history LINE [--exit-code N] [--cwd DIR]\n"
                 "Records LINE (as `history 1` prints it) as a shell.command of this session.\n");
    return 2;
  }
  std::string_view command = StripHistoryNumber(history);
  if (command.empty()) return 0;
  std::string line =
      "{\"type\":\"activity\",\"kind\":\"shell.command\",\"command\":" + JsonString(command);
  if (cwd != nullptr) line += ",\"cwd\":" + JsonString(cwd);
  if (exit_code != nullptr) {
    char* end = nullptr;
    long code = std::strtol(exit_code, &end, 10);
    if (end != exit_code && *end == '\0') line += ",\"exit_code\":" + std::to_string(code);
  }
  line += "}";
  return SendLine(line);
}

int RunMilestoneClient(int argc, char** argv) {
  if (argc < 1 || !IsMilestoneName(argv[0]) || argc % 2 != 1) {
    std::fprintf(stderr,
                 "usage: hutch-milestone NAME [--data JSON] [--message TEXT]\n"
                 "Records milestone.NAME in this session's activity (NAME: a-z, 0-9, _ and -).\n");
    return 2;
  }
  std::string line = "{\"type\":\"activity\",\"kind\":\"milestone." + std::string(argv[0]) + "\"";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--data") == 0) {
      // Passed on as written; the server takes it only as a JSON object.
      line += ",\"data\":" + std::string(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--message") == 0) {
      line += ",\"command\":" + JsonString(argv[i + 1]);
    } else {
      std::fprintf(stderr, "hutch-milestone: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  line += "}";
  return SendLine(line);
}

}  // namespace hutch::agent
