// The fds 0-2 of a child the agent spawns, and the agent's ends of them: three pipes, or a PTY.
// Made in one call before the spawn; SpawnCommand (command.h) hands the child's ends to the
// child and closes them whether or not the fork succeeded; the agent's ends are UniqueFds its
// caller moves where they are served. No path leaves one open.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::agent {

class ChildStdio {
 public:
  // Three close-on-exec pipes; "pipe: EMFILE" when one cannot be made.
  static Result<ChildStdio> Pipes();
  // A PTY of the sandbox's own devpts instance (/dev/ptmx → pts/ptmx), of rows × cols. The
  // slave is the child's 0-2 and becomes its controlling terminal; the agent keeps the master
  // (as stdout) and a duplicate of it (as stdin). No stderr: a terminal has one output.
  static Result<ChildStdio> Pty(uint16_t rows, uint16_t cols);

  ChildStdio(ChildStdio&&) = default;
  ChildStdio& operator=(ChildStdio&&) = default;

  // The child's ends, for the dup2 in the child (no ownership).
  int child_stdin() const { return child_in_.get(); }
  int child_stdout() const { return child_out_.valid() ? child_out_.get() : child_in_.get(); }
  int child_stderr() const { return child_err_.valid() ? child_err_.get() : child_in_.get(); }
  // stdin is a PTY slave: the child makes it its controlling terminal.
  bool tty() const { return tty_; }
  // After the spawn: the child holds its own copies now.
  void CloseChildEnds();

  UniqueFd stdin_w;   // the agent writes the child's stdin here
  UniqueFd stdout_r;  // the agent reads the child's stdout (with a PTY: the master)
  UniqueFd stderr_r;  // the agent reads the child's stderr (invalid with a PTY)

 private:
  ChildStdio() = default;

  // With a PTY the slave alone, in child_in_.
  UniqueFd child_in_, child_out_, child_err_;
  bool tty_ = false;
};

}  // namespace hutch::agent
