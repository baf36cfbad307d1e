// concur/http/message.hpp — what a web handler sees and returns: Request (method, path, query
// arguments, headers, body, the route's path parameters) and Response (status, headers, body),
// with Flask's conveniences: Response::json(), Response::text(), request.json(), request.arg().
//
//   Response index(const Request& req) { return Response::json({{"id", req.param<int>("id")}}); }
//
// Headers keep their order and compare names case-insensitively. Errors: a handler throws
// concur::http::HTTPError (errors.hpp) to answer 4xx/5xx; Request::json() throws it (400) for a
// body that is not JSON. Thread-safety: plain values; a Request is read by one handler at a time.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::http {

// Headers: an ordered list of (name, value) fields; names compare without regard to case.
class CONCUR_EXPORT Headers {
 public:
  using Field = std::pair<std::string, std::string>;
  // get(name): the first field's value, or "" when there is none.
  [[nodiscard]] std::string_view get(std::string_view name) const noexcept;
  // find(name): the first field's value, or nullopt.
  [[nodiscard]] std::optional<std::string_view> find(std::string_view name) const noexcept;
  [[nodiscard]] bool contains(std::string_view name) const noexcept {
    return find(name).has_value();
  }
  // set(name, value): replaces every field of that name with one (appended when there was none).
  void set(std::string_view name, std::string_view value);
  // add(name, value): appends a field (a repeated header such as Set-Cookie).
  void add(std::string_view name, std::string_view value);
  // erase(name): removes every field of that name; returns how many.
  std::size_t erase(std::string_view name) noexcept;
  [[nodiscard]] const std::vector<Field>& fields() const noexcept { return fields_; }
  [[nodiscard]] std::size_t size() const noexcept { return fields_.size(); }
  [[nodiscard]] bool empty() const noexcept { return fields_.empty(); }
  void clear() noexcept { fields_.clear(); }

 private:
  std::vector<Field> fields_;
};

// Request: one HTTP request, as the server parsed it. The server fills every field; tests and
// handlers may build one by hand.
struct CONCUR_EXPORT Request {
  // method: "GET", "POST", ... (as sent: methods are case-sensitive).
  std::string method;
  // target: the request target as sent ("/is_prime/7,9?pretty=1").
  std::string target;
  // path: the target's path, percent-decoded ("/is_prime/7,9").
  std::string path;
  // query: the target's query, as sent, without "?" ("pretty=1").
  std::string query;
  // version: 11 for HTTP/1.1, 10 for HTTP/1.0.
  unsigned version = 11;
  Headers headers;
  std::string body;
  // remote_addr: the client's address ("127.0.0.1"; Flask's request.remote_addr).
  std::string remote_addr;
  // route: the pattern of the route that matched ("/is_prime/<numbers>"; "" before routing).
  std::string route;
  // params: the route's path parameters, in the pattern's order, percent-decoded.
  std::vector<std::pair<std::string, std::string>> params;

  // header(name): the first value of header `name`, or "".
  [[nodiscard]] std::string_view header(std::string_view name) const noexcept {
    return headers.get(name);
  }
  // param(name): the path parameter's text. UsageError (ValueError) when the route has no
  // parameter of that name — a programming mistake, not bad input (the route matched).
  [[nodiscard]] const std::string& param(std::string_view name) const;
  // param<T>(name): the parameter converted to T (an integer type, a floating type, or a
  // string). An <int:..> or <float:..> route only matches text that converts, so this throws
  // HTTPError 400 only for a <string:..> parameter read as a number that is not one, or one out
  // of T's range.
  template <class T>
  [[nodiscard]] T param(std::string_view name) const;
  // args(): the query's arguments in order, '+' and %XX decoded (Flask's request.args).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> args() const;
  // arg(name): the first query argument of that name, or nullopt.
  [[nodiscard]] std::optional<std::string> arg(std::string_view name) const;
  // json(): the body parsed as JSON; HTTPError 400 ("Failed to decode JSON object: ...") when it
  // is not (Flask's request.get_json()). Any Content-Type is accepted.
  [[nodiscard]] nlohmann::json json() const;
  // keep_alive(): whether the client keeps the connection open after the response (HTTP/1.1
  // unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive").
  [[nodiscard]] bool keep_alive() const noexcept;
};

// Response: what a handler returns. A handler may also return nlohmann::json (a JSON response)
// or std::string (text/html, as Flask does for str). The server adds Content-Length, Date and
// Server, and Connection when it closes.
struct CONCUR_EXPORT Response {
  int status = 200;
  Headers headers;
  std::string body;

  Response() = default;
  Response(int status_code, std::string body_text, std::string_view content_type);

  // json(value, status): value dumped as JSON, Content-Type application/json.
  static Response json(const nlohmann::json& value, int status = 200);
  // json_text(text, status): JSON already serialized (e.g. byte for byte as Python's json.dumps).
  static Response json_text(std::string text, int status = 200);
  // text(body, status, content_type): text/plain; charset=utf-8 unless content_type says else.
  static Response text(std::string body, int status = 200,
                       std::string_view content_type = "text/plain; charset=utf-8");
  // html(body, status): text/html; charset=utf-8.
  static Response html(std::string body, int status = 200);
  // redirect(location, status): 302 (or the 3xx given) with a Location header.
  static Response redirect(std::string_view location, int status = 302);
  // error(status, message): the JSON error body of HTTPError (see errors.hpp).
  static Response error(int status, std::string_view message);
};

// reason_phrase(status): "Not Found" for 404...; "" for an unknown code.
CONCUR_EXPORT std::string_view reason_phrase(int status) noexcept;

// to_response(value): what the server makes of a handler's result (Response, json or string).
inline Response to_response(Response r) { return r; }
inline Response to_response(const nlohmann::json& j) { return Response::json(j); }
inline Response to_response(std::string s) { return Response::html(std::move(s)); }

// ---- implementation ---------------------------------------------------------------------------

namespace detail {
// parse_int64(text, out) / parse_double(text, out): the whole text converts (no sign for the
// unsigned form, no spaces); false otherwise, also when out of range.
CONCUR_EXPORT bool parse_int64(std::string_view text, std::int64_t& out) noexcept;
CONCUR_EXPORT bool parse_double(std::string_view text, double& out) noexcept;
}  // namespace detail

template <class T>
T Request::param(std::string_view name) const {
  const std::string& text = param(name);
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
    return T(text);
  } else if constexpr (std::is_same_v<T, bool>) {
    static_assert(!std::is_same_v<T, bool>, "Request::param<bool>: read it as a string");
  } else if constexpr (std::is_integral_v<T>) {
    std::int64_t v = 0;
    if (!detail::parse_int64(text, v) || !std::in_range<T>(v)) {
      throw HTTPError(400, "path parameter '" + std::string(name) +
                               "' is not an integer in range: '" + text + "'");
    }
    return static_cast<T>(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    double v = 0;
    if (!detail::parse_double(text, v)) {
      throw HTTPError(400,
                      "path parameter '" + std::string(name) + "' is not a number: '" + text + "'");
    }
    return static_cast<T>(v);
  } else {
    static_assert(std::is_integral_v<T>, "Request::param<T>: T is an integer, floating or string");
  }
}

}  // namespace concur::http
