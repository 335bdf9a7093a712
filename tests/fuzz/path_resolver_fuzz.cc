// Fuzz target for the confined path resolver (src/files/resolve.h). Oracle: whatever the path
// and whatever symlinks the input plants first, a successful resolution names something inside
// the root, and nothing outside the root is ever created.
//
// Input: a sequence of records separated by '\n'. A record "L<name>\t<target>" plants a symlink
// <name> (one component) → <target> inside the root; any other record is a path to resolve
// (opened O_PATH, then as a parent for a create with WriteFile).
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "files/ops.h"
#include "files/resolve.h"

#include "fuzz_fs.h"

namespace {

std::string g_base, g_root, g_outside;
hutch::files::Root* g_root_fd = nullptr;

void Setup() {
  char tmpl[] = "/tmp/hutch-fuzz-resolver-XXXXXX";
  if (!mkdtemp(tmpl)) abort();
  g_base = tmpl;
  hutch::fuzz::RemoveAtExit(g_base);
  g_root = g_base + "/root";
  g_outside = g_base + "/outside";
  mkdir(g_root.c_str(), 0755);
  mkdir(g_outside.c_str(), 0755);
  mkdir((g_root + "/a").c_str(), 0755);
  mkdir((g_root + "/a/b").c_str(), 0755);
  symlink(g_outside.c_str(), (g_root + "/out").c_str());
  symlink("../../..", (g_root + "/a/up").c_str());
  g_root_fd = new hutch::files::Root();
  g_root_fd->fd = hutch::UniqueFd(open(g_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

// Where an fd points, as this process sees it.
std::string FdPath(int fd) {
  char buf[4096];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

bool Inside(const std::string& p) { return p == g_root || p.rfind(g_root + "/", 0) == 0; }

using hutch::fuzz::CountEntries;
using hutch::fuzz::EmptyDir;
using hutch::fuzz::RemoveOne;

void CheckOutsideEmpty() {
  if (CountEntries(g_outside) != 0) {
    fprintf(stderr, "something was created outside the root\n");
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_root_fd) Setup();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  int planted = 0;
  while (!in.empty()) {
    size_t nl = in.find('\n');
    std::string_view rec = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (rec.size() > 1 && rec[0] == 'L' && planted < 4) {
      size_t tab = rec.find('\t');
      if (tab == std::string_view::npos) continue;
      std::string name(rec.substr(1, tab - 1)), target(rec.substr(tab + 1));
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
          name.find('\0') != std::string::npos || target.find('\0') != std::string::npos)
        continue;
      std::string p = g_root + "/a/b/" + name;
      unlink(p.c_str());
      if (symlink(target.c_str(), p.c_str()) == 0) ++planted;
      continue;
    }
    std::string path(rec);
    auto fd = hutch::files::OpenInRoot(g_root_fd->fd.get(), path.empty() ? "/" : path, O_PATH);
    if (fd.ok()) {
      std::string where = FdPath(fd->get());
      if (!Inside(where)) {
        fprintf(stderr, "resolved '%s' to '%s', outside %s\n", path.c_str(), where.c_str(),
                g_root.c_str());
        abort();
      }
    }
    if (hutch::files::CheckPath(path).ok() && path.size() < 200) {
      std::string target = path + "/fz";
      (void)hutch::files::WriteFile(
          *g_root_fd, target, {}, [](char*, size_t) -> hutch::Result<size_t> { return size_t{0}; });
    }
  }
  CheckOutsideEmpty();
  // Start the next input from the same tree: /a/b empty, the planted names gone.
  EmptyDir(g_root + "/a/b");
  DIR* d = opendir(g_root.c_str());
  std::vector<std::string> extra;
  while (d && (errno = 0, true)) {
    struct dirent* e = readdir(d);
    if (!e) break;
    std::string n = e->d_name;
    if (n != "." && n != ".." && n != "a" && n != "out") extra.push_back(n);
  }
  if (d) closedir(d);
  for (const auto& n : extra) nftw((g_root + "/" + n).c_str(), RemoveOne, 16, FTW_DEPTH | FTW_PHYS);
  unlink((g_root + "/a/fz").c_str());
  return 0;
}
