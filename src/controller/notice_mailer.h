// The notice mailer: emails workshop notices (core/workshop_notices.h) to participants who have
// an email address, when an SMTP server is configured (`smtp:`).
//
// One thread tails the event log for workshop.notice events (the participant's copy) from a
// named cursor kept in the store, and moves the cursor past each notice once its mail is sent:
// a restart neither loses a notice nor mails one a second time, unless the server died between
// the server's "250 OK" and the cursor's write (then it is sent again with the same
// Message-ID). A server that cannot be reached, or answers a temporary error, holds the queue
// and is tried again after 1 s, 2 s, 4 s … (up to a minute) until it answers; a mail it refuses
// for good (5xx) is logged and skipped.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "controller/smtp.h"
#include "core/event.h"
#include "store/store.h"

namespace hutch::controller {

struct NoticeMailerOptions {
  std::chrono::milliseconds first_retry{1000};
  std::chrono::milliseconds max_retry{60000};
  // How often the log is looked at without being notified.
  std::chrono::milliseconds poll_interval{1000};
};

// The mail for a notice event: the participant's copy of a workshop.notice with an email in
// its data; nullopt for any other event.
std::optional<Mail> MailForNotice(const core::Event& event);

class NoticeMailer {
 public:
  using Send = std::function<Status(const Mail&)>;
  NoticeMailer(store::Store& store, NoticeMailerOptions options, Send send);
  ~NoticeMailer();  // Stop()s
  NoticeMailer(const NoticeMailer&) = delete;
  NoticeMailer& operator=(const NoticeMailer&) = delete;

  void Start();
  // Stops the thread; a mail under way is finished (it is bounded by the SMTP timeout).
  void Stop();
  // New events may be in the store. Cheap, non-blocking.
  void Notify();

 private:
  void Loop();
  // Mails every notice past the cursor; stops early when stopping.
  Status Drain();
  // Sends `mail`, retrying while the server is unavailable; false when stopping.
  bool SendWithRetry(const Mail& mail, int64_t event_id);
  // Waits up to `d` or until stopped or notified; false when stopping.
  bool Sleep(std::chrono::milliseconds d, bool wake_on_notify);

  store::Store& store_;
  const NoticeMailerOptions options_;
  Send send_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;   // GUARDED_BY(mu_)
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool woken_ = false;     // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace hutch::controller
