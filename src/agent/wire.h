// The agent protocol's primitive encoding: little-endian fixed-width integers, strings as
// u32 length + bytes, lists and maps as u32 count + elements. WireWriter appends; WireReader
// checks every read against the bytes that are left and never allocates more than the input
// could hold, so a malformed or hostile message costs at most its own size.
//
// Used by both ends (the static agent and the server), so it depends on the C++ standard
// library only — no Boost, no fmt.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hutch::agent {

class WireWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v);
  void U64(uint64_t v);
  void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void String(std::string_view s);
  void StringList(const std::vector<std::string>& list);
  void StringMap(const std::map<std::string, std::string>& map);

  const std::string& data() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  // Each returns false (and records error()) when the input ends early or a value is out of
  // range; after the first failure every later call fails too.
  bool U8(uint8_t* v);
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool I32(int32_t* v);
  bool I64(int64_t* v);
  bool Bool(bool* v);  // only 0 or 1
  bool String(std::string* s, size_t max_len);
  bool StringList(std::vector<std::string>* list, size_t max_items, size_t max_len);
  bool StringMap(std::map<std::string, std::string>* map, size_t max_items, size_t max_len);

  // Fails unless every byte was consumed: trailing garbage is a malformed message.
  bool ExpectEnd();

  bool ok() const { return error_.empty(); }
  // "truncated u32 at offset 12"; empty while ok.
  const std::string& error() const { return error_; }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  bool Fail(std::string_view what);
  bool Take(size_t n, std::string_view what, const char** p);

  std::string_view data_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace hutch::agent
