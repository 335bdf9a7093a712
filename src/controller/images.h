// ImageService: images (list, inspect, import, build, delete) and commits of sessions into
// images, on top of the driver's image store (docs/server.md, "Images"). Imports, builds and
// commits run as tasks (tasks.h). Images are shared by every user of the server: anyone may
// list them and start sessions on them; only whoever made one (or an admin) deletes it, and
// never while a live session uses it. All methods block: call them off network threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "controller/tasks.h"
#include "core/principal.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

// An image as one user sees it: images are shared, the sessions on them and who made them are
// not — another user's session ids and user id never show.
struct ImageView {
  drivers::ImageInfo info;
  int64_t used_count = 0;            // live sessions on it, everyone's
  std::vector<std::string> used_by;  // the viewer's own among them (every one for an admin)
  bool show_owner = false;           // the viewer made it, or is an admin
};

class ImageService {
 public:
  ImageService(store::Store& store, drivers::Driver& driver, TaskRunner& tasks)
      : store_(store), driver_(driver), tasks_(tasks) {}

  Result<std::vector<ImageView>> List(const core::Principal& who);
  Result<ImageView> Get(const core::Principal& who, const std::string& name);
  // permission_denied unless `who` made it or is an admin; conflict while a live session uses
  // it, naming them.
  Status Delete(const core::Principal& who, const std::string& name);
  // A new sink for an uploaded archive (the driver's), for Import.
  Result<std::unique_ptr<drivers::ImageUpload>> BeginUpload();
  // Starts a task that imports the received archive (and drops it afterwards, whatever
  // happens). The name is checked before the task starts (conflict when it is taken).
  Result<store::Task> Import(const core::Principal& who, const std::string& name,
                             const std::string& format,
                             std::unique_ptr<drivers::ImageUpload> upload);
  Result<store::Task> Build(const core::Principal& who, const std::string& name,
                            const drivers::DebootstrapSpec& spec);
  // POST /v1/sessions/{id}/commit: a running, paused or stopped session of `who`.
  Result<store::Task> Commit(const core::Principal& who, std::string_view session,
                             const std::string& image);

 private:
  Status CheckNewName(const std::string& name);
  Result<ImageView> View(const core::Principal& who, drivers::ImageInfo info);

  store::Store& store_;
  drivers::Driver& driver_;
  TaskRunner& tasks_;
};

json::object ImageJson(const ImageView& v);

}  // namespace hutch::controller
