#include "hutch_runner.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/json.h"
#include "process.h"
#include "stats.h"

namespace hutch::bench {

namespace {

constexpr std::string_view kExecTrueBody = R"({"cmd":["true"]})";
constexpr std::string_view kLabelKey = "hutch-bench";

// "POST /v1/sessions: 409 conflict: …" from a non-2xx answer.
Status RequestError(std::string_view what, const client::HttpResponse& response) {
  Status st = client::StatusFromResponse(response);
  std::string hint;
  if (response.status == 429) {
    hint =
        " (the bench sends requests back to back; run the server with rate_limit.per_second: 0 "
        "and enough quota.max_sessions, or let the bench start its own with --hutch)";
  }
  return Status(st.code(),
                fmt::format("{}: HTTP {}: {}{}", what, response.status, st.message(), hint));
}

bool Is2xx(int status) { return status >= 200 && status < 300; }

}  // namespace

HutchRunner::HutchRunner(client::ApiClient api, std::string run_label)
    : api_(std::move(api)), run_label_(std::move(run_label)) {
  // Image `host`, every other field at its default: the case DESIGN.md §8's targets are set for.
  // The TTL is a safety net: if the bench is killed before it can delete, the server ends the
  // sessions by itself.
  json::object body;
  body["labels"] = json::object{{kLabelKey, run_label_}};
  body["ttl_seconds"] = 900;
  create_body_ = json::serialize(body);
}

HutchRunner::~HutchRunner() { Cleanup(); }

Result<std::string> HutchRunner::ServerVersion() {
  ASSIGN_OR_RETURN(json::object v, api_.Version());
  if (const json::value* s = v.if_contains("version"); s && s->is_string())
    return std::string(s->as_string());
  return std::string("unknown");
}

Result<std::string> HutchRunner::CreateAndExec(int64_t* create_ns, int64_t* exec_ns,
                                               int64_t* total_ns) {
  client::HttpClient& http = api_.http();
  const int64_t t0 = MonotonicNs();
  Result<client::HttpResponse> created = http.Request("POST", "/v1/sessions", create_body_);
  const int64_t t1 = MonotonicNs();
  if (!created.ok()) return created.status().WithContext("POST /v1/sessions");
  if (!Is2xx(created->status)) return RequestError("POST /v1/sessions", *created);
  // Reading the id is part of what any client does before it can exec, so it stays timed.
  Result<json::object> session = client::ParseResponseJson(created->body);
  if (!session.ok()) return session.status().WithContext("POST /v1/sessions answer");
  const json::value* id_value = session->if_contains("id");
  if (id_value == nullptr || !id_value->is_string())
    return Internal("POST /v1/sessions answered no id: " + created->body.substr(0, 200));
  std::string id(id_value->as_string());
  std::string exec_target = "/v1/sessions/" + id + "/exec";
  const int64_t t2 = MonotonicNs();
  Result<client::HttpResponse> executed = http.Request("POST", exec_target, kExecTrueBody);
  const int64_t t3 = MonotonicNs();
  live_.push_back(id);

  const json::value* state = session->if_contains("state");
  if (state == nullptr || !state->is_string() || state->as_string() != "running")
    return Internal(fmt::format("session {} is {} after POST /v1/sessions (wait=true)", id,
                                state ? json::serialize(*state) : "without state"));
  if (!executed.ok()) return executed.status().WithContext("POST " + exec_target);
  if (!Is2xx(executed->status)) return RequestError("POST " + exec_target, *executed);
  ASSIGN_OR_RETURN(json::object result, client::ParseResponseJson(executed->body));
  const json::value* exit_code = result.if_contains("exit_code");
  if (exit_code == nullptr || !exit_code->is_int64() || exit_code->as_int64() != 0)
    return Internal(fmt::format("`true` in {} did not exit 0: {}", id, executed->body));
  *create_ns = t1 - t0;
  *exec_ns = t3 - t2;
  *total_ns = t3 - t0;
  return id;
}

Result<int64_t> HutchRunner::ExecTrue(const std::string& id) {
  std::string target = "/v1/sessions/" + id + "/exec";
  const int64_t t0 = MonotonicNs();
  Result<client::HttpResponse> executed = api_.http().Request("POST", target, kExecTrueBody);
  const int64_t t1 = MonotonicNs();
  if (!executed.ok()) return executed.status().WithContext("POST " + target);
  if (!Is2xx(executed->status)) return RequestError("POST " + target, *executed);
  ASSIGN_OR_RETURN(json::object result, client::ParseResponseJson(executed->body));
  const json::value* exit_code = result.if_contains("exit_code");
  if (exit_code == nullptr || !exit_code->is_int64() || exit_code->as_int64() != 0)
    return Internal(fmt::format("`true` in {} did not exit 0: {}", id, executed->body));
  return t1 - t0;
}

Result<int64_t> HutchRunner::Delete(const std::string& id) {
  std::string target = "/v1/sessions/" + id;
  const int64_t t0 = MonotonicNs();
  Result<client::HttpResponse> deleted = api_.http().Request("DELETE", target);
  const int64_t t1 = MonotonicNs();
  if (!deleted.ok()) return deleted.status().WithContext("DELETE " + target);
  if (!Is2xx(deleted->status)) return RequestError("DELETE " + target, *deleted);
  live_.erase(std::remove(live_.begin(), live_.end(), id), live_.end());
  return t1 - t0;
}

Status HutchRunner::Run(const HutchOptions& options, HutchSamples* out) {
  auto interrupted = [] { return Unavailable("interrupted"); };
  int64_t create_ns, exec_ns, total_ns;

  {
    Progress progress("hutch warm-up", options.warmup);
    for (int i = 0; i < options.warmup; ++i) {
      if (Interrupted()) return interrupted();
      ASSIGN_OR_RETURN(std::string id, CreateAndExec(&create_ns, &exec_ns, &total_ns));
      RETURN_IF_ERROR(Delete(id).status());
      progress.Update(i + 1);
    }
  }

  std::vector<std::string> ids;
  {
    Progress progress("hutch create → first exec", options.sessions);
    for (int i = 0; i < options.sessions; ++i) {
      if (Interrupted()) return interrupted();
      ASSIGN_OR_RETURN(std::string id, CreateAndExec(&create_ns, &exec_ns, &total_ns));
      ids.push_back(id);
      out->create_ns.push_back(create_ns);
      out->first_exec_ns.push_back(exec_ns);
      out->create_first_exec_ns.push_back(total_ns);
      progress.Update(i + 1);
    }
  }

  if (!ids.empty()) {
    Progress progress("hutch exec round trip", options.exec_iterations);
    for (int i = 0; i < options.exec_iterations; ++i) {
      if (Interrupted()) return interrupted();
      ASSIGN_OR_RETURN(int64_t ns, ExecTrue(ids.front()));
      out->exec_ns.push_back(ns);
      if ((i + 1) % 10 == 0) progress.Update(i + 1);
    }
  }

  {
    Progress progress("hutch delete", static_cast<int>(ids.size()));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (Interrupted()) return interrupted();
      ASSIGN_OR_RETURN(int64_t ns, Delete(ids[i]));
      out->delete_ns.push_back(ns);
      out->total_ns.push_back(out->create_first_exec_ns[i] + ns);
      progress.Update(static_cast<int>(i + 1));
    }
  }
  out->connections_opened = api_.http().connections_opened();
  return Status::Ok();
}

int HutchRunner::Cleanup() {
  int deleted = 0;
  std::vector<std::string> ids = live_;
  for (const std::string& id : ids) {
    if (Delete(id).ok()) ++deleted;
  }
  live_.clear();
  // A create that was sent but whose answer never came (an interrupt, a timeout) left a session
  // the bench has no id for; the label finds it.
  Result<std::vector<core::Session>> rest =
      api_.ListSessions(client::QueryEscape(fmt::format("label={}={}", kLabelKey, run_label_)));
  if (rest.ok()) {
    for (const core::Session& s : *rest) {
      if (s.state == core::SessionState::kTerminated || s.state == core::SessionState::kCancelled)
        continue;
      if (api_.DeleteSession(s.id).ok()) ++deleted;
    }
  }
  return deleted;
}

}  // namespace hutch::bench
