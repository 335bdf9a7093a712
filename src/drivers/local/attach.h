// The local driver's attached shells (Driver::Attach, docs/attach.md): a transient hutch-agent
// cloned from the sealed copy every sandbox's agent runs from, into a child of the target's
// cgroups, which enters the target's namespaces itself (agent.h, RunAttachAgent) and serves on
// a unix socket under data_dir/attach/<id>/ like a sandbox's agent.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "core/attach.h"
#include "drivers/driver.h"

namespace hutch::drivers::local {

struct AttachLaunch {
  std::string data_dir;
  std::string agent_path;  // for messages
  int agent_exe_fd = -1;   // the sealed copy of hutch-agent
};

Result<std::unique_ptr<AttachedAgent>> StartAttachedAgent(
    const AttachLaunch& launch, const std::string& attach_id, const core::AttachTarget& target,
    const std::map<std::string, std::string>& env);

}  // namespace hutch::drivers::local
