// A Docker target's container found through the Docker Engine API on its unix socket
// (docs/attach.md): the container's init pid, which the attached shell then enters like any
// other process. Only the two read-only calls an attach needs; nothing is created in the Engine
// (no `docker exec`: see the doc for why).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::drivers::local {

// The running container `selector` names on the Engine at `socket_path`: `id_or_name` is a full
// id, a unique id prefix or a name (GET /containers/{id}/json resolves all three); else
// `name_glob` matches the names of running containers (GET /containers/json), the first in name
// order when several do. Answers its full id. not_found when nothing running matches;
// unavailable when the Engine does not answer within `timeout`.
Result<std::string> FindDockerContainer(const std::string& socket_path, std::string_view id_or_name,
                                        std::string_view name_glob,
                                        std::chrono::milliseconds timeout);

// The host pid of running container `id`'s init (State.Pid); not_found when it does not run.
Result<pid_t> DockerContainerPid(const std::string& socket_path, std::string_view id,
                                 std::chrono::milliseconds timeout);

}  // namespace hutch::drivers::local
