// The Connect protocol (connectrpc.com/docs/protocol) over HTTP/1.1, as the envd part of the
// E2B API (/e2b/envd) speaks it: unary calls and server-streaming calls, each in Connect's JSON
// (protobuf's canonical JSON mapping) and binary (protobuf) encodings, without compression.
//
// Unary: the request body is one message (Content-Type application/json or application/proto);
// the answer is one message with 200, or an error {"code":"not_found","message":…} with the
// HTTP status Connect gives that code. Streaming: the body is one enveloped message
// (application/connect+json | +proto); the answer is 200 with enveloped messages and a last
// end-of-stream envelope carrying {} or {"error":{…}}. An envelope is a flags byte and a
// big-endian 32-bit length before the payload.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>

#include "api/http_types.h"
#include "common/status.h"

namespace hutch::api::e2b {

// A Connect error: its code as Connect names it ("not_found", "already_exists", …).
struct RpcError {
  std::string code;
  std::string message;
};
// hutch's Status as a Connect error (conflict → failed_precondition, …).
RpcError ToRpcError(const Status& status);

struct ConnectCodec {
  bool binary = false;
  bool streaming = false;
};

// The codec of a request by its Content-Type; invalid_argument for one Connect does not know
// (or a streaming content type on a unary method and the reverse).
Result<ConnectCodec> CodecOf(const ApiRequest& request, bool streaming_method);

// Decodes the request body into `m` (unwrapping the envelope of a streaming call).
Status DecodeRequest(const ConnectCodec& codec, std::string_view body,
                     google::protobuf::Message* m);

// A unary answer: the message, or the error.
ApiResponse UnaryAnswer(const ConnectCodec& codec, const google::protobuf::Message& m);
ApiResponse UnaryError(const RpcError& error);

// One message of a stream, enveloped; the end of a stream, with its error when there is one.
std::string StreamMessage(const ConnectCodec& codec, const google::protobuf::Message& m);
std::string StreamEnd(const RpcError* error);
// A streaming answer whose body comes from `body` (already enveloped pieces).
ApiResponse StreamAnswer(const ConnectCodec& codec, std::shared_ptr<BodyStream> body);
// A streaming call that failed before it started: 200 with only the end of the stream.
ApiResponse StreamError(const ConnectCodec& codec, const RpcError& error);

// Splits `data` into the envelopes it holds (for tests and the client-streaming StreamInput);
// invalid_argument on a truncated or compressed envelope.
struct Envelope {
  uint8_t flags = 0;
  std::string payload;
};
Result<std::vector<Envelope>> SplitEnvelopes(std::string_view data);

}  // namespace hutch::api::e2b
