// ApiClient and the helpers of http_client.h that need no sockets: URL and query handling, the
// mapping of the API's error bodies to Status.
#include <fmt/format.h>

#include "cli/http_client.h"
#include "core/session_json.h"

#ifndef HUTCH_VERSION
#define HUTCH_VERSION "0.0.0"
#endif

namespace hutch::client {

namespace {

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// The first bytes of a body that is not the API's, printable, for an error message.
std::string Excerpt(std::string_view body) {
  constexpr size_t kMax = 200;
  std::string out;
  for (char c : body.substr(0, kMax)) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (body.size() > kMax) out += "…";
  return out;
}

std::string SessionPath(std::string_view id) { return "/v1/sessions/" + QueryEscape(id); }

Result<json::array> TakeArray(json::object& o, std::string_view key, std::string_view what) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_array())
    return Internal(fmt::format("{}: the server's answer has no \"{}\" array", what, key));
  return std::move(it->value().get_array());
}

Result<core::Session> ToSession(const json::object& o) {
  auto s = core::SessionFromJson(o);
  if (!s.ok())
    return Internal(
        fmt::format("the server sent a session this client cannot read: {}", s.status().message()));
  return s;
}

}  // namespace

std::string_view ClientVersion() { return HUTCH_VERSION; }

Result<BaseUrl> ParseBaseUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("URL '{}' {}", url, why));
  };
  std::string_view rest = url;
  bool tls = false;
  if (size_t p = rest.find("://"); p != std::string_view::npos) {
    std::string scheme = ToLower(rest.substr(0, p));
    if (scheme != "http" && scheme != "https") return bad("must start with http:// or https://");
    tls = scheme == "https";
    rest.remove_prefix(p + 3);
  }
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (path.find_first_of("?#") != std::string_view::npos)
    return bad("must not have a query or fragment");
  while (path.ends_with('/')) path.remove_suffix(1);
  if (authority.find('@') != std::string_view::npos)
    return bad("must not carry a user name; pass the token with --token or HUTCH_TOKEN");

  BaseUrl out;
  out.tls = tls;
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '[' in its host");
    out.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("has text after its IPv6 host");
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':', colon + 1) != std::string_view::npos)
        return bad("has an IPv6 host without brackets; write http://[::1]:7070");
      port = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
    }
    out.host = authority;
  }
  if (out.host.empty()) return bad("has no host");
  if (!port.empty() || authority.ends_with(':')) {
    if (!IsDigits(port) || port.size() > 5 || std::stoi(std::string(port)) == 0 ||
        std::stoi(std::string(port)) > 65535)
      return bad("has an invalid port");
    out.port = port;
  } else {
    out.port = tls ? "443" : "80";
  }
  out.path = path;
  bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = v6 ? "[" + out.host + "]" : out.host;
  if (!port.empty()) out.host_header += ":" + out.port;
  return out;
}

std::string QueryEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == '=';
    if (keep)
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

Result<json::object> ParseResponseJson(std::string_view body) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;
  json::value v = json::parse(body, ec, {}, opts);
  if (ec)
    return Internal(
        fmt::format("the server's answer is not JSON ({}): {}", ec.message(), Excerpt(body)));
  if (!v.is_object())
    return Internal(fmt::format("the server's answer is not a JSON object: {}", Excerpt(body)));
  return std::move(v.get_object());
}

Code CodeFromHttpStatus(int status) {
  switch (status) {
    case 400:
      return Code::kInvalidArgument;
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kConflict;
    case 413:
      return Code::kPayloadTooLarge;
    case 429:
      return Code::kResourceExhausted;
    case 502:
    case 503:
    case 504:
      return Code::kUnavailable;
    case 507:
      return Code::kInsufficientStorage;
    default:
      break;
  }
  if (status >= 400 && status < 500) return Code::kInvalidArgument;
  return Code::kInternal;
}

Status StatusFromResponse(const HttpResponse& response) {
  if (response.status >= 200 && response.status < 300) return Status::Ok();
  Code fallback = CodeFromHttpStatus(response.status);

  boost::system::error_code ec;
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;
  json::value v = json::parse(response.body, ec, {}, opts);
  const json::object* error = nullptr;
  if (!ec && v.is_object())
    if (auto it = v.get_object().find("error");
        it != v.get_object().end() && it->value().is_object())
      error = &it->value().get_object();
  if (error != nullptr) {
    std::string name, message;
    if (auto it = error->find("code"); it != error->end() && it->value().is_string())
      name = it->value().get_string();
    if (auto it = error->find("message"); it != error->end() && it->value().is_string())
      message = it->value().get_string();
    Code code = CodeFromName(name);
    // Names this client does not know yet (and a nonsensical "ok") fall back to the HTTP status.
    if (code == Code::kOk || CodeName(code) != name) code = fallback;
    if (message.empty()) message = fmt::format("the server answered HTTP {}", response.status);
    return Status(code, std::move(message));
  }
  std::string message = fmt::format("the server answered HTTP {}", response.status);
  if (std::string excerpt = Excerpt(response.body); !excerpt.empty()) message += ": " + excerpt;
  return Status(fallback, std::move(message));
}

