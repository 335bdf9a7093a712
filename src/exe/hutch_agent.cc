// hutch-agent: PID 1 of every sandbox. Static, so it needs nothing from the sandbox's files.
//
//   hutch-agent --sandbox    started by the local driver with fd 3 = config, fd 4 = status
#include <cstdio>
#include <cstring>

#include "agent/agent.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--sandbox") == 0) return hutch::agent::RunSandboxAgent();
  std::fprintf(stderr,
               "usage: hutch-agent --sandbox\n"
               "hutch-agent runs inside a hutch session; hutch serve starts it.\n");
  return 2;
}
