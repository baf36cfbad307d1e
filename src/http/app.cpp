// src/http/app.cpp — App: route patterns, matching, the pools (concur/http/app.hpp).
#include "concur/http/app.hpp"

#include <algorithm>
#include <cctype>

namespace concur::http {

namespace detail {

namespace {

bool is_name(std::string_view s) noexcept {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// converts(c, piece): the piece is text that converter c matches.
bool converts(Converter c, std::string_view piece) noexcept {
  switch (c) {
    case Converter::kString:
    case Converter::kPath:
      return !piece.empty();
    case Converter::kInt: {
      std::int64_t v = 0;
      return all_digits(piece) && parse_int64(piece, v);
    }
    case Converter::kFloat: {
      const std::size_t dot = piece.find('.');
      return dot != std::string_view::npos && all_digits(piece.substr(0, dot)) &&
             all_digits(piece.substr(dot + 1));
    }
  }
  return false;
}

int rank_of(const Segment& s) noexcept {
  if (!s.variable) return 0;
  switch (s.converter) {
    case Converter::kInt:
    case Converter::kFloat:
      return 1;
    case Converter::kString:
      return 2;
    case Converter::kPath:
      return 3;
  }
  return 2;
}

// match_route(r, path, params): whether the dynamic route r matches the decoded path; its
// variables' values are appended to params.
bool match_route(const Route& r, std::string_view path,
                 std::vector<std::pair<std::string, std::string>>& params) {
  if (path.empty() || path.front() != '/') return false;
  std::string_view rest = path.substr(1);
  bool ate_slash = true;  // the last piece taken was followed by '/'
  for (const Segment& seg : r.segments) {
    if (seg.variable && seg.converter == Converter::kPath) {
      std::string_view value = rest;
      if (r.trailing_slash) {
        if (value.empty() || value.back() != '/') return false;
        value.remove_suffix(1);
      }
      if (value.empty()) return false;
      params.emplace_back(seg.text, std::string(value));
      return true;
    }
    const std::size_t slash = rest.find('/');
    const std::string_view piece = rest.substr(0, slash);
    if (seg.variable) {
      if (!converts(seg.converter, piece)) return false;
      params.emplace_back(seg.text, std::string(piece));
    } else if (piece != seg.text) {
      return false;
    }
    ate_slash = slash != std::string_view::npos;
    rest = ate_slash ? rest.substr(slash + 1) : std::string_view();
  }
  return rest.empty() && ate_slash == r.trailing_slash;
}

}  // namespace

Route parse_pattern(std::string_view pattern) {
  auto bad = [&](std::string_view why) {
    return ValueError("route pattern '" + std::string(pattern) + "': " + std::string(why));
  };
  if (pattern.empty() || pattern.front() != '/') throw bad("it must start with '/'");
  Route r;
  r.pattern = std::string(pattern);
  std::string_view rest = pattern.substr(1);
  if (!rest.empty() && rest.back() == '/') {
    r.trailing_slash = true;
    rest.remove_suffix(1);
  }
  if (rest.empty()) {
    if (r.trailing_slash) throw bad("'//' is not a path");
    return r;  // "/"
  }
  while (true) {
    const std::size_t slash = rest.find('/');
    const std::string_view text = rest.substr(0, slash);
    if (text.empty()) throw bad("an empty segment ('//')");
    if (!r.segments.empty() && r.segments.back().variable &&
        r.segments.back().converter == Converter::kPath) {
      throw bad("a <path:..> variable must be the last segment");
    }
    Segment seg;
    if (text.front() == '<') {
      if (text.back() != '>')
        throw bad("a variable fills its whole segment: <name> or <conv:name>");
      std::string_view inner = text.substr(1, text.size() - 2);
      std::string_view conv = "string";
      if (const std::size_t colon = inner.find(':'); colon != std::string_view::npos) {
        conv = inner.substr(0, colon);
        inner = inner.substr(colon + 1);
      }
      if (!is_name(inner)) throw bad("'" + std::string(inner) + "' is not a variable name");
      seg.variable = true;
      seg.text = std::string(inner);
      if (conv == "string") {
        seg.converter = Converter::kString;
      } else if (conv == "int") {
        seg.converter = Converter::kInt;
      } else if (conv == "float") {
        seg.converter = Converter::kFloat;
      } else if (conv == "path") {
        seg.converter = Converter::kPath;
      } else {
        throw bad("unknown converter '" + std::string(conv) + "' (string, int, float, path)");
      }
      for (const Segment& s : r.segments) {
        if (s.variable && s.text == seg.text) throw bad("the variable '" + seg.text + "' twice");
      }
    } else {
      if (text.find_first_of("<>") != std::string_view::npos) {
        throw bad("a variable fills its whole segment: <name> or <conv:name>");
      }
      seg.text = std::string(text);
    }
    r.rank.push_back(rank_of(seg));
    r.segments.push_back(std::move(seg));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  return r;
}

Response error_response(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const HTTPError& err) {
    return Response::error(err.status(), err.message());
  } catch (const TimeoutError&) {
    return Response::error(504, "the handler did not answer in time");
  } catch (const BrokenExecutor& err) {
    return Response::error(500, err.what());
  } catch (const RemoteError& err) {
    return Response::error(500, err.what());
  } catch (...) {
    concur::detail::report_exception(e);
    return Response::error(500, "Internal Server Error");
  }
}

const Handler* Route::find(std::string_view method) const noexcept {
  for (const auto& [m, h] : methods) {
    if (m == method) return &h;
  }
  return nullptr;
}

std::string Route::allow() const {
  std::vector<std::string> names;
  for (const auto& entry : methods) names.push_back(entry.first);
  if (find("GET") != nullptr && find("HEAD") == nullptr) names.emplace_back("HEAD");
  if (find("OPTIONS") == nullptr) names.emplace_back("OPTIONS");
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out.append(", ");
    out.append(n);
  }
  return out;
}

}  // namespace detail

App::App() : App(AppOptions{}) {}

App::App(AppOptions options) : options_(std::move(options)) {
  metrics_.thread_limit = static_cast<std::int64_t>(options_.max_thread_pending);
  metrics_.process_limit = static_cast<std::int64_t>(options_.max_process_pending);
  if (options_.thread_pool != nullptr) threads_ = options_.thread_pool;
  if (options_.process_pool != nullptr) processes_ = options_.process_pool;
  add_builtin_routes();
}

App::~App() = default;

void App::add_builtin_routes() {
  const std::string metrics_path = options_.metrics_path;
  const std::string health_path = options_.health_path;
  if (!metrics_path.empty()) {
    route(metrics_path, {"GET"}, [this]() -> aio::Task<Response> {
      co_return Response(200, metrics_.exposition(), "text/plain; version=0.0.4; charset=utf-8");
    });
  }
  if (!health_path.empty()) {
    route(health_path, {"GET"}, [this]() -> aio::Task<Response> {
      if (draining.load(std::memory_order_relaxed) > 0) {
        co_return Response::json({{"status", "draining"}}, 503);
      }
      co_return Response::json({{"status", "ok"}});
    });
  }
  for (auto& r : static_routes_) r->builtin = true;
}

void App::add(std::string_view pattern, std::initializer_list<std::string_view> methods,
              detail::Handler handler, const std::vector<detail::ArgKind>* process_args) {
  detail::Route parsed = detail::parse_pattern(pattern);
  if (methods.size() == 0) {
    throw ValueError("route '" + std::string(pattern) + "': no method given");
  }
  for (std::string_view m : methods) {
    if (m.empty() ||
        !std::all_of(m.begin(), m.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
      throw ValueError("route '" + std::string(pattern) + "': '" + std::string(m) +
                       "' is not a method (upper-case letters, e.g. GET)");
    }
  }
  if (process_args != nullptr) {
    std::vector<const detail::Segment*> vars;
    for (const detail::Segment& s : parsed.segments) {
      if (s.variable) vars.push_back(&s);
    }
    if (vars.size() != process_args->size()) {
      throw ValueError("route '" + std::string(pattern) + "': the task takes " +
                       std::to_string(process_args->size()) + " argument(s), the pattern has " +
                       std::to_string(vars.size()) + " variable(s)");
    }
    for (std::size_t i = 0; i < vars.size(); ++i) {
      const detail::ArgKind k = (*process_args)[i];
      const detail::Converter c = vars[i]->converter;
      const bool ok = k == detail::ArgKind::kText ||
                      (k == detail::ArgKind::kInteger && c == detail::Converter::kInt) ||
                      (k == detail::ArgKind::kNumber &&
                       (c == detail::Converter::kInt || c == detail::Converter::kFloat));
      if (!ok) {
        throw ValueError("route '" + std::string(pattern) + "': the variable '" + vars[i]->text +
                         "' feeds a numeric task parameter: declare it <int:" + vars[i]->text +
                         ">" + (k == detail::ArgKind::kNumber ? " or <float:..>" : ""));
      }
    }
  }
  // The route of that pattern, made if new.
  detail::Route* r = nullptr;
  const bool is_static = std::none_of(parsed.segments.begin(), parsed.segments.end(),
                                      [](const detail::Segment& s) { return s.variable; });
  if (is_static) {
    if (auto it = static_.find(parsed.pattern); it != static_.end()) r = it->second;
  } else {
    for (auto& existing : routes_) {
      if (existing->pattern == parsed.pattern) r = existing.get();
    }
  }
  if (r != nullptr && r->builtin) {
    r->methods.clear();  // the application's own /metrics or /healthz replaces the built-in one
    r->builtin = false;
  }
  if (r != nullptr) {
    for (std::string_view m : methods) {
      if (r->find(m) != nullptr) {
        throw ValueError("route '" + std::string(pattern) + "': " + std::string(m) +
                         " is registered twice");
      }
    }
  } else {
    auto owned = std::make_unique<detail::Route>(std::move(parsed));
    owned->order = next_order_++;
    r = owned.get();
    if (is_static) {
      static_.emplace(r->pattern, r);
      static_routes_.push_back(std::move(owned));
    } else {
      routes_.push_back(std::move(owned));
      std::stable_sort(routes_.begin(), routes_.end(), [](const auto& a, const auto& b) {
        return a->rank != b->rank ? a->rank < b->rank : a->order < b->order;
      });
    }
  }
  for (std::string_view m : methods) r->methods.emplace_back(std::string(m), handler);
}

Match App::match(std::string_view method, std::string_view path) const {
  Match m;
  const detail::Route* found = nullptr;
  if (auto it = static_.find(std::string(path)); it != static_.end()) {
    found = it->second;
  } else {
    for (const auto& r : routes_) {
      m.params.clear();
      if (detail::match_route(*r, path, m.params)) {
        found = r.get();
        break;
      }
    }
  }
  if (found == nullptr) {
    m.params.clear();
    if (!path.empty() && path.back() != '/') {
      // A route of the path with a trailing '/' answers with a redirect there (Flask's
      // strict_slashes).
      std::string slashed = std::string(path) + "/";
      bool redirect = static_.find(slashed) != static_.end();
      std::vector<std::pair<std::string, std::string>> ignored;
      for (const auto& r : routes_) {
        if (redirect) break;
        ignored.clear();
        redirect = r->trailing_slash && detail::match_route(*r, slashed, ignored);
      }
      if (redirect) {
        m.kind = Match::Kind::kRedirect;
        m.location = std::move(slashed);
        return m;
      }
    }
    m.kind = Match::Kind::kNotFound;
    return m;
  }
  m.route = found;
  if (const detail::Handler* h = found->find(method)) {
    m.kind = Match::Kind::kFound;
    m.handler = h;
    return m;
  }
  if (method == "HEAD") {
    if (const detail::Handler* h = found->find("GET")) {
      m.kind = Match::Kind::kFound;
      m.handler = h;
      m.head = true;
      return m;
    }
  }
  m.allow = found->allow();
  m.kind = method == "OPTIONS" ? Match::Kind::kOptions : Match::Kind::kMethodNotAllowed;
  return m;
}

ThreadPoolExecutor& App::thread_pool() {
  if (ThreadPoolExecutor* p = threads_.load(std::memory_order_acquire)) return *p;
  std::scoped_lock lock(pools_mu_);
  if (ThreadPoolExecutor* p = threads_.load(std::memory_order_relaxed)) return *p;
  const std::size_t n = options_.thread_workers == 0 ? 32 : options_.thread_workers;
  own_threads_ = std::make_unique<ThreadPoolExecutor>(n);
  threads_.store(own_threads_.get(), std::memory_order_release);
  return *own_threads_;
}

ProcessPoolExecutor& App::process_pool() {
  if (ProcessPoolExecutor* p = processes_.load(std::memory_order_acquire)) return *p;
  std::scoped_lock lock(pools_mu_);
  if (ProcessPoolExecutor* p = processes_.load(std::memory_order_relaxed)) return *p;
  own_processes_ = std::make_unique<ProcessPoolExecutor>(
      ProcessPoolOptions{.max_workers = options_.process_workers});
  processes_.store(own_processes_.get(), std::memory_order_release);
  return *own_processes_;
}

bool App::try_reserve(detail::Handler::Kind kind) noexcept {
  std::atomic<std::int64_t>* pending = nullptr;
  std::size_t limit = 0;
  Metrics::Reject why{};
  switch (kind) {
    case detail::Handler::Kind::kLoop:
      return true;
    case detail::Handler::Kind::kThread:
      pending = &metrics_.thread_pending;
      limit = options_.max_thread_pending;
      why = Metrics::Reject::kThreadPoolFull;
      break;
    case detail::Handler::Kind::kProcess:
      pending = &metrics_.process_pending;
      limit = options_.max_process_pending;
      why = Metrics::Reject::kProcessPoolFull;
      break;
  }
  const std::int64_t before = pending->fetch_add(1, std::memory_order_relaxed);
  if (limit != 0 && before >= static_cast<std::int64_t>(limit)) {
    pending->fetch_sub(1, std::memory_order_relaxed);
    metrics_.rejected(why);
    return false;
  }
  return true;
}

void App::release(detail::Handler::Kind kind) noexcept {
  if (kind == detail::Handler::Kind::kThread) {
    metrics_.thread_pending.fetch_sub(1, std::memory_order_relaxed);
  } else if (kind == detail::Handler::Kind::kProcess) {
    metrics_.process_pending.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace concur::http
