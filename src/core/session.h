// The session, hutch's central object (DESIGN.md §3). Plain data: no I/O here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "core/service.h"

namespace hutch::core {

enum class SessionState {
  kScheduled,
  kPending,
  kProvisioning,
  kRunning,
  kPaused,
  kStopping,
  kStopped,
  kError,
  kTerminating,
  kTerminated,
  kCancelled,
};
inline constexpr SessionState kAllSessionStates[] = {
    SessionState::kScheduled,  SessionState::kPending,  SessionState::kProvisioning,
    SessionState::kRunning,    SessionState::kPaused,   SessionState::kStopping,
    SessionState::kStopped,    SessionState::kError,    SessionState::kTerminating,
    SessionState::kTerminated, SessionState::kCancelled};

std::string_view ToString(SessionState s);
std::optional<SessionState> ParseSessionState(std::string_view s);
// terminated and cancelled: nothing follows them.
bool IsFinal(SessionState s);
// A live session holds its name and counts against quotas: every state but the final ones.
inline bool IsLive(SessionState s) { return !IsFinal(s); }

// Why a transition happened; every one a user can read.
enum class Reason {
  kUser,
  kTtl,
  kIdle,
  kSchedule,
  kQuota,
  kError,
  kServerRestart,
  kWorkshop,
  kAdmin,
  kCompleted,   // a batch session's command ended; its `result` says how
  kDependency,  // waiting for, or cancelled by, a session it depends on
};

std::string_view ToString(Reason r);
std::optional<Reason> ParseReason(std::string_view s);

struct Resources {
  double cpus = 1.0;        // CPU quota in cores (0.5 = half a core)
  int64_t memory_mb = 512;  // memory limit; swap is limited to the same amount
  int64_t pids = 512;       // maximum number of processes and threads
  int64_t disk_mb = 1024;   // writable layer size (enforced from the isolation issue on)
  bool operator==(const Resources&) const = default;
};

struct NetworkSpec {
  std::string mode = "none";  // "none" (loopback only) | "nat"
  std::vector<std::string> allow_out;
  std::vector<std::string> deny_out;
  bool operator==(const NetworkSpec&) const = default;
};

// A volume attached to a session (docs/server.md, "Volumes"): mounted at `path` inside it.
struct VolumeMount {
  std::string volume;     // the volume's name, as its owner calls it
  std::string volume_id;  // "vol_…", resolved when the session is created
  std::string path;       // absolute path inside the sandbox
  bool read_only = false;
  bool operator==(const VolumeMount&) const = default;
};

// What a session runs on its own besides what it is asked to (docs/api.md, "Batch
// sessions"): a batch session's command, and how it ended.
inline constexpr std::string_view kTypeInteractive = "interactive";
inline constexpr std::string_view kTypeBatch = "batch";
inline constexpr std::string_view kResultSuccess = "success";
inline constexpr std::string_view kResultFailure = "failure";
struct RunSpec {
  std::string type = std::string(kTypeInteractive);  // "interactive" | "batch"
  std::string command;  // batch: a shell command (sh -c), run once after setup
  // Start the image's own command (its OCI `cmd`) as the service "image-cmd" with the session.
  bool run_image_cmd = false;
  // Set when a batch session's command ended: "success" (exit 0) or "failure", its exit code
  // (-1 when it was killed by a signal) and the last bytes of its output.
  std::string result;
  std::optional<int64_t> exit_code;
  std::string output_tail;
  bool operator==(const RunSpec&) const = default;
};

struct Session {
  std::string id;    // "ses_" + 16 base32
  std::string name;  // DNS label, unique per owner among live sessions
  // Free text a person reads (Cloud66's title), beside the machine-friendly name; "" when unset.
  std::string title;
  std::string owner;  // user id
  SessionState state = SessionState::kPending;
  std::string activity = "idle";  // "idle" | "busy"
  Reason reason = Reason::kUser;  // why the last transition happened
  std::string image = "host";
  std::string template_name;
  Resources resources;
  NetworkSpec network;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> labels;
  std::string metadata_json = "{}";  // free JSON, stored as text
  TimePoint created_at;
  std::optional<TimePoint> start_at;
  std::optional<TimePoint> started_at;
  std::optional<TimePoint> expires_at;
  std::optional<int64_t> ttl_seconds;
  std::optional<int64_t> idle_timeout_seconds;
  std::string on_idle = "stop";  // "pause" | "stop" | "terminate"
  std::optional<TimePoint> last_activity_at;
  std::optional<TimePoint> paused_at;
  std::optional<TimePoint> ended_at;
  std::optional<TimePoint> deleted_at;
  std::string parent_id;
  std::string workshop_id;
  std::string node;
  std::string error;  // last error message, empty when none
  std::vector<VolumeMount> volumes;
  // Shell commands run in order (sh -c) in a fresh sandbox before it is reported running; the
  // first that fails puts the session in error.
  std::vector<std::string> setup;
  // Services the session's agent starts whenever the sandbox starts (after setup); the session
  // is running only once each runs and, with a health check, is healthy.
  std::vector<ServiceSpec> services;
  RunSpec run;
  // Sessions (ids) that must end with result success before this one starts (batch sessions).
  std::vector<std::string> depends_on;

  // Driver-private state (agent pid, socket, cgroup); stored, never shown in the API.
  std::string driver_state;
  // 1-based place in the admission queue while pending for capacity; 0 otherwise. Not stored.
  int queue_position = 0;
};

// One row of a session's status history.
struct HistoryEntry {
  std::string session_id;
  std::optional<SessionState> from;  // nullopt for the entry that created the session
  SessionState to = SessionState::kPending;
  Reason reason = Reason::kUser;
  std::string actor;  // user id, or "system" for the controller
  TimePoint at;
  std::string message;  // detail, e.g. the error that caused the transition
};

// Where a volume may be mounted: absolute, normalized (no "." or ".." components, no "//", no
// trailing "/"), not "/", and not /proc, /dev or /sys or below them. An error naming `field`.
std::string CheckVolumePath(std::string_view path);

// DNS label: 1–63 of [a-z0-9-], starting and ending with a letter or digit.
bool IsValidName(std::string_view name);

// A session's title: at most kMaxTitleChars UTF-8 characters (code points), valid UTF-8, no
// control characters (C0, DEL, C1). Returns "" when valid, else why not (for a 400's message).
inline constexpr size_t kMaxTitleChars = 200;
std::string CheckTitle(std::string_view title);

}  // namespace hutch::core
