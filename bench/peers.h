// The peers hutch is measured against in the same run: other tools that put `/bin/true` in a
// sandbox. Each round is one whole command — sandbox up, run, torn down — timed from the spawn to
// the reap, because that is what a caller of the tool waits for.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace hutch::bench {

class Peer {
 public:
  virtual ~Peer() = default;

  // "bwrap", "runc".
  virtual std::string name() const = 0;
  // The tool's version line ("bubblewrap 0.8.0").
  virtual std::string version() const = 0;
  // The command a round runs, for the report.
  virtual std::string command() const = 0;
  // Runs one round (`round` makes names unique) and answers its wall time in nanoseconds;
  // internal when the tool fails, with what it wrote to stderr.
  virtual Result<int64_t> RunOnce(int round) = 0;
};

// `bwrap --unshare-all --die-with-parent --ro-bind /usr /usr <the host's merged-usr symlinks>
// --proc /proc --dev /dev --tmpfs /tmp -- /bin/true`. `work_dir` holds the stderr capture.
Result<std::unique_ptr<Peer>> MakeBwrapPeer(const std::string& bwrap, const std::string& work_dir);

// `runc --root <work_dir>/runc-state run --bundle <work_dir>/runc-bundle <id>`: an OCI bundle
// made once from `runc spec`, with /usr bound read-only into an otherwise empty root, the host's
// merged-usr symlinks, and process.args ["/bin/true"]. The destructor deletes any container left
// in that state dir (an interrupted round) and removes the bundle and the state dir.
Result<std::unique_ptr<Peer>> MakeRuncPeer(const std::string& runc, const std::string& work_dir);

}  // namespace hutch::bench
