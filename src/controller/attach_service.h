// Attached shells (docs/attach.md): registered targets, attach sessions with their state
// machine (core/attach.h), who may attach, the per-service limit, the transient agent each
// shell runs in (Driver::Attach, or a hutch session's own agent), recordings, and the idle and
// absolute timeouts. Blocking (store, driver): call off network threads, except where noted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "core/attach.h"
#include "core/principal.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::agent {
class Transport;
}  // namespace hutch::agent

namespace hutch::controller {

class SessionService;
class AttachRecording;
class TerminalTap;

// The server's attach settings (the `attach:` section of its config).
struct AttachOptions {
  // The Docker Engine's socket for docker targets that name none.
  std::string docker_host = std::string(core::kDefaultDockerHost);
  // Recordings whose shell ended longer ago than this many days are deleted; 0 keeps them.
  int64_t recording_retention_days = 0;
};

class AttachService {
 public:
  // `audit_command(attach session, command)`: a line entered in a shell, for the audit trail.
  using CommandFn = std::function<void(const core::AttachSession&, std::string)>;
  AttachService(store::Store& store, drivers::Driver& driver, SessionService& sessions,
                std::string data_dir, CommandFn audit_command, AttachOptions options = {});
  ~AttachService();  // ends every live shell (reason server_stop)

  // Targets: the API lets only admins call these.
  Result<core::TargetRegistration> AddTarget(core::TargetRegistration t);
  Result<std::vector<core::TargetRegistration>> ListTargets();
  Result<core::TargetRegistration> GetTarget(std::string_view service_name);
  Status RemoveTarget(std::string_view service_name);

  struct CreateRequest {
    std::string service_name;
    std::optional<core::AttachTarget> target;  // admins only
    std::vector<std::string> command;          // empty: the target's
    std::string title;
  };
  // Starts the shell's agent; the session is active (or terminated with the error, which is
  // then returned). A service the caller may not attach to is not_found; one with max_concurrent
  // shells live is resource_exhausted naming the limit.
  Result<core::AttachSession> Create(const core::Principal& who, const CreateRequest& req);
  // The caller's own, or any for an admin; not_found otherwise.
  Result<core::AttachSession> Get(const core::Principal& who, std::string_view id);
  Result<std::vector<core::AttachSession>> List(const core::Principal& who, std::string_view state,
                                                int limit);
  // Ends the shell: its agent and every process it started are killed. reason "user" or
  // "admin" (the caller's role decides).
  Result<core::AttachSession> End(const core::Principal& who, std::string_view id);

  // The terminal of an active shell (one at a time: a second is a conflict).
  struct Terminal {
    core::AttachSession session;
    std::shared_ptr<const agent::Transport> transport;
    std::shared_ptr<TerminalTap> tap;
    std::vector<std::string> argv;  // what runs
  };
  Result<Terminal> OpenTerminal(const core::Principal& who, std::string_view id);
  // The terminal closed (the shell exited or the client went away): the shell ends with
  // reason "exit". Non-blocking: the ending runs on the service's own thread.
  void TerminalClosed(const std::string& id);
  // What ends an open terminal from the server's side (its connection shut down): the only way
  // to end a `session` target's shell, which runs in the session's own agent, not one of the
  // shell's. Given while the terminal runs, cleared (null) before it returns. Non-blocking.
  void SetTerminalCloser(const std::string& id, std::function<void()> close);
  // Bytes moved: the idle clock starts again. Non-blocking.
  void NoteActivity(const std::string& id);
  // Whether the shell still runs. Non-blocking.
  bool IsLive(const std::string& id);

  // The recording file of `id` for an admin (the target's users never read it); not_found
  // otherwise or when there is none.
  Result<std::string> RecordingPath(const core::Principal& who, std::string_view id);
  // Whether `who` may watch `id` live (admin, or allowed to attach to its service); the
  // session and its recording's path.
  Result<std::pair<core::AttachSession, std::string>> Observe(const core::Principal& who,
                                                              std::string_view id);

  // Ends shells past their idle or absolute timeout, and (once a minute) deletes recordings past
  // the retention; called by the reconciler's tick.
  void Tick();
  // Deletes the recordings of shells that are not live and whose file was last written before
  // `now` less recording_retention_days (nothing when that is 0); how many.
  int SweepRecordings(TimePoint now);
  // Shells left active by a server that stopped without ending them: terminated with reason
  // server_restart (their agents were killed with their cgroups, or are gone).
  void ReconcileAtStart();

 private:
  struct Live {
    core::AttachSession session;
    std::unique_ptr<drivers::AttachedAgent> agent;  // null for a session target
    std::shared_ptr<const agent::Transport> transport;
    std::shared_ptr<AttachRecording> recording;
    std::chrono::steady_clock::time_point last_activity;
    bool terminal_open = false;
    std::function<void()> close_terminal;  // GUARDED_BY(mu_)
  };

  bool MayAttach(const core::Principal& who, const core::TargetRegistration& t) const;
  Status Save(const core::AttachSession& s);
  Result<core::AttachSession> Load(std::string_view id);
  // Ends a live shell: kills its agent, records terminated with `reason`.
  Result<core::AttachSession> Finish(const std::string& id, std::string reason,
                                     std::string message = "");
  std::string RecordingFile(std::string_view id) const;

  store::Store& store_;
  drivers::Driver& driver_;
  SessionService& sessions_;
  std::string data_dir_;
  CommandFn audit_command_;
  const AttachOptions options_;
  std::chrono::steady_clock::time_point last_sweep_{};

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Live>> live_;  // GUARDED_BY(mu_)
  std::map<std::string, int> reserved_;                // per service name; GUARDED_BY(mu_)
  // Shells whose terminal closed, ended by `ender_` (killing a cgroup blocks).
  std::vector<std::string> to_end_;  // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  std::condition_variable to_end_cv_;
  std::thread ender_;
};

}  // namespace hutch::controller