ApiClient::ApiClient(HttpClient http) : http_(std::move(http)) {}

Result<json::object> ApiClient::Call(std::string_view method, std::string_view target,
                                     const json::value& body, const HttpHeaders& headers) {
  std::string text = body.is_null() ? std::string() : json::serialize(body);
  ASSIGN_OR_RETURN(HttpResponse res,
                   http_.Request(method, target, text, "application/json", headers));
  RETURN_IF_ERROR(StatusFromResponse(res));
  if (res.body.empty()) return json::object();
  auto parsed = ParseResponseJson(res.body);
  if (!parsed.ok()) return parsed.status().WithContext(fmt::format("{} {}", method, target));
  return parsed;
}

Result<ApiClient::Page> ApiClient::ListPages(std::string_view path, std::string_view key,
                                             std::string_view query, int64_t max_items) {
  Page out;
  std::string page_token;
  std::string what = fmt::format("GET {}", path);
  while (true) {
    std::string q(query);
    if (!page_token.empty()) {
      if (!q.empty()) q += '&';
      q += "page_token=" + QueryEscape(page_token);
    }
    std::string target = q.empty() ? std::string(path) : fmt::format("{}?{}", path, q);
    ASSIGN_OR_RETURN(json::object page, Call("GET", target));
    ASSIGN_OR_RETURN(json::array items, TakeArray(page, key, what));
    for (auto& item : items) out.items.push_back(std::move(item));
    std::string next;
    if (auto it = page.find("next_page_token"); it != page.end() && it->value().is_string())
      next = it->value().get_string();
    out.next_page_token = next;
    if (next.empty()) break;
    if (max_items >= 0 && static_cast<int64_t>(out.items.size()) >= max_items) break;
    // A server that hands out the same page again would keep us here forever.
    if (next == page_token)
      return Internal(fmt::format("{}: the server repeated page token '{}'", what, next));
    page_token = std::move(next);
  }
  return out;
}

Result<json::object> ApiClient::CreateSessionJson(const json::object& body) {
  return Call("POST", "/v1/sessions", body);
}

Result<json::object> ApiClient::GetSessionJson(std::string_view id) {
  return Call("GET", SessionPath(id));
}

Result<json::array> ApiClient::ListSessionsJson(std::string_view query) {
  ASSIGN_OR_RETURN(Page page, ListPages("/v1/sessions", "sessions", query));
  return std::move(page.items);
}

Result<json::object> ApiClient::DeleteSessionJson(std::string_view id) {
  return Call("DELETE", SessionPath(id));
}

Result<json::object> ApiClient::ExecJson(std::string_view id, const json::object& body) {
  return Call("POST", SessionPath(id) + "/exec", body);
}

Result<core::Session> ApiClient::CreateSession(const json::object& body) {
  ASSIGN_OR_RETURN(json::object o, CreateSessionJson(body));
  return ToSession(o);
}

Result<core::Session> ApiClient::GetSession(std::string_view id) {
  ASSIGN_OR_RETURN(json::object o, GetSessionJson(id));
  return ToSession(o);
}

Result<std::vector<core::Session>> ApiClient::ListSessions(std::string_view query) {
  ASSIGN_OR_RETURN(json::array all, ListSessionsJson(query));
  std::vector<core::Session> out;
  out.reserve(all.size());
  for (const auto& v : all) {
    if (!v.is_object()) return Internal("GET /v1/sessions: a session is not a JSON object");
    ASSIGN_OR_RETURN(core::Session s, ToSession(v.get_object()));
    out.push_back(std::move(s));
  }
  return out;
}

Status ApiClient::DeleteSession(std::string_view id) { return DeleteSessionJson(id).status(); }

Result<core::ExecResult> ApiClient::Exec(std::string_view id, const json::object& body) {
  ASSIGN_OR_RETURN(json::object o, ExecJson(id, body));
  auto r = core::ExecResultFromJson(o);
  if (!r.ok())
    return Internal(fmt::format("the server sent an exec result this client cannot read: {}",
                                r.status().message()));
  return r;
}

Result<json::array> ApiClient::History(std::string_view id) {
  std::string target = SessionPath(id) + "/history";
  ASSIGN_OR_RETURN(json::object o, Call("GET", target));
  return TakeArray(o, "history", "GET " + target);
}

Result<json::object> ApiClient::Version() { return Call("GET", "/v1/version"); }

Result<json::object> ApiClient::StatsJson(std::string_view id) {
  return Call("GET", SessionPath(id) + "/stats");
}

}  // namespace hutch::client
