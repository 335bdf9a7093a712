// Sending one email over SMTP (the notice mailer's transport). libcurl's smtp:// and smtps://
// support does the protocol (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, dot-stuffing); this file
// only builds the message and maps the outcome to a Status.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/time.h"

namespace hutch::controller {

struct SmtpOptions {
  std::string host;  // empty: email is off
  int port = 25;
  std::string from;  // the envelope and From: address
  std::string user;  // AUTH when set
  std::string password;
  // none: plain SMTP; starttls: upgrade with STARTTLS and refuse a server without it; tls: TLS
  // from the first byte (smtps, port 465).
  std::string security = "none";
  std::chrono::milliseconds timeout{15000};
};

struct Mail {
  std::string to;
  std::string subject;
  std::string body;        // plain text, UTF-8; "\n" line ends
  std::string message_id;  // "<…@…>": lets a receiver drop a copy sent twice
  TimePoint date;
};

// The message as sent: headers (a non-ASCII subject in RFC 2047 form), a blank line, the body
// with CRLF line ends.
std::string FormatMail(const SmtpOptions& options, const Mail& mail);

// Sends `mail`. unavailable when the server cannot be reached or answers a temporary error
// (4xx), invalid_argument when it refuses the message or a recipient for good (5xx).
Status SendMail(const SmtpOptions& options, const Mail& mail);

}  // namespace hutch::controller
