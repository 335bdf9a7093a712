// Scenarios, courses and progress (docs/workshops.md, "Scenarios and courses").
//
// A scenario is ordered steps of instructions (markdown) on a template; a step may have a
// `check` (a shell command run in the participant's session: exit 0 passes) and a `setup` (run
// when the step starts). A course is ordered scenarios; with keep_environment the participant's
// session goes on into the next scenario (HobbyFarm's keep_course_vm), without it each scenario
// gets a fresh session from its own template. Both are written as documents like templates:
//
//   kind: Scenario
//   metadata: {name: files-101, title: "Files"}
//   spec:
//     template: lab
//     steps:
//       - title: Make a file
//         text: "Create `/root/hello.txt` containing `hi`."
//         check: "grep -qx hi /root/hello.txt"
//
//   kind: Course
//   metadata: {name: linux-101}
//   spec: {keep_environment: true, scenarios: [files-101, processes-101]}
//
// A workshop that runs one stores its plan: the scenarios as they were when it was made, so an
// edit during a class cannot shift anyone's step. Progress is per participant. No I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::core {

struct ScenarioStep {
  std::string title;
  std::string text;              // markdown, shown to the participant
  std::string check;             // shell command; passes on exit 0. Empty: the step has no check
  std::string setup;             // shell command run when the step starts. Empty: none
  int64_t timeout_seconds = 60;  // of the check and of the setup
};

struct Scenario {
  std::string name;  // DNS label, unique per owner
  std::string owner;
  std::string title;
  std::string description;
  std::string template_name;  // the owner's template its session is made from
  std::vector<ScenarioStep> steps;
  TimePoint created_at;
  TimePoint updated_at;
};

struct Course {
  std::string name;  // DNS label, unique per owner
  std::string owner;
  std::string title;
  std::string description;
  bool keep_environment = false;
  std::vector<std::string> scenarios;  // the owner's scenarios, in order
  TimePoint created_at;
  TimePoint updated_at;
};

// Documents in YAML or JSON; errors are invalid_argument naming the field and its line. The
// stored form (ToJson's) reads back with the same parsers.
Result<Scenario> ParseScenarioDocument(std::string_view text);
Result<Course> ParseCourseDocument(std::string_view text);
// {kind, apiVersion, metadata: {name, owner, title, description, created_at, updated_at}, spec}.
json::object ToJson(const Scenario& s);
json::object ToJson(const Course& c);

// What a workshop runs: one scenario, or a course's scenarios.
struct WorkshopPlan {
  std::string kind;  // "scenario" | "course"
  std::string name;
  std::string title;
  // A lone scenario has one environment; a course's comes from the course.
  bool keep_environment = true;
  std::vector<Scenario> scenarios;
};
json::object ToJson(const WorkshopPlan& p);
Result<WorkshopPlan> ParseWorkshopPlan(std::string_view stored);

// One step a participant started.
struct StepProgress {
  int scenario = 0;  // index into the plan's scenarios
  int step = 0;      // index into that scenario's steps
  TimePoint started_at;
  std::optional<TimePoint> completed_at;  // when they moved on
  int64_t attempts = 0;                   // checks run
  std::optional<TimePoint> passed_at;     // the first passing check
  bool setup_done = false;                // its setup ran (or it has none)
  int setup_exit_code = 0;
};

struct Progress {
  std::string participant_id;
  std::string workshop_id;
  std::vector<StepProgress> steps;  // in the order started; the last is the current one
  bool finished = false;            // moved on from the last step of the last scenario
  std::optional<TimePoint> finished_at;
  int64_t version = 0;  // the store's compare-and-set counter; 0: never stored
};

// A check run for a participant (POST /v1/me/workshop/check), one event each, owned by the
// instructor, about the participant's session; data: {workshop, participant, participant_name,
// scenario, scenario_index, step, step_title, attempt, exit_code, timed_out, output} (output: the
// last KiB).
inline constexpr std::string_view kEventCheckPassed = "check.passed";
inline constexpr std::string_view kEventCheckFailed = "check.failed";

// A participant's progress at their first step.
Progress StartProgress(std::string participant_id, std::string workshop_id, TimePoint now);
std::string SerializeProgress(const Progress& p);
Result<Progress> ParseProgress(std::string_view stored);

// The step the participant is on (REQUIRES: !p.steps.empty()).
inline StepProgress& CurrentStep(Progress& p) { return p.steps.back(); }
inline const StepProgress& CurrentStep(const Progress& p) { return p.steps.back(); }
// The plan's step of `s` (REQUIRES: s is within the plan).
const ScenarioStep& PlanStep(const WorkshopPlan& plan, const StepProgress& s);

// A check's outcome on the current step: one more attempt, and the first pass recorded.
void RecordCheck(Progress& p, bool passed, TimePoint now);

// Moves on to the next step (or the next scenario's first, or the end). conflict when the
// current step has a check that has not passed, or when the plan is done. Answers whether the
// move entered another scenario (the caller gives it a fresh environment unless the plan keeps
// it).
Result<bool> AdvanceProgress(Progress& p, const WorkshopPlan& plan, TimePoint now);

// The API's view: {finished, finished_at, scenario: {index, name, title}, step: {index, title,
// has_check, started_at, attempts, passed, passed_at, seconds}, steps: [...], checks_passed,
// total_steps}. `with_text` adds the current step's markdown (the participant's own view).
json::object ProgressJson(const Progress& p, const WorkshopPlan& plan, TimePoint now,
                          bool with_text);

}  // namespace hutch::core
