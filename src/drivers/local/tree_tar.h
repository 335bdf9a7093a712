// A tree written as an OCI layer tar: what a commit or a debootstrap build stores as a layer.
#pragma once

#include <functional>
#include <string_view>

#include "common/status.h"

namespace hutch::drivers::local {

// Writes the tree at `dir_fd` as a tar to `out`, in pieces: overlay whiteouts (0/0 character
// devices) become `.wh.NAME` entries, opaque directories get a `.wh..wh..opq` entry, other
// device nodes and sockets are left out; files with several links are hard links after their
// first path.
Status WriteTreeAsTar(int dir_fd, std::function<Status(std::string_view)> out);

}  // namespace hutch::drivers::local
