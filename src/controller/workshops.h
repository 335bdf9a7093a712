// WorkshopService runs workshops (docs/workshops.md): it stores them and their participants,
// moves each workshop through its states on the controller's tick (core/workshop.h), and makes,
// changes and ends the participants' sessions — always through SessionService, as the
// participant (who owns their session) on the instructor's behalf, so every rule of sessions
// (404 for another user's, the state machine, capacity) holds for them unchanged.
// All methods block (store and driver I/O): call them off network threads. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "controller/session_service.h"
#include "core/principal.h"
#include "core/session.h"
#include "core/workshop.h"
#include "core/workshop_notices.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

// A participant as GET …/participants shows them: with their session when they have one.
struct ParticipantView {
  core::Participant participant;
  std::optional<core::Session> session;
};

// A workshop with what GET shows beside it: participants n/max, environments by readiness,
// time remaining.
struct WorkshopView {
  core::Workshop workshop;
  int64_t participants = 0;
  int64_t ready = 0;     // sessions running (or paused: made, and waiting to be resumed)
  int64_t creating = 0;  // no session yet, or scheduled, pending or provisioning
  int64_t failed = 0;    // sessions in error
  int64_t ended = 0;     // sessions stopped, terminating, terminated or cancelled
};

// The operations of POST /v1/workshops/{id}/{op} that act on every participant's session.
enum class BulkOp { kExtend, kCheckpoint, kReset, kPause, kResume, kEnd, kCancel };
std::optional<BulkOp> ParseBulkOp(std::string_view name);
std::string_view ToString(BulkOp op);

struct BulkRequest {
  std::vector<std::string> participants;  // ids; empty: every participant
  bool failed = false;             // only those whose environment is missing, in error or ended
  int64_t seconds = 0;             // extend
  std::string name;                // checkpoint (required); reset (optional checkpoint)
  bool keep_environments = false;  // end: stop the sessions instead of terminating them
};

// One participant's outcome. One failure never stops the others.
struct BulkResult {
  std::string participant;
  std::string session;  // may be empty (none yet)
  Status status;
};

struct BulkOutcome {
  core::Workshop workshop;
  std::vector<BulkResult> results;
};

// What notices and health need from the server around the service (set once, before the first
// tick, by Configure).
struct WorkshopOptions {
  // What participants' browsers reach (config public_url); access links start with it.
  std::string public_url;
  // A new access-link secret and the hash stored for it (api/auth.h's token scheme).
  std::function<std::pair<std::string, std::string>()> new_access_secret;
  // Asked for the services of running sessions (health), without counting as their activity.
  drivers::Driver* driver = nullptr;
};

// POST …/messages: a custom notice to every participant, or to one.
struct MessageRequest {
  std::string subject;
  std::string body;
  std::string participant;  // empty: all
};

// GET …/health (docs/workshops.md, "Health").
struct WorkshopHealth {
  struct Failed {
    core::Participant participant;
    std::optional<core::Session> session;
  };
  struct UnhealthyService {
    core::Participant participant;
    std::string session;
    std::string service;
    std::string state;   // the service's (running, backoff, failed, …)
    std::string health;  // unhealthy, or none when its process is not running
    std::string message;
  };
  struct Unseen {
    core::Participant participant;
    std::string session;
    std::optional<TimePoint> last_seen_at;
  };
  core::Workshop workshop;
  int64_t participants = 0;
  int64_t unseen_seconds = 0;
  std::vector<Failed> failed;
  std::vector<UnhealthyService> unhealthy_services;
  std::vector<Unseen> unseen;
  // The sum over the environments that could be measured (running or paused).
  int64_t measured = 0;
  double cpu_seconds = 0;
  int64_t memory_bytes = 0;
  int64_t memory_limit_bytes = 0;
  int64_t disk_bytes = 0;
  int64_t pids = 0;
  TimePoint at;
};

class WorkshopService {
 public:
  // `run_async` runs work off the caller's thread (making environments in parallel); `notify`
  // wakes event streams after a workshop event was stored.
  WorkshopService(store::Store& store, SessionService& sessions,
                  std::function<void(std::function<void()>)> run_async,
                  std::function<void()> notify);

