#include "cli/sse.h"

namespace hutch::client {

void SseParser::Feed(std::string_view bytes, const std::function<void(const SseEvent&)>& on_event) {
  partial_.append(bytes);
  size_t start = 0;
  for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(partial_.data() + start, nl - start);
    if (line.ends_with('\r')) line.remove_suffix(1);
    Line(line, on_event);
  }
  partial_.erase(0, start);
}

void SseParser::Line(std::string_view line, const std::function<void(const SseEvent&)>& on_event) {
  if (line.empty()) {
    if (has_data_) {
      SseEvent e;
      e.id = last_id_;
      e.event = event_.empty() ? "message" : event_;
      e.data = std::move(data_);
      on_event(e);
    }
    event_.clear();
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // a comment
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_ = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_ = std::string(value);
  }
}

}  // namespace hutch::client
