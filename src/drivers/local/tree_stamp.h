// The stamp of an extracted layer's tree (image_store.h's file comment: what it covers and why
// it catches a change), and the sorted listing both the stamp and the tar of a tree walk by.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::drivers::local {

// Sorted names of a directory, "." and ".." left out.
Result<std::vector<std::string>> ListDir(int dir_fd, const std::string& what);

// The stamp of a tree; `entries` (optional) receives how many it covers.
Result<std::string> StampTree(int dir_fd, int64_t* entries);

}  // namespace hutch::drivers::local
