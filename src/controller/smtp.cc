#include "controller/smtp.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace hutch::controller {

namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// libcurl reads the message through this.
struct Upload {
  const std::string* data;
  size_t offset = 0;
};

size_t ReadUpload(char* buffer, size_t size, size_t n, void* user) {
  auto* up = static_cast<Upload*>(user);
  size_t left = up->data->size() - up->offset;
  size_t len = std::min(left, size * n);
  std::memcpy(buffer, up->data->data() + up->offset, len);
  up->offset += len;
  return len;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// A header value as it may be sent: ASCII as is, anything else as an RFC 2047 encoded word.
std::string HeaderText(std::string_view text) {
  bool ascii = std::all_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (ascii) return std::string(text);
  return "=?UTF-8?B?" + Base64(text) + "?=";
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string FormatMail(const SmtpOptions& options, const Mail& mail) {
  std::string out;
  out += fmt::format("Date: {:%a, %d %b %Y %H:%M:%S} +0000\r\n",
                     std::chrono::floor<std::chrono::seconds>(mail.date));
  out += fmt::format("From: {}\r\n", options.from);
  out += fmt::format("To: {}\r\n", mail.to);
  out += fmt::format("Subject: {}\r\n", HeaderText(mail.subject));
  if (!mail.message_id.empty()) out += fmt::format("Message-ID: {}\r\n", mail.message_id);
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += "Content-Transfer-Encoding: 8bit\r\n\r\n";
  for (char c : mail.body) {
    if (c == '\r') continue;
    if (c == '\n')
      out += "\r\n";
    else
      out += c;
  }
  if (!out.ends_with("\r\n")) out += "\r\n";
  return out;
}

Status SendMail(const SmtpOptions& options, const Mail& mail) {
  if (options.host.empty()) return Unavailable("no SMTP server is configured");
  InitCurlOnce();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Internal("curl_easy_init failed");
  const bool implicit_tls = options.security == "tls";
  const std::string url =
      fmt::format("{}://{}:{}", implicit_tls ? "smtps" : "smtp", options.host, options.port);
  const std::string message = FormatMail(options, mail);
  const std::string from = "<" + options.from + ">";
  const std::string to = "<" + mail.to + ">";
  std::unique_ptr<curl_slist, SlistDeleter> rcpt(curl_slist_append(nullptr, to.c_str()));
  Upload up{&message};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt.get());
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadUpload);
  curl_easy_setopt(c, CURLOPT_READDATA, &up);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  if (options.security == "starttls") curl_easy_setopt(c, CURLOPT_USE_SSL, CURLUSESSL_ALL);
  if (!options.user.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, options.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, options.password.c_str());
  }
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) return Status::Ok();
  long answer = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &answer);
  std::string what =
      fmt::format("send mail to {} through {}:{}: {}{}", mail.to, options.host, options.port,
                  curl_easy_strerror(rc), error[0] ? fmt::format(" ({})", error) : std::string());
  if (answer >= 500 && answer < 600) return InvalidArgument(what);
  return Unavailable(what);
}

}  // namespace hutch::controller
