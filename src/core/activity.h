// Activity (docs/workshops.md, "Activity"): typed records of what happened in a session —
// commands entered at its terminals, exec calls, file operations, processes, checks, milestones,
// and the git and kubectl commands classified from the command lines. Plain data and the small
// pure rules around it (which types exist, how a command line is classified, the CSV form); the
// store keeps the records, the controller makes them. No I/O here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/time.h"

namespace hutch::core {

struct ActivityRecord {
  int64_t id = 0;  // assigned by the store, increasing: the page cursor and the SSE event id
  TimePoint at;
  std::string type;         // "shell.command", "git.commit", … (IsActivityType)
  std::string session_id;   // the session it happened in
  std::string owner;        // the session's owner: who may read it (a participant's user)
  std::string workshop_id;  // the session's workshop, or empty
  std::string actor;        // who did it: a user id, or "session" for lines from inside it
  std::string command;      // the command line, path, check or milestone name the type is about
  std::optional<int64_t> exit_code;  // when the type has one (shell.command, exec, check.*)
  std::string data_json = "{}";      // a JSON object: details that depend on the type
  // Where a record that came from inside the session was numbered ("<agent instance>:<seq>"),
  // so a line collected twice is stored once; empty for records the server made itself.
  std::string origin;
  // The participant's name when the session is a workshop participant's: not stored, filled in
  // by the reader that knows the workshop's participants (the API).
  std::string participant;
};

// The families of types; a type is "<family>.<name>" ("exec" alone is one).
inline constexpr std::string_view kActivityShellCommand = "shell.command";
inline constexpr std::string_view kActivityExec = "exec";
inline constexpr std::string_view kActivityMilestonePrefix = "milestone.";

// Whether `type` is one an activity record can have: exec, or a known family ("session.",
// "shell.", "file.", "process.", "check.", "git.", "kubectl.", "milestone.") and a name of
// lower-case letters, digits, '_' and '-' (at most 64 characters in all).
bool IsActivityType(std::string_view type);

// Whether a `type=` filter term is valid: a type, a family with a star ("shell.*", "git.*"), or a
// bare family name ("shell", "git"), which means the same as its star.
bool IsActivityTypePattern(std::string_view pattern);
// Whether `type` matches the filter term (IsActivityTypePattern).
bool ActivityTypeMatches(std::string_view pattern, std::string_view type);

// The git and kubectl commands of a shell command line, in order: "git commit -m x && git push"
// is {"git.commit", "git.push"}. Leading variable assignments, `sudo`, `env`, `command`, a path
// before the program name and the programs' global options (`git -C dir`, `kubectl -n ns`) are
// looked through; a subcommand not in the table is "git.other" / "kubectl.other". Other programs
// give nothing. Quoting is honoured as far as splitting words goes (no expansions are done).
std::vector<std::string> ClassifyCommandLine(std::string_view line);

// The session.* activity type a session event is copied as, or nullopt when the event is not
// one: session.created, session.ready → session.started, session.stopped, session.paused,
// session.resumed, session.error, session.terminated → session.deleted (the session is gone,
// whatever ended it: data.reason says what).
std::optional<std::string> ActivityTypeForEvent(std::string_view event_type);

// An argv as one line, each word quoted for a POSIX shell only when it needs it.
std::string JoinArgv(const std::vector<std::string>& argv);

// The hook that makes an interactive bash report each command line as it ran it, after every
// edit (docs/workshops.md, "Activity"): a PROMPT_COMMAND that reads `history 1` and, when the
// history number moved since the last prompt, hands the line, the exit code and the directory to
// the in-sandbox client (/run/hutch/bin/hutch-agent activity), which writes it to the message
// socket. It keeps $? for the prompt. The first prompt reports nothing (the history there is
// from before the terminal). A shell other than bash ignores it.
std::string_view ShellHookPromptCommand();
// Sets PROMPT_COMMAND in `env` to the hook unless the request set one itself.
void AddShellHook(std::map<std::string, std::string>& env);

// The command line an exec request ran: the string of {"/bin/sh", "-c", string} (how `command`
// is sent), else JoinArgv.
std::string ExecCommandLine(const std::vector<std::string>& argv);

// The record as the API shows it: {"id", "type", "at", "session", "owner", "workshop",
// "participant", "actor", "command", "exit_code" (null when none), "data"}.
json::object ActivityToJson(const ActivityRecord& r);

// CSV (RFC 4180): the header line, then one line per record; fields with a comma, a quote, CR
// or LF are quoted and their quotes doubled. Lines end with CRLF. data is its JSON text.
std::string ActivityCsvHeader();
std::string ActivityCsvRow(const ActivityRecord& r);

}  // namespace hutch::core
