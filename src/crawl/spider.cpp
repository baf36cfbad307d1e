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

std::vector<Link> Response::links(const LinkExtractorOptions& options) const {
  if (parsed) return extract_links(*parsed, options);
  Selector::Options page;
  page.base_url = url;
  if (auto ct = headers.get("Content-Type")) page.content_type = std::string(*ct);
  return scan_links(body, page, options);
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

// ---- Request as bytes ----

std::string dump_request(const Request& request) {
  nlohmann::json doc = nlohmann::json::object();
  doc["v"] = 1;
  doc["method"] = request.method;
  doc["url"] = request.url;
  nlohmann::json headers = nlohmann::json::array();
  for (const auto& [name, value] : request.headers) headers.push_back({name, value});
  doc["headers"] = std::move(headers);
  // The body as CBOR bytes: any bytes, not only UTF-8.
  doc["body"] =
      nlohmann::json::binary(std::vector<std::uint8_t>(request.body.begin(), request.body.end()));
  if (request.timeout) doc["timeout_ms"] = request.timeout->count();
  if (request.max_size) doc["max_size"] = *request.max_size;
  if (request.warn_size) doc["warn_size"] = *request.warn_size;
  if (request.proxy) doc["proxy"] = *request.proxy;
  if (request.user_agent) doc["user_agent"] = *request.user_agent;
  doc["follow_redirects"] = request.follow_redirects;
  doc["max_redirects"] = request.max_redirects;
  doc["fail_on_dataloss"] = request.fail_on_dataloss;
  doc["callback"] = request.callback;
  doc["errback"] = request.errback;
  doc["priority"] = request.priority;
  doc["dont_filter"] = request.dont_filter;
  doc["meta"] = request.meta;
  doc["download_slot"] = request.download_slot;
  doc["depth"] = request.depth;
  doc["retry_times"] = request.retry_times;
  doc["redirect_times"] = request.redirect_times;
  const std::vector<std::uint8_t> bytes = nlohmann::json::to_cbor(doc);
  return std::string(bytes.begin(), bytes.end());
}

Request load_request(std::string_view blob) {
  const auto doc = nlohmann::json::from_cbor(blob.begin(), blob.end(), /*strict=*/true,
                                             /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("v") || !doc["v"].is_number_integer() ||
      doc["v"].get<std::int64_t>() != 1) {
    throw ValueError("load_request: not a dumped Request");
  }
  try {
    Request r(doc.at("url").get<std::string>(), doc.at("method").get<std::string>());
    for (const auto& field : doc.at("headers")) {
      r.headers.add(field.at(0).get<std::string>(), field.at(1).get<std::string>());
    }
    const auto& body = doc.at("body").get_binary();
    r.body.assign(body.begin(), body.end());
    if (doc.contains("timeout_ms")) {
      r.timeout = std::chrono::milliseconds(doc["timeout_ms"].get<std::int64_t>());
    }
    if (doc.contains("max_size")) r.max_size = doc["max_size"].get<std::size_t>();
    if (doc.contains("warn_size")) r.warn_size = doc["warn_size"].get<std::size_t>();
    if (doc.contains("proxy")) r.proxy = doc["proxy"].get<std::string>();
    if (doc.contains("user_agent")) r.user_agent = doc["user_agent"].get<std::string>();
    r.follow_redirects = doc.at("follow_redirects").get<bool>();
    r.max_redirects = doc.at("max_redirects").get<int>();
    r.fail_on_dataloss = doc.at("fail_on_dataloss").get<bool>();
    r.callback = doc.at("callback").get<std::string>();
    r.errback = doc.at("errback").get<std::string>();
    r.priority = doc.at("priority").get<int>();
    r.dont_filter = doc.at("dont_filter").get<bool>();
    r.meta = doc.at("meta").get<std::map<std::string, std::string>>();
    r.download_slot = doc.at("download_slot").get<std::string>();
    r.depth = doc.at("depth").get<int>();
    r.retry_times = doc.at("retry_times").get<int>();
    r.redirect_times = doc.at("redirect_times").get<int>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(std::string("load_request: a malformed Request (") + e.what() + ")");
  }
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

// ---- FeedPipeline ----

FeedPipeline::FeedPipeline(std::unique_ptr<FeedExporter> exporter)
    : exporter_(std::move(exporter)) {
  if (!exporter_) throw ValueError("FeedPipeline: null exporter");
}

void FeedPipeline::process_item(Item& item, Spider& /*spider*/) { exporter_->export_item(item); }

void FeedPipeline::close_spider(Spider& /*spider*/) { exporter_->finish(); }

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
