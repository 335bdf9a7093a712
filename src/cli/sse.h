// Reading Server-Sent Events (the WHATWG "event stream" format), as GET /v1/events writes them.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace hutch::client {

struct SseEvent {
  std::string id;     // the last `id:` seen so far in the stream (it carries over, as specified)
  std::string event;  // `event:`, "message" when the event named none
  std::string data;   // the `data:` lines joined by "\n"
};

// Turns bytes, fed in pieces of any size, into events. Lines end in "\n" or "\r\n"; lines
// starting with ':' are comments (hutch's pings); a blank line ends an event; an event without
// data is dropped; `retry:` and unknown fields are ignored.
class SseParser {
 public:
  void Feed(std::string_view bytes, const std::function<void(const SseEvent&)>& on_event);
  // The id of the last event seen: what a reconnect sends as Last-Event-ID.
  const std::string& last_id() const { return last_id_; }

 private:
  void Line(std::string_view line, const std::function<void(const SseEvent&)>& on_event);

  std::string partial_;  // the unfinished line
  std::string last_id_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace hutch::client
