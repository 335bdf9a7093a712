// Fuzz target for the tar reader and the extractor behind it (src/files/tar.h, archive.h), fed
// through the decompressor as the server does. Oracles: the reader's callbacks come in order
// with exactly the announced data (checked by a sink in front of the extractor), limits hold, and
// nothing is ever created outside the extraction directory.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "files/archive.h"
#include "files/codec.h"
#include "files/tar.h"

#include "fuzz_fs.h"

namespace {

std::string g_base, g_dest, g_outside;
hutch::files::Root* g_root = nullptr;

void Setup() {
  char tmpl[] = "/tmp/hutch-fuzz-tar-XXXXXX";
  if (!mkdtemp(tmpl)) abort();
  g_base = tmpl;
  hutch::fuzz::RemoveAtExit(g_base);
  mkdir((g_base + "/root").c_str(), 0755);
  g_dest = g_base + "/root/dest";
  g_outside = g_base + "/outside";
  mkdir(g_dest.c_str(), 0755);
  mkdir(g_outside.c_str(), 0755);
  g_root = new hutch::files::Root();
  g_root->fd = hutch::UniqueFd(open((g_base + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

// Checks the reader's contract and passes everything on.
class CheckingSink final : public hutch::files::TarSink {
 public:
  explicit CheckingSink(hutch::files::TarSink& next) : next_(next) {}
  hutch::Status OnEntry(const hutch::files::TarEntry& e) override {
    if (in_entry_) abort();
    in_entry_ = true;
    left_ = e.size;
    return next_.OnEntry(e);
  }
  hutch::Status OnData(std::string_view d) override {
    if (!in_entry_ || d.size() > left_) abort();
    left_ -= d.size();
    return next_.OnData(d);
  }
  hutch::Status OnEntryEnd() override {
    if (!in_entry_ || left_ != 0) abort();
    in_entry_ = false;
    return next_.OnEntryEnd();
  }

 private:
  hutch::files::TarSink& next_;
  bool in_entry_ = false;
  uint64_t left_ = 0;
};

using hutch::fuzz::CountEntries;
using hutch::fuzz::EmptyDir;
using hutch::fuzz::RemoveOne;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_root) Setup();
  {
    hutch::UniqueFd dest(open(g_dest.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    hutch::files::ExtractLimits limits;
    limits.max_bytes = 1 << 20;
    limits.max_entries = 64;
    hutch::files::Extractor ex(*g_root, std::move(dest), "/dest", limits);
    CheckingSink sink(ex);
    hutch::files::TarReader reader(sink);
    uint64_t out_bytes = 0;
    hutch::files::Decompressor dec([&](std::string_view piece) {
      out_bytes += piece.size();
      return reader.Feed(piece);
    });
    std::string_view in(reinterpret_cast<const char*>(data), size);
    hutch::Status st = dec.Feed(in);
    if (st.ok()) st = dec.Finish();
    if (st.ok()) st = reader.Finish();
    if (st.ok()) (void)ex.Finish();
    if (ex.bytes() > limits.max_bytes || ex.entries() > limits.max_entries + 1) abort();
  }
  if (CountEntries(g_outside) != 0 || CountEntries(g_base) != 2 ||
      CountEntries(g_base + "/root") != 1) {
    fprintf(stderr, "the extractor wrote outside its directory\n");
    abort();
  }
  EmptyDir(g_dest);
  return 0;
}
