// hutch-agent: PID 1 of every sandbox. Static, so it needs nothing from the sandbox's files.
//
//   hutch-agent --sandbox    started by the local driver with fd 3 = config, fd 4 = status
//   hutch-agent --attach NS  the transient agent of an attached shell (docs/attach.md)
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/agent.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--sandbox") == 0) return hutch::agent::RunSandboxAgent();
  if (argc == 3 && std::strcmp(argv[1], "--attach") == 0)
    return hutch::agent::RunAttachAgent(std::strtoull(argv[2], nullptr, 16));
  std::fprintf(stderr,
               "usage: hutch-agent --sandbox\n"
               "hutch-agent runs inside a hutch session; hutch serve starts it.\n");
  return 2;
}
