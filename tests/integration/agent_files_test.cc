// The file operations of the agent (agent/files_protocol.h) against a real sandbox of the local
// driver, in both modes: with fd passing over the unix transport, and forced into the streamed
// mode a transport without fds (TCP) gets. Needs root; skips without.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/file_client.h"
#include "agent/transport.h"
#include "common/ids.h"
#include "drivers/driver.h"
#include "drivers/local/local_driver.h"
#include "files/tar.h"
#include "testing/test_util.h"

namespace hutch::agent {
namespace {

// The local driver's transport with fd passing switched off: what a TCP transport looks like to
// the file operations.
class NoFdTransport final : public Transport {
 public:
  explicit NoFdTransport(std::shared_ptr<const Transport> inner)
      : Transport(inner->session_id(), inner->secret()), inner_(std::move(inner)) {}
  Result<UniqueFd> Connect(int64_t timeout_ms) const override {
    return inner_->Connect(timeout_ms);
  }
  boost::asio::awaitable<Result<Socket>> AsyncConnect(
      boost::asio::any_io_executor executor) const override {
    return inner_->AsyncConnect(executor);
  }
  std::string Describe() const override { return inner_->Describe() + " (no fds)"; }
  bool CarriesFds() const override { return false; }

 private:
  std::shared_ptr<const Transport> inner_;
};

class AgentFilesTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    cgroup_root_ = NewId("hutch-test");
    drivers::LocalDriverOptions opts;
    opts.data_dir = dir_.path() + "/data";
    opts.agent_path = HUTCH_AGENT_BINARY;
    opts.cgroup_root_name = cgroup_root_;
    auto driver = drivers::NewLocalDriver(opts);
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(*driver);
    drivers::SandboxSpec spec;
    spec.session_id = NewId("ses");
    spec.image = "host";
    auto state = driver_->Create(spec);
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    id_ = spec.session_id;
    state_ = *state;
    auto t = driver_->ConnectAgent(id_, state_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    transport_ = *t;
    if (!fds()) transport_ = std::make_shared<NoFdTransport>(transport_);
  }

  void TearDown() override {
    if (!driver_) return;
    if (!id_.empty()) {
      EXPECT_TRUE(driver_->Destroy(id_, state_).ok());
    }
    driver_.reset();
    for (const auto& h : hutch::testing::CgroupHierarchies())
      rmdir((h + "/" + cgroup_root_).c_str());
  }

  bool fds() const { return GetParam(); }

  std::string Sh(const std::string& script) {
    core::ExecRequest r;
    r.argv = {"/bin/sh", "-c", script};
    r.timeout_ms = 30000;
    auto out = driver_->Exec(id_, state_, r);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? out->stdout_data : "";
  }

  Result<FileEntryMessage> Write(const std::string& path, const std::string& data) {
    FileRequest req;
    req.path = path;
    req.parents = true;
    size_t pos = 0;
    return FileWrite(*transport_, req, [&](char* buf, size_t n) -> Result<size_t> {
      size_t take = std::min(n, data.size() - pos);
      std::copy_n(data.data() + pos, take, buf);
      pos += take;
      return take;
    });
  }

  // The whole of a streamed download or archive.
  static std::string Drain(FileDataReader& r) {
    std::string out;
    for (;;) {
      auto piece = r.Next();
      EXPECT_TRUE(piece.ok()) << piece.status().ToString();
      if (!piece.ok() || !*piece) return out;
      out += **piece;
    }
  }

  std::string Read(const std::string& path, uint64_t offset, uint64_t length) {
    auto d = FileOpenRead(*transport_, path);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (!d.ok()) return "";
    EXPECT_FALSE(d->directory);
    // The mode the transport asked for is the mode the agent answered in.
    EXPECT_EQ(static_cast<bool>(d->fd), fds());
    if (d->fd) {
      std::string out(length, '\0');
      ssize_t n = pread(d->fd.get(), out.data(), length, static_cast<off_t>(offset));
      out.resize(n < 0 ? 0 : static_cast<size_t>(n));
      return out;
    }
    auto reader = FileReadRange(std::move(*d), offset, length);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    return reader.ok() ? Drain(**reader) : "";
  }