  // POST /v1/workshops. The caller must be an instructor or an admin (permission_denied). The
  // template must be the caller's, and max_participants × its resources must fit the server's
  // capacity (resource_exhausted naming both).
  Result<core::Workshop> Create(const core::Principal& who, const json::object& body);
  // By id or name; another instructor's is not_found (admins see every one).
  Result<WorkshopView> Get(const core::Principal& who, std::string_view id_or_name);
  // not_found unless the caller sees the workshop: checked before a request's body is judged,
  // so another instructor's workshop answers 404, never 400.
  Status CheckVisible(const core::Principal& who, std::string_view id_or_name) {
    return Lookup(who, id_or_name).status();
  }
  Result<std::vector<WorkshopView>> List(const core::Principal& who, bool include_ended);
  // PATCH: title, series, on_end at any time before ending; start_at, duration_seconds and
  // pre_provision_seconds while scheduled (afterwards the end moves by extend only);
  // max_participants not below the participants there are.
  Result<core::Workshop> Update(const core::Principal& who, std::string_view id_or_name,
                                const json::object& body);

  // Participants. All or none: the workshop must have room for all (resource_exhausted) and no
  // email may be in it already (conflict). In a workshop that is provisioning or active each
  // gets their environment at once (in the background); in a scheduled one at pre-provision.
  Result<std::vector<core::Participant>> AddParticipants(
      const core::Principal& who, std::string_view id_or_name,
      const std::vector<core::ParticipantInput>& inputs);
  // CSV with a header naming `name` and `email`: invalid_argument listing every bad line
  // ("line 4: email 'x' is not an email address") and nothing imported, or all imported.
  Result<std::vector<core::Participant>> ImportParticipants(const core::Principal& who,
                                                            std::string_view id_or_name,
                                                            std::string_view csv);
  Result<std::vector<ParticipantView>> ListParticipants(const core::Principal& who,
                                                        std::string_view id_or_name);
  // Terminates the participant's session, removes them and disables their identity (their
  // tokens stop working).
  Result<core::Participant> RemoveParticipant(const core::Principal& who,
                                              std::string_view id_or_name,
                                              std::string_view participant_id);

  // Bulk operations (see BulkOp). extend moves the workshop's end (a workshop.extended event)
  // and the end of each selected session that has one; end and cancel end the workshop itself
  // (end: now, keeping the environments stopped with keep_environments; cancel: before or
  // during, terminating them) and report each session's end.
  Result<BulkOutcome> Bulk(const core::Principal& who, std::string_view id_or_name, BulkOp op,
                           const BulkRequest& req);

  // Join codes (POST …/codes): a new random code of the workshop, with the request's slots
  // (default max_participants), expiry, one_time and email_domains.
  Result<core::JoinCode> CreateCode(const core::Principal& who, std::string_view id_or_name,
                                    const json::object& body);
  Result<std::vector<core::JoinCode>> ListCodes(const core::Principal& who,
                                                std::string_view id_or_name);
  Status RevokeCode(const core::Principal& who, std::string_view id_or_name, std::string_view code);

  // What a join or an opened access link answers: the participant, their workshop and session.
  struct Joined {
    core::Workshop workshop;
    core::Participant participant;
    std::optional<core::Session> session;
  };
  // POST /v1/join: anyone with a valid code becomes a participant (named `name`; an `email`
  // from the code's domains when it has any). Errors say what is wrong with the code: not_found
  // (unknown or revoked), conflict (expired), resource_exhausted (full), permission_denied (an
  // email outside its domains). `access_hash` is stored as the participant's access link. In a
  // provisioning or active workshop the session is made before this returns (not waited for).
  Result<Joined> Join(std::string_view code, const core::ParticipantInput& who,
                      const std::string& access_hash);
  // Issues the participant's access link anew (the old one stops working): its hash is stored.
  Result<core::Participant> IssueAccess(const core::Principal& who, std::string_view id_or_name,
                                        std::string_view participant_id,
                                        const std::string& access_hash);
  Status RevokeAccess(const core::Principal& who, std::string_view id_or_name,
                      std::string_view participant_id);
  // Opening an access link: the participant it belongs to, while their workshop has not ended
  // (not_found otherwise, the same for a revoked or unknown link).
  Result<Joined> OpenAccess(const std::string& access_hash);

  // GET /v1/me/workshop: the caller's own workshop and participant record (not_found for
  // anyone who is not a participant).
  Result<std::pair<core::Workshop, ParticipantView>> Mine(const core::Principal& who);

  void Configure(WorkshopOptions options) { options_ = std::move(options); }

  // A course's next scenario without keep_environment (controller/scenarios.h): the
  // participant's session is replaced by a fresh one from `template_name`, the scenario's, with
  // `actor` recorded as who did it.
  Status FreshEnvironment(const core::Workshop& w, const core::Participant& p,
                          std::string_view template_name, const std::string& actor);

