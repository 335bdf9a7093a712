#include "api/ws_channels.h"

#include <string>

#include "api/body_fields.h"
#include "api/http_types.h"
#include "api/stream_handlers.h"

namespace hutch::api {

Result<std::pair<uint16_t, uint16_t>> ParseResize(std::string_view text) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(text));
  FieldReader r(body);
  std::optional<int64_t> rows, cols;
  RETURN_IF_ERROR(r.Int("rows", &rows, 1, 10000));
  RETURN_IF_ERROR(r.Int("cols", &cols, 1, 10000));
  // Kubernetes' terminal size message.
  if (!rows) RETURN_IF_ERROR(r.Int("Height", &rows, 1, 10000));
  if (!cols) RETURN_IF_ERROR(r.Int("Width", &cols, 1, 10000));
  if (!rows || !cols) return InvalidArgument("resize needs rows and cols");
  return std::pair{static_cast<uint16_t>(*rows), static_cast<uint16_t>(*cols)};
}

Result<int> ParseSignalMessage(std::string_view text) {
  auto body = ParseJsonObject(text);
  if (body.ok()) {
    auto it = body->find("signal");
    if (it == body->end()) return InvalidArgument("signal message needs {\"signal\": …}");
    return ParseSignal(it->value());
  }
  // A bare name ("INT") or number.
  std::string s(text);
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos)
    return ParseSignal(json::value(std::stoll(s.substr(0, 9))));
  return ParseSignal(json::value(s));
}

json::object StatusJson(const core::ExitInfo& e) {
  json::object o;
  o["exit_code"] = e.exit_code;
  o["signal"] = e.signal;
  o["timed_out"] = e.timed_out;
  o["duration_ms"] = e.duration_ms;
  return o;
}

json::object ErrorJson(const Status& st) {
  json::object err;
  err["code"] = std::string(CodeName(st.code()));
  err["message"] = st.message();
  return json::object{{"error", std::move(err)}};
}

}  // namespace hutch::api
