#include "cli/tar_producer.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace hutch::cli {

client::HttpClient::Producer TarProducer(files::TreeTar& tar,
                                         std::function<void(size_t n)> on_sent) {
  // The piece read last and how much of it went out; shared because a Producer is copyable.
  struct State {
    std::string pending;
    size_t offset = 0;
    bool ended = false;
  };
  auto state = std::make_shared<State>();
  return [&tar, state, on_sent = std::move(on_sent)](char* buf, size_t cap) -> Result<size_t> {
    State& s = *state;
    while (s.offset == s.pending.size() && !s.ended) {
      ASSIGN_OR_RETURN(auto piece, tar.Next(1 << 20));
      if (!piece) {
        s.ended = true;
        break;
      }
      s.pending = std::move(*piece);
      s.offset = 0;
    }
    size_t n = std::min(cap, s.pending.size() - s.offset);
    memcpy(buf, s.pending.data() + s.offset, n);
    s.offset += n;
    on_sent(n);
    return n;
  };
}

}  // namespace hutch::cli
