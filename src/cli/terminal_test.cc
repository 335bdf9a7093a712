#include "cli/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace hutch::cli {
namespace {

// A pseudo-terminal pair: the test types on `master`, the code reads `slave`.
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    slave_ = ::open(::ptsname(master_), O_RDWR | O_NOCTTY | O_CLOEXEC);
  }
  ~Pty() {
    if (slave_ >= 0) ::close(slave_);
    if (master_ >= 0) ::close(master_);
  }
  bool ok() const { return master_ >= 0 && slave_ >= 0; }
  int master() const { return master_; }
  int slave() const { return slave_; }
  bool Echoes() const {
    termios t;
    ::tcgetattr(slave_, &t);
    return (t.c_lflag & ECHO) != 0;
  }
  // What the terminal has shown so far (its echo), without waiting.
  std::string Shown() const {
    std::string out;
    char buf[256];
    pollfd p{master_, POLLIN, 0};
    while (::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0) {
      ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int master_ = -1;
  int slave_ = -1;
};

TEST(ReadLineWithoutEcho, ReadsTheLineWithoutShowingItAndRestoresEcho) {
  Pty pty;
  if (!pty.ok()) GTEST_SKIP() << "no pseudo-terminals here";
  ASSERT_TRUE(pty.Echoes());
  // Type only once echo is off: the read discards earlier typeahead.
  std::thread typist([&] {
    while (pty.Echoes()) std::this_thread::yield();
    std::string typed = "hutch_s3cret\n";
    ASSERT_EQ(::write(pty.master(), typed.data(), typed.size()),
              static_cast<ssize_t>(typed.size()));
  });
  std::ostringstream prompt;
  auto line = ReadLineWithoutEcho(pty.slave(), prompt, "token: ");
  typist.join();
  ASSERT_TRUE(line.ok()) << line.status().ToString();
  EXPECT_EQ(*line, "hutch_s3cret");
  EXPECT_EQ(prompt.str(), "token: ");
  EXPECT_TRUE(pty.Echoes());
  std::string shown = pty.Shown();
  EXPECT_EQ(shown.find("s3cret"), std::string::npos) << shown;
}

TEST(ReadLineWithoutEcho, IsAnErrorOnSomethingThatIsNotATerminal) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::ostringstream prompt;
  auto line = ReadLineWithoutEcho(fds[0], prompt, "token: ");
  EXPECT_FALSE(line.ok());
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace hutch::cli
