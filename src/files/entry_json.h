// The JSON of an Entry, as GET …/files (a listing) and GET …/files/stat answer it. Apart from
// ops.h so that the agent's build of src/files (hutch_files_agent) needs no Boost.JSON.
#pragma once

#include "common/json.h"
#include "files/ops.h"

namespace hutch::files {

json::object ToJson(const Entry& e);

}  // namespace hutch::files
