#include "controller/attach_recording.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

#include "common/json.h"
#include "common/time.h"

namespace hutch::controller {

namespace {

constexpr size_t kMaxCommandBytes = 4096;

Status WriteLine(int fd, std::string line) {
  line += '\n';
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write recording", errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// The length of the valid UTF-8 sequence at the start of `s` (1..4), 0 when it is invalid, -1
// when it is cut off by the end of `s`.
int Utf8Length(std::string_view s) {
  unsigned char c = static_cast<unsigned char>(s[0]);
  int n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n <= 1) return n;
  for (int i = 1; i < n; ++i) {
    if (static_cast<size_t>(i) >= s.size()) return -1;
    if ((static_cast<unsigned char>(s[i]) >> 6) != 0x2) return 0;
  }
  return n;
}

// `data` as valid UTF-8 (asciicast is JSON text): a sequence cut off at the end waits in
// `*carry` for the next call, invalid bytes become U+FFFD.
std::string ValidUtf8(std::string* carry, std::string_view data) {
  std::string in = *carry + std::string(data);
  carry->clear();
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    int n = Utf8Length(std::string_view(in).substr(i));
    if (n < 0) {
      *carry = in.substr(i);
      break;
    }
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(in, i, static_cast<size_t>(n));
    i += static_cast<size_t>(n);
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<AttachRecording>> AttachRecording::Create(
    const std::string& path, std::string title, bool record_input,
    std::function<void(std::string command)> on_command) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError("create recording " + path, errno);
  json::object header;
  header["version"] = 2;
  header["width"] = 80;
  header["height"] = 24;
  header["timestamp"] = ToUnixMillis(Now()) / 1000;
  header["title"] = title;
  json::object env;
  env["TERM"] = "xterm-256color";
  header["env"] = env;
  RETURN_IF_ERROR(WriteLine(fd.get(), json::serialize(header)));
  return std::shared_ptr<AttachRecording>(
      new AttachRecording(std::move(fd), record_input, std::move(on_command)));
}

void AttachRecording::Event(std::string_view code, std::string_view data) {
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  json::array e{json::value(std::round(t * 1e6) / 1e6), json::value(code), json::value(data)};
  // A full disk loses recording lines, never the shell.
  (void)WriteLine(fd_.get(), json::serialize(e));
}

void AttachRecording::Output(std::string_view data) {
  std::lock_guard lock(mu_);
  std::string text = ValidUtf8(&output_carry_, data);
  if (!text.empty()) Event("o", text);
}

void AttachRecording::Input(std::string_view data) {
  std::vector<std::string> commands;
  {
    std::lock_guard lock(mu_);
    if (record_input_) {
      std::string text = ValidUtf8(&input_carry_, data);
      if (!text.empty()) Event("i", text);
    }
    for (char c : data) {
      if (c == '\r' || c == '\n') {
        if (!line_.empty()) commands.push_back(std::move(line_));
        line_.clear();
      } else if (c == 0x7f || c == '\b') {
        if (!line_.empty()) line_.pop_back();
      } else if (c == 0x03 || c == 0x15) {  // ^C, ^U: the line is dropped
        line_.clear();
      } else if (line_.size() < kMaxCommandBytes) {
        line_ += c;
      }
    }
  }
  if (on_command_)
    for (auto& c : commands) on_command_(std::move(c));
}

void AttachRecording::Resize(uint16_t rows, uint16_t cols) {
  std::lock_guard lock(mu_);
  Event("r", fmt::format("{}x{}", cols, rows));
}

Result<std::string> AsciicastOutput(std::string_view cast) {
  std::string out;
  size_t start = cast.find('\n');  // after the header
  if (start == std::string_view::npos) return out;
  ++start;
  while (start < cast.size()) {
    size_t nl = cast.find('\n', start);
    if (nl == std::string_view::npos) nl = cast.size();
    std::string_view line = cast.substr(start, nl - start);
    start = nl + 1;
    if (line.empty()) continue;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_array() || v.as_array().size() != 3)
      return InvalidArgument("not an asciicast v2 event line: " + std::string(line.substr(0, 80)));
    const json::array& a = v.as_array();
    if (a[1].is_string() && a[1].as_string() == "o" && a[2].is_string()) out += a[2].as_string();
  }
  return out;
}

std::string TerminalText(std::string_view output) {
  std::string out;
  for (size_t i = 0; i < output.size(); ++i) {
    char c = output[i];
    if (c == '\x1b') {
      // CSI: ESC [ params final; OSC: ESC ] … BEL or ESC \; others: one more byte.
      if (i + 1 < output.size() && output[i + 1] == '[') {
        i += 2;
        while (i < output.size() && !(output[i] >= 0x40 && output[i] <= 0x7e)) ++i;
      } else if (i + 1 < output.size() && output[i + 1] == ']') {
        i += 2;
        while (i < output.size() && output[i] != '\a' &&
               !(output[i] == '\x1b' && i + 1 < output.size() && output[i + 1] == '\\'))
          ++i;
        if (i < output.size() && output[i] == '\x1b') ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\r') {
      if (i + 1 < output.size() && output[i + 1] == '\n') continue;
      continue;
    }
    if (c == '\b') {
      if (!out.empty() && out.back() != '\n') out.pop_back();
      continue;
    }
    if (c == '\a') continue;
    out += c;
  }
  return out;
}

}  // namespace hutch::controller
