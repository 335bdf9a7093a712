// The programs a session uses to write activity lines to the message socket (docs/agents.md,
// "Activity lines"): the same static binary as the agent, reachable in every sandbox at
// /run/hutch/bin (bridge_protocol.h). They write one line and exit; the agent keeps it until
// the server collects it.
//
//   hutch-agent activity --history LINE [--exit-code N] [--cwd DIR]   (the terminal hook)
//   hutch-milestone NAME [--data JSON] [--message TEXT]
#pragma once

#include <string>
#include <string_view>

namespace hutch::agent {

// `args` are the arguments after "activity" / after the program name of hutch-milestone.
// Exit status 0 when the line was written, 1 when it could not be (no socket), 2 on bad usage.
int RunActivityClient(int argc, char** argv);
int RunMilestoneClient(int argc, char** argv);

// A `history 1` line ("  42  git push", HISTTIMEFORMAT empty) without its number; the line
// unchanged when it has none.
std::string_view StripHistoryNumber(std::string_view line);
// `s` as a JSON string, quotes included.
std::string JsonString(std::string_view s);

}  // namespace hutch::agent
