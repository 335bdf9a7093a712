#include "cli/sse.h"

#include <gtest/gtest.h>

#include <vector>

namespace hutch::client {
namespace {

std::vector<SseEvent> Parse(SseParser& p, std::string_view bytes) {
  std::vector<SseEvent> out;
  p.Feed(bytes, [&](const SseEvent& e) { out.push_back(e); });
  return out;
}

TEST(SseParser, ReadsIdTypeAndDataAndSkipsComments) {
  SseParser p;
  auto events = Parse(p,
                      "retry: 2000\n\n: ping\n\nid: 7\nevent: session.ready\ndata: {\"a\":1}\n\n"
                      "id: 8\r\nevent: session.paused\r\ndata:x\r\ndata: y\r\n\r\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "7");
  EXPECT_EQ(events[0].event, "session.ready");
  EXPECT_EQ(events[0].data, "{\"a\":1}");
  EXPECT_EQ(events[1].id, "8");
  EXPECT_EQ(events[1].event, "session.paused");
  EXPECT_EQ(events[1].data, "x\ny");
  EXPECT_EQ(p.last_id(), "8");
}

TEST(SseParser, EventsSplitAcrossPiecesOfAnySize) {
  const std::string stream = "id: 1\nevent: a\ndata: one\n\nid: 2\nevent: b\ndata: two\n\n";
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    SseParser p;
    std::vector<SseEvent> events;
    for (size_t i = 0; i < stream.size(); i += piece) {
      auto got = Parse(p, std::string_view(stream).substr(i, piece));
      events.insert(events.end(), got.begin(), got.end());
    }
    ASSERT_EQ(events.size(), 2u) << piece;
    EXPECT_EQ(events[1].data, "two");
    EXPECT_EQ(events[1].event, "b");
  }
}

TEST(SseParser, DataLessEventsAreDroppedAndTypeDefaultsToMessage) {
  SseParser p;
  auto events = Parse(p, "id: 3\nevent: x\n\ndata: hi\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "message");
  EXPECT_EQ(events[0].id, "3");  // the id carries over
  EXPECT_EQ(events[0].data, "hi");
}

}  // namespace
}  // namespace hutch::client
