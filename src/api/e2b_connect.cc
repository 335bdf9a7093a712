#include "api/e2b_connect.h"

#include <utility>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

namespace hutch::api::e2b {

namespace {

constexpr uint8_t kFlagCompressed = 0x01;
constexpr uint8_t kFlagEndStream = 0x02;

// The HTTP status Connect answers a unary error with.
int HttpStatusOf(std::string_view code) {
  static const std::pair<std::string_view, int> kStatus[] = {
      {"canceled", 499},
      {"unknown", 500},
      {"invalid_argument", 400},
      {"deadline_exceeded", 504},
      {"not_found", 404},
      {"already_exists", 409},
      {"permission_denied", 403},
      {"resource_exhausted", 429},
      {"failed_precondition", 400},
      {"aborted", 409},
      {"out_of_range", 400},
      {"unimplemented", 501},
      {"internal", 500},
      {"unavailable", 503},
      {"data_loss", 500},
      {"unauthenticated", 401},
  };
  for (const auto& [name, status] : kStatus)
    if (name == code) return status;
  return 500;
}

std::string ErrorJson(const RpcError& e) {
  json::object o;
  o["code"] = e.code;
  o["message"] = e.message;
  return json::serialize(o);
}

std::string Envelop(uint8_t flags, std::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  out += static_cast<char>(flags);
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
  out += payload;
  return out;
}

Result<std::string> Encode(const ConnectCodec& codec, const google::protobuf::Message& m) {
  std::string out;
  if (codec.binary) {
    if (!m.SerializeToString(&out)) return Internal("encoding a protobuf message failed");
    return out;
  }
  auto st = google::protobuf::util::MessageToJsonString(m, &out);
  if (!st.ok()) return Internal(fmt::format("encoding JSON: {}", st.ToString()));
  return out;
}

std::string_view MediaType(std::string_view content_type) {
  size_t semi = content_type.find(';');
  if (semi != std::string_view::npos) content_type = content_type.substr(0, semi);
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return content_type;
}

}  // namespace

RpcError ToRpcError(const Status& status) {
  std::string_view code = "internal";
  switch (status.code()) {
    case Code::kOk:
    case Code::kInternal:
      break;
    case Code::kInvalidArgument:
      code = "invalid_argument";
      break;
    case Code::kUnauthenticated:
      code = "unauthenticated";
      break;
    case Code::kPermissionDenied:
      code = "permission_denied";
      break;
    case Code::kNotFound:
      code = "not_found";
      break;
    case Code::kConflict:
      code = "failed_precondition";
      break;
    case Code::kPayloadTooLarge:
    case Code::kResourceExhausted:
    case Code::kInsufficientStorage:
      code = "resource_exhausted";
      break;
    case Code::kUnavailable:
      code = "unavailable";
      break;
  }
  return RpcError{std::string(code), status.message()};
}

Result<ConnectCodec> CodecOf(const ApiRequest& request, bool streaming_method) {
  std::string type(MediaType(request.Header("content-type")));
  for (char& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  ConnectCodec codec;
  if (type == "application/json" || type == "application/proto") {
    codec.streaming = false;
  } else if (type == "application/connect+json" || type == "application/connect+proto") {
    codec.streaming = true;
  } else {
    return InvalidArgument(fmt::format("Content-Type '{}' is not a Connect encoding", type));
  }
  codec.binary = type.ends_with("proto");
  if (codec.streaming != streaming_method)
    return InvalidArgument(fmt::format("Content-Type '{}' does not fit a {} method", type,
                                       streaming_method ? "streaming" : "unary"));
  if (std::string enc =
          request.Header(codec.streaming ? "connect-content-encoding" : "content-encoding");
      !enc.empty() && enc != "identity")
    return InvalidArgument(fmt::format("compressed requests ({}) are not supported", enc));
  return codec;
}

Result<std::vector<Envelope>> SplitEnvelopes(std::string_view data) {
  std::vector<Envelope> out;
  while (!data.empty()) {
    if (data.size() < 5) return InvalidArgument("a Connect envelope is truncated");
    uint8_t flags = static_cast<uint8_t>(data[0]);
    uint32_t n = 0;
    for (int i = 1; i <= 4; ++i) n = (n << 8) | static_cast<uint8_t>(data[i]);
    if (data.size() - 5 < n) return InvalidArgument("a Connect envelope is truncated");
    if (flags & kFlagCompressed) return InvalidArgument("compressed envelopes are not supported");
    out.push_back(Envelope{flags, std::string(data.substr(5, n))});
    data.remove_prefix(5 + n);
  }
  return out;
}

Status DecodeRequest(const ConnectCodec& codec, std::string_view body,
                     google::protobuf::Message* m) {
  std::string payload(body);
  if (codec.streaming) {
    ASSIGN_OR_RETURN(std::vector<Envelope> envelopes, SplitEnvelopes(body));
    if (envelopes.size() != 1 || (envelopes[0].flags & kFlagEndStream))
      return InvalidArgument("a server-streaming request carries exactly one message");
    payload = std::move(envelopes[0].payload);
  }
  if (codec.binary) {
    if (!m->ParseFromString(payload))
      return InvalidArgument(fmt::format("the request is no valid {}", m->GetTypeName()));
    return Status::Ok();
  }
  if (payload.empty()) payload = "{}";
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(payload, m, opts);
  if (!st.ok())
    return InvalidArgument(
        fmt::format("the request is no valid {}: {}", m->GetTypeName(), st.message().as_string()));
  return Status::Ok();
}

ApiResponse UnaryAnswer(const ConnectCodec& codec, const google::protobuf::Message& m) {
  Result<std::string> body = Encode(codec, m);
  if (!body.ok()) return UnaryError(ToRpcError(body.status()));
  ApiResponse r;
  r.status = 200;
  r.content_type = codec.binary ? "application/proto" : "application/json";
  r.body = std::move(*body);
  return r;
}

ApiResponse UnaryError(const RpcError& error) {
  ApiResponse r;
  r.status = HttpStatusOf(error.code);
  r.content_type = "application/json";
  r.body = ErrorJson(error);
  return r;
}

std::string StreamMessage(const ConnectCodec& codec, const google::protobuf::Message& m) {
  Result<std::string> payload = Encode(codec, m);
  if (!payload.ok()) {
    RpcError e = ToRpcError(payload.status());
    return StreamEnd(&e);
  }
  return Envelop(0, *payload);
}

std::string StreamEnd(const RpcError* error) {
  if (!error) return Envelop(kFlagEndStream, "{}");
  return Envelop(kFlagEndStream, "{\"error\":" + ErrorJson(*error) + "}");
}

ApiResponse StreamAnswer(const ConnectCodec& codec, std::shared_ptr<BodyStream> body) {
  ApiResponse r;
  r.status = 200;
  r.content_type = codec.binary ? "application/connect+proto" : "application/connect+json";
  r.stream = std::move(body);
  return r;
}

ApiResponse StreamError(const ConnectCodec& codec, const RpcError& error) {
  ApiResponse r;
  r.status = 200;
  r.content_type = codec.binary ? "application/connect+proto" : "application/connect+json";
  r.body = StreamEnd(&error);
  return r;
}

}  // namespace hutch::api::e2b
