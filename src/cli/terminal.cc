#include "cli/terminal.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "common/scope_guard.h"

namespace hutch::cli {

namespace {

// What a signal handler needs to put the terminal back: plain data, set before the handlers are
// installed and read only by them (tcsetattr is async-signal-safe).
int g_tty_fd = -1;
termios g_tty_saved;

constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void RestoreTerminalAndDie(int sig) {
  ::tcsetattr(g_tty_fd, TCSANOW, &g_tty_saved);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

Result<std::string> ReadLineWithoutEcho(int fd, std::ostream& prompt_out, std::string_view prompt) {
  termios saved;
  if (::tcgetattr(fd, &saved) != 0) return ErrnoError("read the terminal's settings", errno);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;

  g_tty_fd = fd;
  g_tty_saved = saved;
  struct sigaction restore {};
  restore.sa_handler = RestoreTerminalAndDie;
  sigemptyset(&restore.sa_mask);
  struct sigaction previous[std::size(kRestoreSignals)];
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
    ::sigaction(kRestoreSignals[i], &restore, &previous[i]);
  ScopeGuard put_back_handlers([&] {
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
      ::sigaction(kRestoreSignals[i], &previous[i], nullptr);
  });

  prompt_out << prompt << std::flush;
  if (::tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
    return ErrnoError("turn off the terminal's echo", errno);
  ScopeGuard put_back_terminal([&] { ::tcsetattr(fd, TCSAFLUSH, &saved); });

  std::string line;
  while (true) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read from the terminal", errno);
    if (n == 0 || c == '\n') break;
    line += c;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

namespace {
struct sigaction g_raw_previous[std::size(kRestoreSignals)];
}  // namespace

Result<std::unique_ptr<RawTerminal>> RawTerminal::Enter(int fd) {
  termios saved;
  if (::tcgetattr(fd, &saved) != 0) return ErrnoError("read the terminal's settings", errno);
  g_tty_fd = fd;
  g_tty_saved = saved;
  struct sigaction restore {};
  restore.sa_handler = RestoreTerminalAndDie;
  sigemptyset(&restore.sa_mask);
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
    ::sigaction(kRestoreSignals[i], &restore, &g_raw_previous[i]);
  termios raw = saved;
  ::cfmakeraw(&raw);
  if (::tcsetattr(fd, TCSANOW, &raw) != 0) {
    int err = errno;
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
      ::sigaction(kRestoreSignals[i], &g_raw_previous[i], nullptr);
    return ErrnoError("put the terminal into raw mode", err);
  }
  return std::unique_ptr<RawTerminal>(new RawTerminal(fd));
}

RawTerminal::~RawTerminal() {
  ::tcsetattr(fd_, TCSANOW, &g_tty_saved);
  for (size_t i = 0; i < std::size(kRestoreSignals); ++i)
    ::sigaction(kRestoreSignals[i], &g_raw_previous[i], nullptr);
}

std::optional<std::pair<int, int>> TerminalSize(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return std::nullopt;
  return std::pair<int, int>(ws.ws_row, ws.ws_col);
}

}  // namespace hutch::cli
