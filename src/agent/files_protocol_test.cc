#include "agent/files_protocol.h"

#include <gtest/gtest.h>

#include <string>

#include "agent/protocol.h"

namespace hutch::agent {
namespace {

files::Entry SampleEntry() {
  files::Entry e;
  e.name = "link";
  e.path = "/work/link";
  e.type = files::FileType::kSymlink;
  e.size = 5;
  e.mode = 0777;
  e.uid = 1000;
  e.gid = 100;
  e.mtime_ns = -1234567890123;  // before the epoch
  e.target = "../etc/passwd";
  return e;
}

TEST(FilesProtocolTest, RequestRoundTrips) {
  FileRequest in;
  in.path = "/a/b";
  in.to = "/c";
  in.has_mode = true;
  in.mode = 04755;
  in.parents = in.recursive = in.overwrite = in.pass_fd = true;
  in.depth = 7;
  in.limit = 99;
  in.max_bytes = uint64_t{1} << 40;
  in.max_entries = 3;
  FileRequest out;
  std::string error;
  ASSERT_TRUE(DecodeFileRequest(EncodeFileRequest(in), &out, &error)) << error;
  EXPECT_EQ(out.path, "/a/b");
  EXPECT_EQ(out.to, "/c");
  EXPECT_TRUE(out.has_mode && out.parents && out.recursive && out.overwrite && out.pass_fd);
  EXPECT_EQ(out.mode, 04755u);
  EXPECT_EQ(out.depth, 7u);
  EXPECT_EQ(out.limit, 99u);
  EXPECT_EQ(out.max_bytes, uint64_t{1} << 40);
  EXPECT_EQ(out.max_entries, 3u);
}

TEST(FilesProtocolTest, RequestRejectsModeBitsBeyondPermissions) {
  FileRequest in;
  in.mode = 0170000;
  FileRequest out;
  std::string error;
  EXPECT_FALSE(DecodeFileRequest(EncodeFileRequest(in), &out, &error));
  EXPECT_NE(error.find("mode"), std::string::npos);
}

TEST(FilesProtocolTest, EntryAndListingRoundTrip) {
  files::Listing in;
  in.entries = {SampleEntry(), SampleEntry()};
  in.entries[1].type = files::FileType::kDirectory;
  in.truncated = true;
  files::Listing out;
  std::string error;
  ASSERT_TRUE(DecodeFileListing(EncodeFileListing(in), &out, &error)) << error;
  ASSERT_EQ(out.entries.size(), 2u);
  EXPECT_EQ(out.entries[0].target, "../etc/passwd");
  EXPECT_EQ(out.entries[0].mtime_ns, -1234567890123);
  EXPECT_EQ(out.entries[1].type, files::FileType::kDirectory);
  EXPECT_TRUE(out.truncated);
  FileEntryMessage m{SampleEntry(), true}, back;
  ASSERT_TRUE(DecodeFileEntry(EncodeFileEntry(m), &back, &error)) << error;
  EXPECT_TRUE(back.created);
  EXPECT_EQ(back.entry.uid, 1000u);
}

TEST(FilesProtocolTest, ListingRejectsACountThePayloadCannotHold) {
  // A count of 2^32-1 entries in 5 bytes: refused before anything is allocated for them.
  std::string payload("\xff\xff\xff\xff\x00", 5);
  files::Listing out;
  std::string error;
  EXPECT_FALSE(DecodeFileListing(payload, &out, &error));
  EXPECT_TRUE(out.entries.empty());
}

TEST(FilesProtocolTest, EntryRejectsAnUnknownFileType) {
  std::string payload = EncodeFileEntry(FileEntryMessage{SampleEntry(), false});
  // name and path strings, then the type byte.
  size_t type_at = 4 + 4 + 4 + 10;
  payload[type_at] = 42;
  FileEntryMessage out;
  std::string error;
  EXPECT_FALSE(DecodeFileEntry(payload, &out, &error));
}

TEST(FilesProtocolTest, ErrorsKeepTheApiCode) {
  for (const Status& in :
       {NotFound("stat /x: ENOENT"), Conflict("a"), PermissionDenied("b"), PayloadTooLarge("c"),
        Status(Code::kInsufficientStorage, "d"), InvalidArgument("e"), Internal("f")}) {
    Status out;
    std::string error;
    ASSERT_TRUE(DecodeFileError(EncodeFileError(in), &out, &error)) << error;
    EXPECT_EQ(out.code(), in.code());
    EXPECT_EQ(out.message(), in.message());
  }
}

TEST(FilesProtocolTest, OpenedRangeExtractedEventsRoundTrip) {
  std::string error;
  FileOpened o;
  ASSERT_TRUE(DecodeFileOpened(EncodeFileOpened(FileOpened{false, 12345, true}), &o, &error));
  EXPECT_EQ(o.size, 12345u);
  EXPECT_TRUE(o.fd_attached);
  FileRange r;
  ASSERT_TRUE(DecodeFileRange(EncodeFileRange(FileRange{10, 20}), &r, &error));
  EXPECT_EQ(r.offset + r.length, 30u);
  FileExtracted x;
  ASSERT_TRUE(DecodeFileExtracted(EncodeFileExtracted(FileExtracted{3, 2, 1}), &x, &error));
  EXPECT_EQ(x.entries, 3u);
  FileEvents ev{{{"moved", "/b", "/a", true}}, true}, back;
  ASSERT_TRUE(DecodeFileEvents(EncodeFileEvents(ev), &back, &error)) << error;
  ASSERT_EQ(back.events.size(), 1u);
  EXPECT_EQ(back.events[0].from, "/a");
  EXPECT_TRUE(back.events[0].directory);
  EXPECT_TRUE(back.gone);
  // Trailing bytes are malformed.
  EXPECT_FALSE(DecodeFileRange(EncodeFileRange(FileRange{}) + "x", &r, &error));
}

TEST(FilesProtocolTest, OnlyTheRequestTypesOpenAFileOperation) {
  EXPECT_TRUE(IsFileRequest(static_cast<uint8_t>(MessageType::kFileStat)));
  EXPECT_TRUE(IsFileRequest(static_cast<uint8_t>(MessageType::kFileWatch)));
  EXPECT_FALSE(IsFileRequest(static_cast<uint8_t>(MessageType::kFileData)));
  EXPECT_FALSE(IsFileRequest(static_cast<uint8_t>(MessageType::kPortList)));
  EXPECT_EQ(MessageTypeName(MessageType::kFileExtract), "FileExtract");
}

}  // namespace
}  // namespace hutch::agent
