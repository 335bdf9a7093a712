#include "controller/notice_mailer.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace hutch::controller {
namespace {

core::Event Notice(std::string recipient, std::string email, std::string subject) {
  core::Event e;
  e.at = Now();
  e.type = std::string(core::kEventWorkshopNotice);
  e.owner = "usr_p";
  e.data_json = json::serialize(json::object{{"recipient", recipient},
                                             {"email", email},
                                             {"participant", "wsp_1"},
                                             {"subject", subject},
                                             {"body", "line one\n.line two\n"}});
  return e;
}

TEST(NoticeMailerTest, OnlyTheParticipantsCopyWithAnEmailIsMailed) {
  core::Event e = Notice("participant", "ada@example.com", "Ready");
  e.id = 42;
  std::optional<Mail> m = MailForNotice(e);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->to, "ada@example.com");
  EXPECT_EQ(m->subject, "Ready");
  EXPECT_EQ(m->message_id, "<notice-42-wsp_1@hutch>");
  EXPECT_FALSE(MailForNotice(Notice("instructor", "ada@example.com", "Ready")).has_value());
  EXPECT_FALSE(MailForNotice(Notice("participant", "", "Ready")).has_value());
  core::Event other = e;
  other.type = "workshop.active";
  EXPECT_FALSE(MailForNotice(other).has_value());
}

TEST(NoticeMailerTest, TheMessageHasCrlfLinesAndAnEncodedSubjectWhenNotAscii) {
  SmtpOptions o;
  o.from = "labs@example.com";
  Mail m{"ada@example.com", "Prüfung", "a\nb", "<x@hutch>", Now()};
  std::string text = FormatMail(o, m);
  EXPECT_NE(text.find("Subject: =?UTF-8?B?UHLDvGZ1bmc=?=\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("From: labs@example.com\r\n"), std::string::npos);
  EXPECT_NE(text.find("Message-ID: <x@hutch>\r\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("\r\n\r\na\r\nb\r\n")) << text;
}

// The mailer starts after what was in the log, retries while the server is unavailable, skips
// what it refuses for good, and resumes after its cursor when started again.
TEST(NoticeMailerTest, RetriesUnavailableSkipsRefusedAndResumesAfterItsCursor) {
  char tmpl[] = "/tmp/hutch-mailer-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  auto store = store::OpenSqliteStore(dir + "/hutch.db");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  store::Store& db = **store;
  int keys = 0;
  auto put = [&](const core::Event& e) {
    return db.AppendNotice("k" + std::to_string(++keys), "wks_1", e.at, {e}).ok();
  };
  ASSERT_TRUE(put(Notice("participant", "old@example.com", "before")));

  std::mutex mu;
  std::vector<std::string> sent;
  std::atomic<int> unavailable{2};
  auto send = [&](const Mail& m) -> Status {
    if (m.subject == "flaky" && unavailable.fetch_sub(1) > 0) return Unavailable("try later");
    if (m.to == "bad@example.com") return InvalidArgument("550 no such user");
    std::lock_guard lock(mu);
    sent.push_back(m.subject);
    return Status::Ok();
  };
  NoticeMailerOptions opts;
  opts.first_retry = std::chrono::milliseconds(10);
  opts.poll_interval = std::chrono::milliseconds(20);
  auto wait_for = [&](size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mu);
        if (sent.size() >= n) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  {
    NoticeMailer mailer(db, opts, send);
    mailer.Start();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the cursor is set at start
    ASSERT_TRUE(put(Notice("participant", "ada@example.com", "flaky")));
    ASSERT_TRUE(put(Notice("participant", "bad@example.com", "refused")));
    ASSERT_TRUE(put(Notice("instructor", "ada@example.com", "copy")));
    ASSERT_TRUE(put(Notice("participant", "bob@example.com", "second")));
    mailer.Notify();
    wait_for(2);
  }
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(sent, (std::vector<std::string>{"flaky", "second"}));
  }
  ASSERT_TRUE(put(Notice("participant", "eve@example.com", "after restart")));
  NoticeMailer again(db, opts, send);
  again.Start();
  wait_for(3);
  again.Stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(sent, (std::vector<std::string>{"flaky", "second", "after restart"}));
}

}  // namespace
}  // namespace hutch::controller
