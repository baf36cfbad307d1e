// crawl/spider.cpp — the crawler's value types: Response's Scrapy helpers, Output, Spider's
// callback registry, StatsCollector.
#include <sstream>

#include "concur/crawl/crawler.hpp"
#include "concur/crawl/url.hpp"

namespace concur::crawl {

// ---- Response ----

const Selector& Response::selector() const {
  if (!parsed) {
    Selector::Options options;
    options.base_url = url;
    if (auto ct = headers.get("Content-Type")) options.content_type = std::string(*ct);
    parsed = std::make_shared<const Selector>(body, options);
  }
  return *parsed;
}

std::string Response::text() const {
  const auto ct = headers.get("Content-Type");
  return html_to_unicode(ct ? *ct : std::string_view(), body).text;
}

SelectorList Response::xpath(std::string_view expr) const { return selector().xpath(expr); }

SelectorList Response::css(std::string_view css_selector) const {
  return selector().css(css_selector);
}

std::string Response::urljoin(std::string_view ref) const {
  // Only a parsed page knows its <base href>; an unparsed one resolves against its URL.
  return parsed ? parsed->urljoin(ref) : crawl::urljoin(url, ref);
}

Request Response::follow(std::string_view ref, std::string callback) const {
  Request next(urljoin(ref));
  next.callback = std::move(callback);
  return next;
}

// ---- Output ----

void Output::yield(Item item) {
  if (!item.is_object()) {
    throw ValueError("an item must be a JSON object, not " + std::string(item.type_name()));
  }
  items_.push_back(std::move(item));
}

// ---- Spider ----

std::vector<Request> Spider::start_requests() {
  std::vector<Request> out;
  out.reserve(start_urls.size());
  for (const std::string& url : start_urls) {
    Request req(url);
    req.dont_filter = true;
    out.push_back(std::move(req));
  }
  return out;
}

void Spider::parse(const Response& /*response*/, Output& /*out*/) {
  throw RuntimeError(name + ".parse callback is not defined");
}

void Spider::callback(std::string cb_name, Callback fn) {
  if (cb_name.empty() || cb_name == "parse") {
    throw ValueError("a callback needs a name other than '' and 'parse' (override parse())");
  }
  if (!fn) throw ValueError("callback '" + cb_name + "' is empty");
  callbacks_[std::move(cb_name)] = std::move(fn);
}

void Spider::errback(std::string eb_name, Errback fn) {
  if (eb_name.empty()) throw ValueError("an errback needs a name");
  if (!fn) throw ValueError("errback '" + eb_name + "' is empty");
  errbacks_[std::move(eb_name)] = std::move(fn);
}

Spider::Callback Spider::find_callback(const std::string& cb_name) {
  if (cb_name.empty() || cb_name == "parse") {
    return [this](const Response& r, Output& out) { parse(r, out); };
  }
  const auto it = callbacks_.find(cb_name);
  if (it == callbacks_.end()) {
    throw ValueError("spider " + name + " has no callback '" + cb_name + "'");
  }
  return it->second;
}

Spider::Errback Spider::find_errback(const std::string& eb_name) const {
  if (eb_name.empty()) return {};
  const auto it = errbacks_.find(eb_name);
  if (it == errbacks_.end())
    throw ValueError("spider " + name + " has no errback '" + eb_name + "'");
  return it->second;
}

// ---- StatsCollector ----

void StatsCollector::inc_value(const std::string& key, std::int64_t count) {
  std::scoped_lock lock(mu_);
  nlohmann::json& v = values_[key];
  v = (v.is_number_integer() ? v.get<std::int64_t>() : 0) + count;
}

void StatsCollector::set_value(const std::string& key, nlohmann::json value) {
  std::scoped_lock lock(mu_);
  values_[key] = std::move(value);
}

void StatsCollector::max_value(const std::string& key, std::int64_t value) {
  std::scoped_lock lock(mu_);
  nlohmann::json& v = values_[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < value) v = value;
}

nlohmann::json StatsCollector::get_value(const std::string& key) const {
  std::scoped_lock lock(mu_);
  const auto it = values_.find(key);
  return it == values_.end() ? nlohmann::json() : it->second;
}

std::int64_t StatsCollector::get_int(const std::string& key) const {
  std::scoped_lock lock(mu_);
  const auto it = values_.find(key);
  return it != values_.end() && it->second.is_number_integer() ? it->second.get<std::int64_t>() : 0;
}

nlohmann::json StatsCollector::get_stats() const {
  std::scoped_lock lock(mu_);
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : values_) out[key] = value;
  return out;
}

std::string StatsCollector::dump() const {
  std::scoped_lock lock(mu_);
  std::ostringstream out;
  out << "{";
  bool first = true;
  for (const auto& [key, value] : values_) {
    out << (first ? "'" : ",\n '") << key << "': " << value.dump();
    first = false;
  }
  out << "}";
  return out.str();
}

}  // namespace concur::crawl
