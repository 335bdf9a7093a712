// libFuzzer target for the agent protocol's frame parser and message decoders: whatever bytes
// arrive on the agent's socket, parsing must end in a frame, "need more" or an error — never a
// crash, a hang or an allocation beyond the input's size. Built with clang -fsanitize=fuzzer
// (tests/CMakeLists.txt) and run for a few seconds by ctest.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/files_protocol.h"
#include "agent/protocol.h"
#include "agent/stream_protocol.h"

namespace {

using namespace hutch::agent;

void DecodeAll(std::string_view payload) {
  std::string error;
  Hello hello;
  DecodeHello(payload, &hello, &error);
  ErrorMessage em;
  DecodeError(payload, &em, &error);
  hutch::core::ExecRequest req;
  DecodeExecRequest(payload, &req, &error);
  hutch::core::ExecResult res;
  DecodeExecResult(payload, &res, &error);
  StreamExecRequest se;
  DecodeStreamExecRequest(payload, &se, &error);
  ExitInfo exit;
  DecodeExitInfo(payload, &exit, &error);
  std::vector<ProcessInfo> list;
  DecodeProcessList(payload, &list, &error);
  ProcessStartRequest start;
  DecodeProcessStartRequest(payload, &start, &error);
  ProcessAttachRequest attach;
  DecodeProcessAttachRequest(payload, &attach, &error);
  ProcessSignalRequest sig;
  DecodeProcessSignalRequest(payload, &sig, &error);
  ProcessStdinRequest in;
  DecodeProcessStdinRequest(payload, &in, &error);
  uint32_t u = 0;
  DecodeU32(payload, &u, &error);
  int32_t i = 0;
  DecodeI32(payload, &i, &error);
  uint16_t rows = 0, cols = 0;
  DecodeResize(payload, &rows, &cols, &error);
  ServiceSpec service;
  DecodeServiceSpec(payload, &service, &error);
  std::vector<ServiceInfo> services;
  DecodeServiceList(payload, &services, &error);
  std::vector<ListeningPort> ports;
  DecodePortList(payload, &ports, &error);
  ParseProcNetTcp(payload, false, &ports);
  ParseProcNetTcp(payload, true, &ports);
  FileRequest file_request;
  DecodeFileRequest(payload, &file_request, &error);
  FileOpened opened;
  DecodeFileOpened(payload, &opened, &error);
  FileRange range;
  DecodeFileRange(payload, &range, &error);
  FileEntryMessage entry;
  DecodeFileEntry(payload, &entry, &error);
  hutch::files::Listing listing;
  DecodeFileListing(payload, &listing, &error);
  FileExtracted extracted;
  DecodeFileExtracted(payload, &extracted, &error);
  FileEvents events;
  DecodeFileEvents(payload, &events, &error);
  hutch::Status status;
  DecodeFileError(payload, &status, &error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first byte picks how the stream is cut into reads, as a socket would deliver it.
  size_t piece = size > 0 ? 1 + static_cast<uint8_t>(input[0]) % 64 : 1;
  // A small frame limit, so the limit path is reached too.
  FrameParser parser(1 << 16);
  Frame frame;
  std::string error;
  for (size_t at = 0; at < input.size(); at += piece) {
    parser.Append(input.substr(at, piece));
    for (;;) {
      FrameParser::Result r = parser.Next(&frame, &error);
      if (r == FrameParser::Result::kFrame) {
        DecodeAll(frame.payload);
        (void)MessageTypeName(frame.type);
        continue;
      }
      if (r == FrameParser::Result::kError) return 0;   // unrecoverable, as on a socket
      if (parser.BytesWanted() == 0) __builtin_trap();  // kNeedMore must want a byte
      break;
    }
  }
  DecodeAll(input);
  return 0;
}
