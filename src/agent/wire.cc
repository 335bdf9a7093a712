#include "agent/wire.h"

namespace hutch::agent {

void WireWriter::U32(uint32_t v) {
  for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void WireWriter::U64(uint64_t v) {
  for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void WireWriter::String(std::string_view s) {
  U32(static_cast<uint32_t>(s.size()));
  out_.append(s);
}

void WireWriter::StringList(const std::vector<std::string>& list) {
  U32(static_cast<uint32_t>(list.size()));
  for (const auto& s : list) String(s);
}

void WireWriter::StringMap(const std::map<std::string, std::string>& map) {
  U32(static_cast<uint32_t>(map.size()));
  for (const auto& [k, v] : map) {
    String(k);
    String(v);
  }
}

bool WireReader::Fail(std::string_view what) {
  if (error_.empty()) {
    error_ = std::string(what) + " at offset " + std::to_string(pos_);
  }
  return false;
}

bool WireReader::Take(size_t n, std::string_view what, const char** p) {
  if (!ok()) return false;
  if (n > remaining()) return Fail(std::string("truncated ") + std::string(what));
  *p = data_.data() + pos_;
  pos_ += n;
  return true;
}

bool WireReader::U8(uint8_t* v) {
  const char* p;
  if (!Take(1, "u8", &p)) return false;
  *v = static_cast<uint8_t>(p[0]);
  return true;
}

bool WireReader::U32(uint32_t* v) {
  const char* p;
  if (!Take(4, "u32", &p)) return false;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
  *v = r;
  return true;
}

bool WireReader::U64(uint64_t* v) {
  const char* p;
  if (!Take(8, "u64", &p)) return false;
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  *v = r;
  return true;
}

bool WireReader::I32(int32_t* v) {
  uint32_t u;
  if (!U32(&u)) return false;
  *v = static_cast<int32_t>(u);
  return true;
}

bool WireReader::I64(int64_t* v) {
  uint64_t u;
  if (!U64(&u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

bool WireReader::Bool(bool* v) {
  uint8_t u;
  if (!U8(&u)) return false;
  if (u > 1) {
    pos_ -= 1;
    return Fail("bool out of range");
  }
  *v = u == 1;
  return true;
}

bool WireReader::String(std::string* s, size_t max_len) {
  uint32_t len;
  if (!U32(&len)) return false;
  if (len > max_len) {
    pos_ -= 4;
    return Fail("string longer than " + std::to_string(max_len) + " bytes");
  }
  const char* p;
  if (!Take(len, "string", &p)) return false;
  s->assign(p, len);
  return true;
}

bool WireReader::StringList(std::vector<std::string>* list, size_t max_items, size_t max_len) {
  uint32_t n;
  if (!U32(&n)) return false;
  // Every element takes at least its 4-byte length, so a count the input cannot hold is
  // rejected before anything is reserved.
  if (n > max_items || n > remaining() / 4) {
    pos_ -= 4;
    return Fail("list count " + std::to_string(n) + " out of range");
  }
  list->clear();
  list->reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::string s;
    if (!String(&s, max_len)) return false;
    list->push_back(std::move(s));
  }
  return true;
}

bool WireReader::StringMap(std::map<std::string, std::string>* map, size_t max_items,
                           size_t max_len) {
  uint32_t n;
  if (!U32(&n)) return false;
  if (n > max_items || n > remaining() / 8) {
    pos_ -= 4;
    return Fail("map count " + std::to_string(n) + " out of range");
  }
  map->clear();
  for (uint32_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!String(&k, max_len) || !String(&v, max_len)) return false;
    (*map)[std::move(k)] = std::move(v);
  }
  return true;
}

bool WireReader::ExpectEnd() {
  if (!ok()) return false;
  if (remaining() != 0) return Fail(std::to_string(remaining()) + " trailing bytes");
  return true;
}

}  // namespace hutch::agent
