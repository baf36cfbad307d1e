// src/http/message.cpp — Headers, Request and Response (concur/http/message.hpp).
#include "concur/http/message.hpp"

#include <strings.h>

#include <boost/beast/http/status.hpp>
#include <boost/url/params_encoded_view.hpp>
#include <boost/url/parse_query.hpp>
#include <charconv>
#include <system_error>

namespace concur::http {

namespace {
bool same_name(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

// ---- Headers ----------------------------------------------------------------------------------

std::optional<std::string_view> Headers::find(std::string_view name) const noexcept {
  for (const Field& f : fields_) {
    if (same_name(f.first, name)) return std::string_view(f.second);
  }
  return std::nullopt;
}

std::string_view Headers::get(std::string_view name) const noexcept {
  return find(name).value_or(std::string_view());
}

void Headers::set(std::string_view name, std::string_view value) {
  for (auto it = fields_.begin(); it != fields_.end(); ++it) {
    if (!same_name(it->first, name)) continue;
    it->second.assign(value);
    ++it;
    while (it != fields_.end()) it = same_name(it->first, name) ? fields_.erase(it) : it + 1;
    return;
  }
  add(name, value);
}

void Headers::add(std::string_view name, std::string_view value) {
  fields_.emplace_back(std::string(name), std::string(value));
}

std::size_t Headers::erase(std::string_view name) noexcept {
  const std::size_t before = fields_.size();
  std::erase_if(fields_, [&](const Field& f) { return same_name(f.first, name); });
  return before - fields_.size();
}

// ---- Request ----------------------------------------------------------------------------------

const std::string& Request::param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  throw ValueError("Request::param: the route " + (route.empty() ? std::string("(none)") : route) +
                   " has no parameter '" + std::string(name) + "'");
}

std::vector<std::pair<std::string, std::string>> Request::args() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (query.empty()) return out;
  const auto parsed = boost::urls::parse_query(query);
  if (!parsed) return out;  // (the server only passes queries that parsed)
  boost::urls::encoding_opts opt;
  opt.space_as_plus = true;
  // (Each pair decoded by hand: Boost 1.81's library lacks params_view(view, opts).)
  for (const boost::urls::param_pct_view p : *parsed) {
    out.emplace_back(p.key.decode(opt), p.value.decode(opt));
  }
  return out;
}

std::optional<std::string> Request::arg(std::string_view name) const {
  for (auto& [key, value] : args()) {
    if (key == name) return std::move(value);
  }
  return std::nullopt;
}

nlohmann::json Request::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    throw HTTPError(400, std::string("Failed to decode JSON object: ") + e.what());
  }
}

bool Request::keep_alive() const noexcept {
  const std::string_view c = headers.get("Connection");
  // A token list ("keep-alive, Upgrade"): look for the token, case-insensitively.
  auto has = [&](std::string_view token) {
    std::size_t i = 0;
    while (i < c.size()) {
      std::size_t j = c.find(',', i);
      if (j == std::string_view::npos) j = c.size();
      std::string_view t = c.substr(i, j - i);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (same_name(t, token)) return true;
      i = j + 1;
    }
    return false;
  };
  if (version >= 11) return !has("close");
  return has("keep-alive");
}

// ---- Response ---------------------------------------------------------------------------------

Response::Response(int status_code, std::string body_text, std::string_view content_type)
    : status(status_code), body(std::move(body_text)) {
  headers.set("Content-Type", content_type);
}

Response Response::json(const nlohmann::json& value, int status) {
  return {status, value.dump(), "application/json"};
}

Response Response::json_text(std::string text, int status) {
  return {status, std::move(text), "application/json"};
}

Response Response::text(std::string body, int status, std::string_view content_type) {
  return {status, std::move(body), content_type};
}

Response Response::html(std::string body, int status) {
  return {status, std::move(body), "text/html; charset=utf-8"};
}

Response Response::redirect(std::string_view location, int status) {
  Response r(status, {}, "text/html; charset=utf-8");
  r.headers.set("Location", location);
  return r;
}

Response Response::error(int status, std::string_view message) {
  // (ordered_json: the keys in this order, not sorted.)
  nlohmann::ordered_json body = {{"error",
                                  {{"status", status},
                                   {"reason", std::string(reason_phrase(status))},
                                   {"message", std::string(message)}}}};
  return {status, body.dump(), "application/json"};
}

std::string_view reason_phrase(int status) noexcept {
  if (status < 100 || status > 999) return {};
  const auto s = boost::beast::http::int_to_status(static_cast<unsigned>(status));
  if (s == boost::beast::http::status::unknown) return {};
  const auto text = boost::beast::http::obsolete_reason(s);
  return {text.data(), text.size()};
}

namespace detail {

bool parse_int64(std::string_view text, std::int64_t& out) noexcept {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

bool parse_double(std::string_view text, double& out) noexcept {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace detail

}  // namespace concur::http