  hutch::testing::TempDir dir_{"hutch-agent-files-test"};
  std::string cgroup_root_;
  std::unique_ptr<drivers::Driver> driver_;
  std::string id_, state_;
  std::shared_ptr<const Transport> transport_;
};

TEST_P(AgentFilesTest, WriteThenReadWholeAndRangesByteExact) {
  std::string data(3 * kFileChunk + 123, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  auto w = Write("/work/deep/f.bin", data);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->created);
  EXPECT_EQ(w->entry.path, "/work/deep/f.bin");
  EXPECT_EQ(w->entry.size, data.size());
  EXPECT_EQ(Read("/work/deep/f.bin", 0, data.size()), data);
  EXPECT_EQ(Read("/work/deep/f.bin", kFileChunk - 5, 10), data.substr(kFileChunk - 5, 10));
  // Made by the agent, so owned by root inside the sandbox, as the API promised before.
  EXPECT_EQ(Sh("stat -c %u:%g:%a /work/deep/f.bin"), "0:0:644\n");
}

TEST_P(AgentFilesTest, PassedFdIsReadOnly) {
  if (!fds()) GTEST_SKIP() << "no fd in the streamed mode";
  ASSERT_TRUE(Write("/tmp/ro", "x").ok());
  auto d = FileOpenRead(*transport_, "/tmp/ro");
  ASSERT_TRUE(d.ok() && d->fd);
  EXPECT_EQ(write(d->fd.get(), "y", 1), -1);
  EXPECT_EQ(fcntl(d->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
}

TEST_P(AgentFilesTest, DirectoriesListStatMkdirMoveRemove) {
  FileRequest mkdir;
  mkdir.path = "/work/a/b";
  mkdir.has_mode = true;
  mkdir.mode = 0750;
  mkdir.parents = true;
  auto mk = FileMkdir(*transport_, mkdir);
  ASSERT_TRUE(mk.ok()) << mk.status().ToString();
  EXPECT_EQ(mk->type, files::FileType::kDirectory);
  EXPECT_EQ(mk->mode, 0750u);
  ASSERT_TRUE(Write("/work/a/b/x.txt", "hello").ok());
  auto d = FileOpenRead(*transport_, "/work/a");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->directory);
  auto l = FileList(*transport_, "/work/a", 3, 100);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  std::vector<std::string> paths;
  for (const auto& e : l->entries) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/work/a/b", "/work/a/b/x.txt"}));
  auto mv = FileMove(*transport_, "/work/a/b/x.txt", "/work/y.txt", false);
  ASSERT_TRUE(mv.ok()) << mv.status().ToString();
  EXPECT_EQ(mv->size, 5u);
  auto st = FileStat(*transport_, "/work/y.txt");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->name, "y.txt");
  EXPECT_EQ(FileRemove(*transport_, "/work/a", false).code(), Code::kConflict);  // not empty
  EXPECT_TRUE(FileRemove(*transport_, "/work/a", true).ok());
  EXPECT_EQ(FileStat(*transport_, "/work/a").status().code(), Code::kNotFound);
  EXPECT_EQ(Sh("ls /work"), "y.txt\n");
}

TEST_P(AgentFilesTest, ErrorsKeepTheirApiCodes) {
  EXPECT_EQ(FileStat(*transport_, "/nope").status().code(), Code::kNotFound);
  EXPECT_EQ(FileList(*transport_, "/etc/hostname", 1, 10).status().code(), Code::kConflict);
  EXPECT_EQ(FileOpenRead(*transport_, "/dev/null").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(FileStat(*transport_, "/proc/self/status").status().code(), Code::kPermissionDenied);
  // An upload the agent refuses at once: the client stops sending and gets the error, also
  // with megabytes still to go.
  std::string big(8 << 20, 'x');
  FileRequest req;
  req.path = "/missing/dir/f";
  size_t pos = 0;
  auto w = FileWrite(*transport_, req, [&](char* buf, size_t n) -> Result<size_t> {
    size_t take = std::min(n, big.size() - pos);
    std::copy_n(big.data() + pos, take, buf);
    pos += take;
    return take;
  });
  EXPECT_EQ(w.status().code(), Code::kNotFound) << w.status().ToString();
}

TEST_P(AgentFilesTest, ArchiveAndExtractRoundTripATree) {
  Sh("mkdir -p /work/t/sub && echo one > /work/t/a && echo two > /work/t/sub/b && "
     "ln -s a /work/t/link");
  auto tar = FileArchive(*transport_, "/work/t");
  ASSERT_TRUE(tar.ok()) << tar.status().ToString();
  std::string bytes = Drain(**tar);
  EXPECT_GT(bytes.size(), 4 * files::kTarBlock);
  FileRequest req;
  req.path = "/restore";
  req.parents = true;
  auto up = FileExtract(*transport_, req);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  // In odd pieces, as a decompressor hands them on.
  for (size_t i = 0; i < bytes.size(); i += 777)
    ASSERT_TRUE((*up)->Write(std::string_view(bytes).substr(i, 777)).ok());
  auto done = (*up)->Finish();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->files, 2u);
  EXPECT_EQ(Sh("cat /restore/t/a /restore/t/sub/b; readlink /restore/t/link"), "one\ntwo\na\n");
  // An entry that climbs out is refused, and the error arrives while the client still sends.
  files::TarEntry evil;
  evil.path = "../../etc/evil";
  evil.size = 3;
  evil.mode = 0644;
  std::string bad = files::EncodeTarHeader(evil) + "bad" + std::string(files::TarPadding(3), '\0') +
                    files::TarTrailer();
  auto up2 = FileExtract(*transport_, req);
  ASSERT_TRUE(up2.ok());
  Status st = (*up2)->Write(bad);
  Result<FileExtracted> r = st.ok() ? (*up2)->Finish() : Result<FileExtracted>(st);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(Sh("ls /etc/evil /restore/etc 2>&1 | grep -c 'No such'"), "2\n");
}

// An archive bigger than the agent's chunk and its pipe comes byte-exact (with fds: through the
// pipe the agent passed, without: in frames), and a reader that goes away after the first piece
// leaves the agent serving (with fds it stops at EPIPE on the pipe).
TEST_P(AgentFilesTest, BigArchivesAreByteExactAndMayBeAbandoned) {
  std::string data(5 * kFileChunk + 77, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  ASSERT_TRUE(Write("/work/big/f", data).ok());
  auto tar = FileArchive(*transport_, "/work/big");
  ASSERT_TRUE(tar.ok()) << tar.status().ToString();
  std::string bytes = Drain(**tar);
  EXPECT_NE(bytes.find(data), std::string::npos);
  EXPECT_EQ(bytes.size() % files::kTarBlock, 0u);
  {
    auto abandoned = FileArchive(*transport_, "/work/big");
    ASSERT_TRUE(abandoned.ok());
    auto piece = (*abandoned)->Next();
    ASSERT_TRUE(piece.ok() && *piece);
  }
  EXPECT_EQ(Read("/work/big/f", 0, 10), data.substr(0, 10));
}

TEST_P(AgentFilesTest, WatchReportsChangesAndEndsWhenTheDirectoryGoes) {
  Sh("mkdir -p /work/w");
  auto w = FileWatch(*transport_, "/work/w", true);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  Sh("echo hi > /work/w/new");
  std::vector<files::WatchEvent> seen;
  for (int i = 0; i < 50 && seen.empty(); ++i) {
    auto events = (*w)->Wait(200);
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    seen.insert(seen.end(), events->begin(), events->end());
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen[0].path, "/work/w/new");
  Sh("rm -rf /work/w");
  for (int i = 0; i < 50 && !(*w)->gone(); ++i) ASSERT_TRUE((*w)->Wait(200).ok());
  EXPECT_TRUE((*w)->gone());
}

INSTANTIATE_TEST_SUITE_P(Modes, AgentFilesTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? std::string("FdPassing") : std::string("Streamed");
                         });

}  // namespace
}  // namespace hutch::agent
