// Starting a hutch-agent from the host side, shared by the local driver's sandboxes and the
// transient agents of attached shells (attach.cc): the listening socket, the config with its
// fds, the status line, the secret.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::drivers::local {

// Reads the agent's one status line ("ready <version>" or an error) until `deadline_ms`.
// Returns the line without "\n"; "" on EOF without a line.
Result<std::string> ReadStatusLine(int fd, int64_t deadline_ms);
// A new sandbox's secret (docs/architecture.md, "One credential scheme"): 32 random bytes, hex.
Result<std::string> NewSandboxSecret();
// The last lines of an agent's log, for error messages ("" when there is none).
std::string LogTail(const std::string& path);
Status SendAll(int fd, std::string_view data);
// Sends the config with `fds` riding on its first byte (SCM_RIGHTS).
Status SendConfig(int fd, std::string_view data, const std::vector<int>& fds);
// The agent's listening socket at `path`, made here (the agent never sees the path), 0600.
Result<UniqueFd> ListenAt(const std::string& path);
// One connect to `path`: unavailable naming `id` when nothing accepts.
Status ConnectOnce(const std::string& path, std::string_view id);

}  // namespace hutch::drivers::local
