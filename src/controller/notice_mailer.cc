#include "controller/notice_mailer.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/log.h"

namespace hutch::controller {

namespace {

constexpr std::string_view kCursor = "notice-mailer";
constexpr int kBatch = 100;

std::string Field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::optional<Mail> MailForNotice(const core::Event& event) {
  if (event.type != core::kEventWorkshopNotice) return std::nullopt;
  boost::system::error_code ec;
  json::value v = json::parse(event.data_json, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::object& d = v.as_object();
  if (Field(d, "recipient") != "participant") return std::nullopt;
  Mail m;
  m.to = Field(d, "email");
  if (m.to.empty()) return std::nullopt;
  m.subject = Field(d, "subject");
  m.body = Field(d, "body");
  m.date = event.at;
  m.message_id = fmt::format("<notice-{}-{}@hutch>", event.id, Field(d, "participant"));
  return m;
}

NoticeMailer::NoticeMailer(store::Store& store, NoticeMailerOptions options, Send send)
    : store_(store), options_(options), send_(std::move(send)) {}

NoticeMailer::~NoticeMailer() { Stop(); }

void NoticeMailer::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void NoticeMailer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NoticeMailer::Notify() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

bool NoticeMailer::Sleep(std::chrono::milliseconds d, bool wake_on_notify) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [&] { return stopping_ || (wake_on_notify && woken_); });
  woken_ = false;
  return !stopping_;
}

void NoticeMailer::Loop() {
  std::string last_error;
  while (true) {
    Status st = Drain();
    if (!st.ok() && st.message() != last_error) LOG_WARN("notice mailer: {}", st.ToString());
    last_error = st.ok() ? "" : st.message();
    if (!Sleep(options_.poll_interval, /*wake_on_notify=*/true)) return;
  }
}

Status NoticeMailer::Drain() {
  ASSIGN_OR_RETURN(std::optional<int64_t> stored, store_.GetEventCursor(kCursor));
  int64_t cursor = 0;
  if (stored) {
    cursor = *stored;
  } else {
    // The first start with email on: what was noticed before is not mailed now.
    ASSIGN_OR_RETURN(cursor, store_.LatestEventId());
    RETURN_IF_ERROR(store_.SetEventCursor(kCursor, cursor));
  }
  while (true) {
    store::EventFilter filter;
    filter.after_id = cursor;
    filter.types = {std::string(core::kEventWorkshopNotice)};
    filter.limit = kBatch;
    ASSIGN_OR_RETURN(std::vector<core::Event> events, store_.ListEvents(filter));
    if (events.empty()) return Status::Ok();
    for (const core::Event& e : events) {
      if (std::optional<Mail> mail = MailForNotice(e)) {
        if (!SendWithRetry(*mail, e.id)) return Status::Ok();  // stopping: the cursor stays
      }
      cursor = e.id;
      RETURN_IF_ERROR(store_.SetEventCursor(kCursor, cursor));
    }
  }
}

bool NoticeMailer::SendWithRetry(const Mail& mail, int64_t event_id) {
  std::chrono::milliseconds wait = options_.first_retry;
  for (int attempt = 1;; ++attempt) {
    Status st = send_(mail);
    if (st.ok()) {
      LOG_INFO("notice mailer: notice {} mailed to {}", event_id, mail.to);
      return true;
    }
    if (st.code() != Code::kUnavailable) {
      LOG_WARN("notice mailer: notice {} not mailed, the server refused it: {}", event_id,
               st.ToString());
      return true;
    }
    LOG_WARN("notice mailer: notice {} (attempt {}): {}; again in {} ms", event_id, attempt,
             st.ToString(), wait.count());
    if (!Sleep(wait, /*wake_on_notify=*/false)) return false;
    wait = std::min(wait * 2, options_.max_retry);
  }
}

}  // namespace hutch::controller
