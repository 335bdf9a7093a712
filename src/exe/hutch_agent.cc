// hutch-agent: PID 1 of every sandbox. Static, so it needs nothing from the sandbox's files.
//
//   hutch-agent --sandbox    started by the local driver with fd 3 = config, fd 4 = status
//   hutch-agent --attach NS  the transient agent of an attached shell (docs/attach.md)
//   hutch-agent activity …   inside a session: the terminal hook's client (activity_client.h)
//   hutch-milestone NAME …   the same binary under that name: a milestone (docs/agents.md)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "agent/activity_client.h"
#include "agent/agent.h"

int main(int argc, char** argv) {
  std::string_view self = argc > 0 ? argv[0] : "";
  if (size_t slash = self.rfind('/'); slash != std::string_view::npos)
    self.remove_prefix(slash + 1);
  if (self == "hutch-milestone") return hutch::agent::RunMilestoneClient(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "activity") == 0)
    return hutch::agent::RunActivityClient(argc - 2, argv + 2);
  if (argc >= 2 && std::strcmp(argv[1], "milestone") == 0)
    return hutch::agent::RunMilestoneClient(argc - 2, argv + 2);
  if (argc == 2 && std::strcmp(argv[1], "--sandbox") == 0) return hutch::agent::RunSandboxAgent();
  if (argc == 3 && std::strcmp(argv[1], "--attach") == 0)
    return hutch::agent::RunAttachAgent(std::strtoull(argv[2], nullptr, 16));
  std::fprintf(stderr,
               "usage: hutch-agent --sandbox | activity … | milestone NAME …\n"
               "hutch-agent runs inside a hutch session; hutch serve starts it.\n");
  return 2;
}
