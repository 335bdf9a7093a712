// Filesystem helpers shared by the fuzz targets of the files API (header-only: each target is
// compiled by its own clang command from the sources it covers).
#pragma once

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace hutch::fuzz {

// How many entries `dir` has (0 when missing).
inline int CountEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  int n = 0;
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) ++n;
  closedir(d);
  return n;
}

inline int RemoveOne(const char* path, const struct stat*, int type, struct FTW*) {
  return type == FTW_DP ? rmdir(path) : unlink(path);
}

// Removes what is below `dir`, never following symlinks (dir itself stays).
inline void EmptyDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  closedir(d);
  for (const auto& n : names) nftw((dir + "/" + n).c_str(), RemoveOne, 16, FTW_DEPTH | FTW_PHYS);
}

// Removes `dir` and all below it when the fuzzer exits (libFuzzer ends a timed run with exit()),
// so runs leave no directories behind. One directory per process.
inline void RemoveAtExit(const std::string& dir) {
  static std::string* registered = nullptr;
  if (registered) return;
  registered = new std::string(dir);
  atexit([] {
    EmptyDir(*registered);
    rmdir(registered->c_str());
  });
}

}  // namespace hutch::fuzz
