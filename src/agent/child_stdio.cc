#include "agent/child_stdio.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "agent/frame_io.h"

namespace hutch::agent {

namespace {

// One close-on-exec pipe: {read end, write end}.
Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) return Internal("pipe: " + ErrnoName(errno));
  read_end->Reset(ends[0]);
  write_end->Reset(ends[1]);
  return Status::Ok();
}

}  // namespace

Result<ChildStdio> ChildStdio::Pipes() {
  ChildStdio stdio;
  RETURN_IF_ERROR(MakePipe(&stdio.child_in_, &stdio.stdin_w));
  RETURN_IF_ERROR(MakePipe(&stdio.stdout_r, &stdio.child_out_));
  RETURN_IF_ERROR(MakePipe(&stdio.stderr_r, &stdio.child_err_));
  return stdio;
}

Result<ChildStdio> ChildStdio::Pty(uint16_t rows, uint16_t cols) {
  ChildStdio stdio;
  stdio.tty_ = true;
  stdio.stdout_r.Reset(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  const int master = stdio.stdout_r.get();
  char name[64];
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
      ptsname_r(master, name, sizeof name) != 0) {
    return Internal("open a PTY: " + ErrnoName(errno));
  }
  winsize ws{};
  ws.ws_row = rows;
  ws.ws_col = cols;
  ioctl(master, TIOCSWINSZ, &ws);
  stdio.child_in_.Reset(open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!stdio.child_in_) return Internal(std::string("open ") + name + ": " + ErrnoName(errno));
  stdio.stdin_w.Reset(fcntl(master, F_DUPFD_CLOEXEC, 3));
  return stdio;
}

void ChildStdio::CloseChildEnds() {
  child_in_.Reset();
  child_out_.Reset();
  child_err_.Reset();
}

}  // namespace hutch::agent