  // POST …/messages: a notice with the instructor's subject and body ({name}, {title},
  // {access_url} filled in per participant) to every participant or one. Answers whom it went
  // to. conflict once the workshop has ended.
  Result<std::vector<core::Participant>> SendMessage(const core::Principal& who,
                                                     std::string_view id_or_name,
                                                     const MessageRequest& m);

  // GET …/health: environments that failed, services that are unhealthy, participants whose
  // session has not been touched for `unseen_seconds`, and the class's resource use.
  Result<WorkshopHealth> Health(const core::Principal& who, std::string_view id_or_name,
                                int64_t unseen_seconds);

  // One pass of the controller: moves workshops whose time has come (pre-provision, start,
  // end), makes missing environments of provisioning and active workshops, and ends the
  // environments of ending ones. Level-triggered: after a crash the next pass converges.
  void Tick();

 private:
  // The instructor as the workshop's controller acts: the template's owner.
  static core::Principal Instructor(const core::Workshop& w);
  // The participant, acted for by `actor` (the instructor, an admin or "system") for the
  // workshop: sessions are theirs, changes are recorded as the actor's with reason workshop.
  static core::Principal AsParticipant(const core::Workshop& w, const core::Participant& p,
                                       const std::string& actor);
  Result<core::Workshop> Lookup(const core::Principal& who, std::string_view id_or_name);
  // The create request of a participant's session: the instructor's template with the
  // workshop's name and labels; no ttl (the workshop's end ends it).
  Result<core::CreateSessionRequest> SessionRequest(const core::Workshop& w,
                                                    const core::Participant* p);
  // Moves the workshop (compare and set) and stores the workshop.<state> event with it.
  Status Move(core::Workshop& w, core::WorkshopState to, std::string_view reason,
              const std::string& actor);
  // Moves an ending workshop to completed for `who`; done also when the controller's pass
  // completed it meanwhile (then `w` is the stored one).
  Status Complete(const core::Principal& who, core::Workshop& w, const std::string& actor);
  // Makes the participant's session unless they have one (recorded, or found by its labels
  // after a crash between the insert and the record). Runs at most once at a time per
  // participant.
  Status EnsureSession(const core::Workshop& w, const core::Participant& p);
  // EnsureSession's work. REQUIRES: "p:<id>" claimed.
  Status EnsureSessionClaimed(const core::Workshop& w, const core::Participant& p);
  void EnsureSessionsAsync(const core::Workshop& w);
  // Bulk reset without a checkpoint: the participant's session `old` (if any) is replaced by a
  // new one from the template.
  Status ResetToFresh(const core::Workshop& w, const core::Participant& p,
                      const std::optional<core::Session>& old, const core::Principal& as);
  // One participant's part of a bulk operation (not end or cancel).
  BulkResult BulkOne(const core::Workshop& w, BulkOp op, const BulkRequest& req,
                     const ParticipantView& v, const std::string& actor);
  // Ends every participant's session as the workshop's on_end (or `stop`) says.
  std::vector<BulkResult> EndSessions(const core::Workshop& w, bool stop, const std::string& actor);
  // Notices (workshop_notices.cc). The ready, warning and ending notices that are due for `w`.
  void SendDueNotices(const core::Workshop& w);
  void SendEndingNotice(const core::Workshop& w);
  // Records notice `key` (once) with a workshop.notice event per recipient and copy: conflict
  // when it was sent before.
  Status SendNotice(const core::Workshop& w, core::NoticeKind kind, const std::string& key,
                    const core::NoticeTemplate& text, std::vector<core::Participant> to,
                    int64_t minutes_left, const std::string& actor);
  // The participant's access URL for a notice that names it: a new link when they have none
  // (stored on `p`), else the console's address (the secret of a link is never kept).
  std::string AccessUrlFor(core::Participant& p);
  bool NoticeSent(const std::string& key);
  void MarkNoticeSent(const std::string& key);

  // Claims `key` for one background action; false when one runs.
  bool Claim(const std::string& key);
  void Release(const std::string& key);

  store::Store& store_;
  SessionService& sessions_;
  std::function<void(std::function<void()>)> run_async_;
  std::function<void()> notify_;
  std::mutex mu_;
  std::set<std::string> in_flight_;  // GUARDED_BY(mu_): "p:<participant>", "w:<workshop>"
  // GUARDED_BY(mu_): participants whose environment failed to be made, and when to try again.
  std::map<std::string, TimePoint> retry_after_;
  // GUARDED_BY(mu_): notices known to be recorded (the store's key says so for good; this saves
  // asking it on every pass).
  std::set<std::string> notices_sent_;
  WorkshopOptions options_;
};

}  // namespace hutch::controller
