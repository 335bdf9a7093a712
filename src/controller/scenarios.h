// ScenarioService (docs/workshops.md, "Scenarios and courses"): stores scenarios and courses,
// gives a workshop the plan it runs, and walks each participant through it — their progress,
// the checks run in their session, and the move to the next step or scenario (a fresh session
// per scenario unless the course keeps the environment).
// All methods block (store and agent I/O): call them off network threads. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "controller/session_service.h"
#include "controller/workshops.h"
#include "core/principal.h"
#include "core/scenario.h"
#include "store/store.h"

namespace hutch::controller {

// "scenario" or "course": the two kinds of courseware, stored alike.
enum class CoursewareKind { kScenario, kCourse };
std::string_view ToString(CoursewareKind k);

class ScenarioService {
 public:
  // `notify` wakes event streams after a check's event was stored.
  ScenarioService(store::Store& store, SessionService& sessions, WorkshopService& workshops,
                  std::function<void()> notify);

  // POST /v1/scenarios, /v1/courses: stores the document (YAML or JSON) as the caller's,
  // replacing one of that name; answers it as stored and whether it is new. A course's
  // scenarios and a scenario's template must be the caller's (not_found naming them).
  // Participants may not (permission_denied).
  Result<std::pair<json::object, bool>> Apply(const core::Principal& who, CoursewareKind kind,
                                              std::string_view document);
  // The caller's (an admin's list shows every user's).
  Result<std::vector<json::object>> List(const core::Principal& who, CoursewareKind kind);
  Result<json::object> Get(const core::Principal& who, CoursewareKind kind, std::string_view name);
  Status Delete(const core::Principal& who, CoursewareKind kind, std::string_view name);

  // POST /v1/workshops with `scenario` or `course`: takes that field out of `body` and answers
  // the plan (nullopt when the body names neither). The workshop's template is the first
  // scenario's: `template` may be left out, and must be that one when given.
  Result<std::optional<core::WorkshopPlan>> TakePlan(const core::Principal& who,
                                                     json::object& body);
  // Stores the plan of the workshop just made.
  Status SetPlan(const core::Workshop& w, const core::WorkshopPlan& plan);

  // The participant's own progress (GET /v1/me/workshop/progress), with the current step's
  // text; the current step's setup runs first if it has not (and the session runs).
  Result<json::object> MyProgress(const core::Principal& who);
  // POST /v1/me/workshop/check: runs the current step's check in the participant's session →
  // {passed, output, exit_code, timed_out, attempts, step}. conflict when the session is not
  // running. Each check is a check.passed / check.failed event.
  Result<json::object> Check(const core::Principal& who);
  // POST /v1/me/workshop/next: on to the next step (conflict until its check passed); into the
  // next scenario with a fresh session unless the plan keeps the environment. Answers the new
  // progress as MyProgress does.
  Result<json::object> Next(const core::Principal& who);
  // GET /v1/workshops/{id}/progress: every participant's progress, for the instructor.
  Result<json::object> WorkshopProgress(const core::Principal& who, std::string_view id_or_name);

 private:
  // What a participant's request works on, read fresh.
  struct Mine {
    core::Workshop workshop;
    core::Participant participant;
    core::WorkshopPlan plan;
    core::Progress progress;
  };
  Result<Mine> LoadMine(const core::Principal& who);
  // Stores `m.progress` (compare and set) and bumps its version.
  Status Save(Mine& m);
  // Runs the current step's setup when it has one that has not run and the session runs.
  // Answers whether the progress changed.
  bool RunSetupIfDue(const core::Principal& who, Mine& m);
  // The running session of the participant, conflict otherwise.
  Result<core::Session> RunningSession(const core::Principal& who, const Mine& m);
  void AppendCheckEvent(const core::Principal& who, const Mine& m, const core::Session& s,
                        const core::ExecResult& r, bool passed, const std::string& output);
  // One request at a time per participant: a check and a next must not interleave.
  std::shared_ptr<std::mutex> ParticipantLock(const std::string& participant_id);

  store::Store& store_;
  SessionService& sessions_;
  WorkshopService& workshops_;
  std::function<void()> notify_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;  // GUARDED_BY(mu_)
};

}  // namespace hutch::controller
