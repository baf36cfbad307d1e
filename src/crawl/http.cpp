// crawl::HttpClient: libcurl's multi interface ("multi_socket") driven by the aio loop.
// docs/internals/crawl-http.md narrates it; the numbered steps there match the functions here.
//
// One ClientCore per client owns a CURLM (the transfers, the connection cache) and a CURLSH (DNS,
// TLS sessions, cookies). libcurl tells us, through two callbacks, what to wait for:
//   on_socket  "watch fd s for IN / OUT / INOUT, or REMOVE it" → Loop::add_reader/add_writer
//              (the loop's own epoll, via its fd watchers) and remove_reader/remove_writer;
//   on_timer   "call me back in N ms (-1: never)" → one loop timer (call_later / call_soon).
// Each easy handle also opens and closes its connections' sockets through us (on_open_socket /
// on_close_socket), so that the loop keeps such a socket registered with its reactor from its first
// watch until it is closed (aio's pinned fds), not from each transfer's watch to its REMOVE.
// The loop calls back on_ready(fd) / on_timeout(), which run curl_multi_socket_action and then
// collect the finished transfers (curl_multi_info_read) and wake their tasks.
// A fetch is a Transfer: an aio Waiter that lives in the fetch coroutine's frame, owns one easy
// handle while the transfer runs, and is linked in the core's in-flight list.
// Everything runs on the loop's thread; libcurl's callbacks never run user code and never call
// back into libcurl.
#include "concur/crawl/http.hpp"

#include <curl/curl.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <coroutine>
#include <cstring>
#include <exception>
#include <unordered_map>

#include "../aio/fd_pin.hpp"    // aio's pinned fd watchers
#include "../aio/os_error.hpp"  // aio's errno -> OSError family mapping
#include "concur/aio/sync.hpp"

namespace concur::crawl {

namespace adetail = concur::aio::detail;

// ---- Headers ------------------------------------------------------------------------------------

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

void Headers::add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::set(std::string name, std::string value) {
  (void)remove(name);
  add(std::move(name), std::move(value));
}

std::size_t Headers::remove(std::string_view name) {
  const auto it = std::remove_if(fields_.begin(), fields_.end(),
                                 [name](const Field& f) { return iequals(f.first, name); });
  const auto n = static_cast<std::size_t>(fields_.end() - it);
  fields_.erase(it, fields_.end());
  return n;
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const Field& f : fields_) {
    if (iequals(f.first, name)) return std::string_view(f.second);
  }
  return std::nullopt;
}

std::vector<std::string_view> Headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const Field& f : fields_) {
    if (iequals(f.first, name)) out.emplace_back(f.second);
  }
  return out;
}

// ---- libcurl ------------------------------------------------------------------------------------

namespace {

// curl_global(): curl_global_init once per process (before the first handle).
void curl_global() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    throw DownloadError(static_cast<int>(rc),
                        std::string("curl_global_init failed: ") + curl_easy_strerror(rc));
  }
}

template <class V>
void setopt(CURL* easy, CURLoption opt, V value) {
  const CURLcode rc = curl_easy_setopt(easy, opt, value);
  if (rc != CURLE_OK) {
    throw DownloadError(static_cast<int>(rc), std::string("curl_easy_setopt(") +
                                                  std::to_string(static_cast<int>(opt)) +
                                                  "): " + curl_easy_strerror(rc));
  }
}

template <class V>
void msetopt(CURLM* multi, CURLMoption opt, V value) {
  const CURLMcode rc = curl_multi_setopt(multi, opt, value);
  if (rc != CURLM_OK) {
    throw DownloadError(static_cast<int>(rc),
                        std::string("curl_multi_setopt: ") + curl_multi_strerror(rc));
  }
}

std::chrono::microseconds info_us(CURL* easy, CURLINFO what) {
  curl_off_t v = 0;
  if (curl_easy_getinfo(easy, what, &v) != CURLE_OK) return std::chrono::microseconds(0);
  return std::chrono::microseconds(v);
}

long info_long(CURL* easy, CURLINFO what) {
  long v = 0;
  if (curl_easy_getinfo(easy, what, &v) != CURLE_OK) return 0;
  return v;
}

std::string info_str(CURL* easy, CURLINFO what) {
  char* v = nullptr;
  if (curl_easy_getinfo(easy, what, &v) != CURLE_OK || v == nullptr) return {};
  return v;
}

const char* http_version_name(long v) noexcept {
  switch (v) {
    case CURL_HTTP_VERSION_1_0:
      return "HTTP/1.0";
    case CURL_HTTP_VERSION_1_1:
      return "HTTP/1.1";
    case CURL_HTTP_VERSION_2_0:
      return "HTTP/2";
    case CURL_HTTP_VERSION_3:
      return "HTTP/3";
    default:
      return "";
  }
}

bool is_tls_error(CURLcode rc) noexcept {
  switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

// connection_error(e, msg): errno e as Python's ConnectionError family (aio's one mapping), and a
// plain ConnectionError for a connection lost without an errno (0).
std::exception_ptr connection_error(int e, const std::string& msg) {
  if (e == 0) return std::make_exception_ptr(ConnectionError(0, msg));
  return aio::detail::os_error(e, msg);
}

}  // namespace

std::string curl_version_text() {
  curl_global();
  return curl_version();
}

bool curl_has_http2() {
  curl_global();
  const curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
  return v != nullptr && (v->features & CURL_VERSION_HTTP2) != 0;
}

namespace detail {

class Transfer;

// ClientCore: what a client and its fetches share (see the file comment).
class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  ClientCore(aio::Loop& loop, ClientOptions options);
  ~ClientCore();
  ClientCore(const ClientCore&) = delete;
  ClientCore& operator=(const ClientCore&) = delete;

  // start_guard(): the task that closes the client when the loop closes (it is cancelled then).
  void start_guard();
  // close(from_guard): crawl-http.md, "Closing".
  void close(bool from_guard) noexcept;

  // start(t): t's easy handle joins the multi handle (the transfer begins).
  void start(Transfer& t);
  // withdraw(t): t leaves the multi handle before it finished (a cancellation).
  void withdraw(Transfer& t) noexcept;

  CURL* take_easy();
  void give_back(CURL* easy) noexcept;
  void check_usable(const char* what) const;

  [[nodiscard]] const ClientOptions& options() const noexcept { return options_; }
  [[nodiscard]] CURLSH* share() const noexcept { return share_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
  // set_socket_callbacks(easy): our open / close socket callbacks on easy (every transfer:
  // curl_easy_reset clears them).
  void set_socket_callbacks(CURL* easy);
  ClientStats stats;

 private:
  static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  static curl_socket_t on_open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* addr);
  static int on_close_socket(void* clientp, curl_socket_t s);
  void forget_socket(curl_socket_t s) noexcept;
  void watch(curl_socket_t s, int what);
  void on_ready(curl_socket_t s, int events) noexcept;
  void on_timeout() noexcept;
  void collect_done() noexcept;
  void link(Transfer& t) noexcept;
  void unlink(Transfer& t) noexcept;

  aio::Loop* loop_;
  ClientOptions options_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::unordered_map<curl_socket_t, int> watched_;  // fd → CURL_POLL_IN / OUT / INOUT
  std::unordered_map<curl_socket_t, bool> ours_;    // opened by on_open_socket → pinned yet
  aio::Handle timer_;
  Transfer* head_ = nullptr;  // in flight (intrusive, doubly linked)
  std::size_t in_flight_ = 0;
  std::vector<CURL*> spare_;  // easy handles kept for the next fetches
  aio::Task<void> guard_;
  bool closed_ = false;
  bool closing_ = false;  // libcurl's callbacks are ignored (close() removes the watchers itself)
};

// Transfer: one fetch in flight; the awaiter the fetch coroutine suspends on (task.hpp's Waiter
// protocol). Lives in the fetch's frame; awaited in place (by_ref).
class Transfer final : public adetail::Waiter {
 public:
  using aio_awaitable = void;
  Transfer(std::shared_ptr<ClientCore> core, Request request);
  ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> /*h*/);
  void await_resume();
  bool cancel(adetail::TaskCore& task) noexcept override;

  Response take_response() noexcept { return std::move(response_); }

 private:
  friend class ClientCore;
  void configure();
  // finish(rc): libcurl is done with it (the easy handle is still in the multi handle).
  void finish(CURLcode rc) noexcept;
  std::exception_ptr error_for(CURLcode rc) const;
  void release_easy() noexcept;
  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* userp);
  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* userp);

  std::shared_ptr<ClientCore> core_;
  Request request_;
  Response response_;
  CURL* easy_ = nullptr;
  curl_slist* header_list_ = nullptr;
  std::exception_ptr error_;
  adetail::TaskCore* task_ = nullptr;  // while suspended on this transfer
  Transfer* prev_ = nullptr;
  Transfer* next_ = nullptr;
  bool attached_ = false;  // in the multi handle
  std::size_t max_size_ = 0;
  std::size_t warn_size_ = 0;
  std::size_t expected_size_ = 0;  // Content-Length of the current response
  int current_status_ = 0;         // of the response whose headers arrive
  bool too_large_ = false;
  char errbuf_[CURL_ERROR_SIZE] = {};
};

// ---- ClientCore ---------------------------------------------------------------------------------

namespace {

// guard(weak): a task of the loop that waits forever; the loop's close() cancels it, and then it
// closes the client while the loop can still remove its watchers (crawl-http.md, "Closing").
aio::Task<void> guard(std::weak_ptr<ClientCore> weak, std::shared_ptr<aio::Event> never) {
  try {
    co_await never->wait();
  } catch (const CancelledError&) {
    if (std::shared_ptr<ClientCore> core = weak.lock()) core->close(/*from_guard=*/true);
    throw;
  }
}

}  // namespace

ClientCore::ClientCore(aio::Loop& loop, ClientOptions options)
    : loop_(&loop), options_(std::move(options)) {
  curl_global();
  if (loop.is_closed()) throw RuntimeError("HttpClient: the event loop is closed");
  multi_ = curl_multi_init();
  share_ = curl_share_init();
  if (multi_ == nullptr || share_ == nullptr) {
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
    throw DownloadError(0, "HttpClient: libcurl could not create its handles");
  }
  try {
    msetopt(multi_, CURLMOPT_SOCKETFUNCTION, &ClientCore::on_socket);
    msetopt(multi_, CURLMOPT_SOCKETDATA, static_cast<void*>(this));
    msetopt(multi_, CURLMOPT_TIMERFUNCTION, &ClientCore::on_timer);
    msetopt(multi_, CURLMOPT_TIMERDATA, static_cast<void*>(this));
    msetopt(multi_, CURLMOPT_PIPELINING, options_.http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    msetopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, options_.max_total_connections);
    msetopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_host_connections);
    if (options_.max_idle_connections > 0) {
      msetopt(multi_, CURLMOPT_MAXCONNECTS, options_.max_idle_connections);
    }
    // One thread uses the share (the loop's): no lock callbacks needed.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (options_.cookies) curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
  } catch (...) {
    curl_multi_cleanup(multi_);
    curl_share_cleanup(share_);
    throw;
  }
}

ClientCore::~ClientCore() {
  close(false);
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  for (CURL* e : spare_) curl_easy_cleanup(e);
  if (share_ != nullptr) curl_share_cleanup(share_);
}

void ClientCore::start_guard() {
  auto never = std::make_shared<aio::Event>();
  guard_ = loop_->create_task(guard(weak_from_this(), std::move(never)), "crawl::HttpClient guard");
}

void ClientCore::check_usable(const char* what) const {
  if (closed_) throw RuntimeError(std::string(what) + ": the HttpClient is closed");
  if (adetail::tls_loop != &loop_->core()) {
    throw RuntimeError(std::string(what) +
                       ": an HttpClient is used on its loop's thread, inside a task of that loop");
  }
}

// close() (crawl-http.md, "Closing"): 1. closed: later fetches raise; 2. the loop is gone when the
// guard ended without us (the loop closed without running it, or was destroyed): it is not
// touched again; 3. every transfer in flight leaves the multi handle and its task wakes with
// CancelledError (libcurl's callbacks still update the watchers meanwhile); 4. libcurl's callbacks
// are ignored, the loop's remaining watchers and the timer go; 5. the multi handle is freed (its
// connections closed: on_close_socket unpins each socket unless the loop is gone, and closes it)
// and the spare easy handles; the share goes with the core.
void ClientCore::close(bool from_guard) noexcept {
  if (closed_) return;
  closed_ = true;
  const bool loop_gone = !from_guard && (!guard_.valid() || guard_.done());
  closing_ = loop_gone;
  // A gone loop released its pinned sockets when it closed: on_close_socket must not unpin them.
  if (loop_gone) loop_ = nullptr;
  while (Transfer* t = head_) {
    // (Only while the loop lives: a closed loop ran every task, and so every fetch, to its end.)
    // libcurl's callbacks still update the watchers: the sockets it closes here leave the loop.
    curl_multi_remove_handle(multi_, t->easy_);
    t->attached_ = false;
    unlink(*t);
    ++stats.cancelled;
    t->error_ = std::make_exception_ptr(CancelledError("HttpClient closed"));
    if (adetail::TaskCore* task = std::exchange(t->task_, nullptr)) task->wake();
  }
  closing_ = true;
  if (!loop_gone) {
    for (const auto& [fd, what] : watched_) {
      try {
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) (void)loop_->remove_reader(fd);
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) (void)loop_->remove_writer(fd);
      } catch (...) {
        // (Only a call from another thread than the loop's could fail here; nothing to undo.)
      }
    }
    timer_.cancel();
  }
  watched_.clear();
  timer_ = aio::Handle();
  curl_multi_cleanup(multi_);
  multi_ = nullptr;
  for (CURL* e : spare_) curl_easy_cleanup(e);
  spare_.clear();
  loop_ = nullptr;
  if (!from_guard && !loop_gone && guard_.valid() && !guard_.done()) (void)guard_.cancel();
}

CURL* ClientCore::take_easy() {
  if (!spare_.empty()) {
    CURL* e = spare_.back();
    spare_.pop_back();
    return e;
  }
  CURL* e = curl_easy_init();
  if (e == nullptr) throw DownloadError(0, "curl_easy_init failed");
  return e;
}

void ClientCore::give_back(CURL* easy) noexcept {
  constexpr std::size_t kMaxSpare = 64;
  // libcurl 7.88 keeps CURLOPT_COOKIEFILE's list of files past the transfer and curl_easy_reset
  // does not free it (LeakSanitizer saw one list per fetch): NULL clears it. With a shared cookie
  // store the cookies themselves stay.
  if (options_.cookies) curl_easy_setopt(easy, CURLOPT_COOKIEFILE, static_cast<char*>(nullptr));
  if (closed_ || spare_.size() >= kMaxSpare) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);
  try {
    spare_.push_back(easy);
  } catch (...) {
    curl_easy_cleanup(easy);
  }
}

void ClientCore::link(Transfer& t) noexcept {
  t.prev_ = nullptr;
  t.next_ = head_;
  if (head_ != nullptr) head_->prev_ = &t;
  head_ = &t;
  ++in_flight_;
}

void ClientCore::unlink(Transfer& t) noexcept {
  if (t.prev_ != nullptr) {
    t.prev_->next_ = t.next_;
  } else {
    head_ = t.next_;
  }
  if (t.next_ != nullptr) t.next_->prev_ = t.prev_;
  t.prev_ = t.next_ = nullptr;
  --in_flight_;
}

void ClientCore::start(Transfer& t) {
  const CURLMcode rc = curl_multi_add_handle(multi_, t.easy_);
  if (rc != CURLM_OK) {
    throw DownloadError(static_cast<int>(rc),
                        std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc));
  }
  t.attached_ = true;
  link(t);
  ++stats.fetches;
}

void ClientCore::withdraw(Transfer& t) noexcept {
  if (!t.attached_) return;
  curl_multi_remove_handle(multi_, t.easy_);  // may call on_socket / on_timer: fine here
  t.attached_ = false;
  unlink(t);
  ++stats.cancelled;
}

// on_socket: libcurl's CURLMOPT_SOCKETFUNCTION (crawl-http.md, "Sockets").
int ClientCore::on_socket(CURL* /*easy*/, curl_socket_t s, int what, void* userp,
                          void* /*socketp*/) {
  auto* self = static_cast<ClientCore*>(userp);
  if (self->closing_) return 0;
  try {
    self->watch(s, what);
    return 0;
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
    return -1;  // libcurl fails the transfers of that socket
  }
}

void ClientCore::watch(curl_socket_t s, int what) {
  const auto it = watched_.find(s);
  const int had = it == watched_.end() ? CURL_POLL_NONE : it->second;
  const int want = what == CURL_POLL_REMOVE ? CURL_POLL_NONE : what;
  const bool had_in = had == CURL_POLL_IN || had == CURL_POLL_INOUT;
  const bool had_out = had == CURL_POLL_OUT || had == CURL_POLL_INOUT;
  const bool want_in = want == CURL_POLL_IN || want == CURL_POLL_INOUT;
  const bool want_out = want == CURL_POLL_OUT || want == CURL_POLL_INOUT;
  // Removals first: nothing is left half-registered when an add throws.
  if (had_in && !want_in) (void)loop_->remove_reader(s);
  if (had_out && !want_out) (void)loop_->remove_writer(s);
  if (want == CURL_POLL_NONE) {
    if (it != watched_.end()) watched_.erase(it);
    return;
  }
  // A socket we opened stays registered with the loop's reactor from its first watch until
  // on_close_socket: the REMOVE after each transfer and the next watch then cost no system call.
  if (const auto mine = ours_.find(s); mine != ours_.end() && !mine->second) {
    adetail::pin_fd(loop_->core(), s);
    mine->second = true;
  }
  int now = (had_in && want_in ? CURL_POLL_IN : 0) | (had_out && want_out ? CURL_POLL_OUT : 0);
  watched_[s] = now;
  if (want_in && !had_in) {
    loop_->add_reader(s, [this, s] { on_ready(s, CURL_CSELECT_IN); });
    now |= CURL_POLL_IN;
    watched_[s] = now;
  }
  if (want_out && !had_out) {
    loop_->add_writer(s, [this, s] { on_ready(s, CURL_CSELECT_OUT); });
    now |= CURL_POLL_OUT;
    watched_[s] = now;
  }
}

void ClientCore::set_socket_callbacks(CURL* easy) {
  setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &ClientCore::on_open_socket);
  setopt(easy, CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
  setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &ClientCore::on_close_socket);
  setopt(easy, CURLOPT_CLOSESOCKETDATA, static_cast<void*>(this));
}

// on_open_socket: libcurl's CURLOPT_OPENSOCKETFUNCTION (crawl-http.md, "Sockets"): the socket
// libcurl would make (it sets O_NONBLOCK itself), recorded as ours so that watch() pins it.
// libcurl's own descriptors (the threaded resolver's socketpair) do not come here and are never
// pinned: libcurl closes them without calling on_close_socket.
curl_socket_t ClientCore::on_open_socket(void* clientp, curlsocktype /*purpose*/,
                                         curl_sockaddr* addr) {
  auto* self = static_cast<ClientCore*>(clientp);
  const int fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;  // errno stays for libcurl's message
  try {
    self->forget_socket(fd);  // (a record of a number closed behind our back: never, normally)
    self->ours_[fd] = false;
  } catch (...) {
    ::close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd;
}

// on_close_socket: libcurl's CURLOPT_CLOSESOCKETFUNCTION, for every socket a connection of ours
// closes (its CURL_POLL_REMOVE came first): unpinned while the loop lives, then closed — once.
int ClientCore::on_close_socket(void* clientp, curl_socket_t s) {
  static_cast<ClientCore*>(clientp)->forget_socket(s);
  return ::close(s);
}

// forget_socket(s): s is about to be closed: its record goes and, if it was pinned and the loop
// lives, its pin (the fd's number may be reused at once by anyone).
void ClientCore::forget_socket(curl_socket_t s) noexcept {
  const auto it = ours_.find(s);
  if (it == ours_.end()) return;
  const bool pinned = it->second;
  ours_.erase(it);
  if (!pinned || loop_ == nullptr) return;
  CONCUR_DCHECK(!watched_.contains(s));  // libcurl's REMOVE precedes the close
  try {
    adetail::unpin_fd(loop_->core(), s);
  } catch (...) {
    // (Only a close from another thread than the loop's could fail here, as in close().)
  }
}

// on_timer: libcurl's CURLMOPT_TIMERFUNCTION: one timer, replaced at each call.
int ClientCore::on_timer(CURLM* /*multi*/, long timeout_ms, void* userp) {
  auto* self = static_cast<ClientCore*>(userp);
  if (self->closing_) return 0;
  self->timer_.cancel();
  self->timer_ = aio::Handle();
  if (timeout_ms < 0) return 0;
  try {
    // libcurl must not be called from inside this callback: a 0 ms timeout runs soon.
    auto fire = [self] { self->on_timeout(); };
    self->timer_ = timeout_ms == 0
                       ? self->loop_->call_soon(fire)
                       : self->loop_->call_later(std::chrono::milliseconds(timeout_ms), fire);
    return 0;
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
    return -1;
  }
}

void ClientCore::on_ready(curl_socket_t s, int events) noexcept {
  if (closing_) return;
  int running = 0;
  (void)curl_multi_socket_action(multi_, s, events, &running);
  collect_done();
}

void ClientCore::on_timeout() noexcept {
  if (closing_) return;
  int running = 0;
  (void)curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  collect_done();
}

// collect_done(): every finished transfer leaves the multi handle and its task wakes.
void ClientCore::collect_done() noexcept {
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL* easy = m->easy_handle;
    const CURLcode rc = m->data.result;  // (m is invalid once the handle is removed)
    char* priv = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    auto* t = reinterpret_cast<Transfer*>(priv);
    t->finish(rc);
    curl_multi_remove_handle(multi_, easy);
    t->attached_ = false;
    unlink(*t);
    if (adetail::TaskCore* task = std::exchange(t->task_, nullptr)) task->wake();
  }
}

// ---- Transfer -----------------------------------------------------------------------------------

Transfer::Transfer(std::shared_ptr<ClientCore> core, Request request)
    : core_(std::move(core)), request_(std::move(request)) {
  core_->check_usable("HttpClient.fetch()");
  const ClientOptions& o = core_->options();
  max_size_ = request_.max_size.value_or(o.max_size);
  warn_size_ = request_.warn_size.value_or(o.warn_size);
  response_.method = request_.method;
  easy_ = core_->take_easy();
  try {
    configure();
  } catch (...) {
    release_easy();
    throw;
  }
}

Transfer::~Transfer() {
  if (attached_) core_->withdraw(*this);  // (a frame destroyed while suspended: never, normally)
  release_easy();
}

void Transfer::release_easy() noexcept {
  if (header_list_ != nullptr) {
    curl_slist_free_all(header_list_);
    header_list_ = nullptr;
  }
  if (easy_ != nullptr) core_->give_back(std::exchange(easy_, nullptr));
}

void Transfer::configure() {
  const ClientOptions& o = core_->options();
  CURL* e = easy_;
  setopt(e, CURLOPT_PRIVATE, static_cast<void*>(this));
  setopt(e, CURLOPT_ERRORBUFFER, errbuf_);
  setopt(e, CURLOPT_NOSIGNAL, 1L);
  setopt(e, CURLOPT_URL, request_.url.c_str());
  // A crawler meets every kind of link: only http(s), also when following redirects.
  setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
  setopt(e, CURLOPT_WRITEDATA, static_cast<void*>(this));
  setopt(e, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  setopt(e, CURLOPT_HEADERDATA, static_cast<void*>(this));
  setopt(e, CURLOPT_SHARE, core_->share());
  core_->set_socket_callbacks(e);
  const std::string& ua = request_.user_agent ? *request_.user_agent : o.user_agent;
  if (!ua.empty()) setopt(e, CURLOPT_USERAGENT, ua.c_str());
  const auto timeout = request_.timeout.value_or(o.timeout);
  setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  if (o.connect_timeout.count() > 0) {
    setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout.count()));
  }
  setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, static_cast<long>(o.dns_cache_timeout.count()));
  if (request_.follow_redirects) {
    setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(request_.max_redirects));
  }
  if (o.decode_content) setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // every encoding libcurl has
  if (o.http2) {
    setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    // PIPEWAIT: prefer a stream on a connection being set up — only where that connection may
    // turn out to multiplex (HTTP/2 comes by ALPN over TLS). For http:// it would make every
    // fetch to a host wait until the host's first answer proves the connection HTTP/1.1: a slow
    // first page would hold the whole host back.
    if (strncasecmp(request_.url.c_str(), "https://", 8) == 0) setopt(e, CURLOPT_PIPEWAIT, 1L);
  } else {
    setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  }
  if (!o.verify_tls) {
    setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!o.ca_file.empty()) setopt(e, CURLOPT_CAINFO, o.ca_file.c_str());
  if (o.cookies) setopt(e, CURLOPT_COOKIEFILE, "");  // the engine on, nothing read
  // A proxy set here wins; "" is "none" — which also keeps libcurl from reading http_proxy and
  // friends from the environment unless trust_env asks for it.
  const std::string& proxy = request_.proxy ? *request_.proxy : o.proxy;
  if (request_.proxy || !proxy.empty() || !o.trust_env) setopt(e, CURLOPT_PROXY, proxy.c_str());
  setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);  // a proxy's CONNECT answer is not ours
  // The method and the body.
  const std::string& m = request_.method;
  if (m == "GET") {
    setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (m == "HEAD") {
    setopt(e, CURLOPT_NOBODY, 1L);
  } else if (m == "POST") {
    setopt(e, CURLOPT_POST, 1L);
  } else {
    setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str());
  }
  if (!request_.body.empty() || m == "POST") {
    setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request_.body.size()));
    setopt(e, CURLOPT_POSTFIELDS, request_.body.data());
  }
  // The headers ("Name;" sends a field with an empty value; "Expect:" keeps libcurl from
  // waiting for a 100-continue before a large body).
  bool has_expect = false;
  for (const auto& [name, value] : request_.headers) {
    if (iequals(name, "Expect")) has_expect = true;
    const std::string line = value.empty() ? name + ";" : name + ": " + value;
    curl_slist* l = curl_slist_append(header_list_, line.c_str());
    if (l == nullptr) throw std::bad_alloc();
    header_list_ = l;
  }
  if (!has_expect && !request_.body.empty()) {
    curl_slist* l = curl_slist_append(header_list_, "Expect:");
    if (l == nullptr) throw std::bad_alloc();
    header_list_ = l;
  }
  if (header_list_ != nullptr) setopt(e, CURLOPT_HTTPHEADER, header_list_);
}

bool Transfer::await_suspend(std::coroutine_handle<> /*h*/) {
  adetail::TaskCore* me = adetail::tls_task;
  core_->check_usable("HttpClient.fetch()");
  core_->start(*this);          // may throw: nothing is recorded yet
  if (!me->suspend_on(this)) {  // a cancellation is pending: the transfer never runs
    core_->withdraw(*this);
    return false;
  }
  task_ = me;
  return true;
}

void Transfer::await_resume() {
  adetail::tls_task->check_cancel();
  if (error_) std::rethrow_exception(error_);
}

bool Transfer::cancel(adetail::TaskCore& task) noexcept {
  if (task_ != &task) return false;
  task_ = nullptr;
  core_->withdraw(*this);  // at once: no libcurl callback for it runs after this
  task.wake();
  return false;
}

std::size_t Transfer::on_body(char* data, std::size_t size, std::size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const std::size_t bytes = size * n;
  std::string& body = t->response_.body;
  if (t->max_size_ != 0 && body.size() + bytes > t->max_size_) {
    t->too_large_ = true;
    return 0;  // CURLE_WRITE_ERROR: the transfer stops here
  }
  try {
    body.append(data, bytes);
  } catch (...) {
    return 0;
  }
  if (t->warn_size_ != 0 && body.size() > t->warn_size_) t->response_.size_warning = true;
  return bytes;
}

std::size_t Transfer::on_header(char* data, std::size_t size, std::size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const std::size_t bytes = size * n;
  const std::string_view line(data, bytes);
  try {
    if (line.rfind("HTTP/", 0) == 0) {
      // A status line: a new response begins (an interim 1xx, a redirect followed).
      t->response_.headers.clear();
      t->response_.reason.clear();
      t->expected_size_ = 0;
      t->current_status_ = 0;
      const std::size_t sp = line.find(' ');
      if (sp != std::string_view::npos) {
        std::string_view rest = line.substr(sp + 1);
        const std::size_t sp2 = rest.find(' ');
        const std::string_view code = rest.substr(0, std::min(sp2, rest.size()));
        (void)std::from_chars(code.data(), code.data() + code.size(), t->current_status_);
        if (sp2 != std::string_view::npos)
          t->response_.reason = std::string(trim(rest.substr(sp2)));
      }
      return bytes;
    }
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      // An obsolete folded continuation line.
      auto& fields = t->response_.headers.fields_;
      if (!fields.empty()) {
        fields.back().second += ' ';
        fields.back().second += trim(line);
      }
      return bytes;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bytes;  // the blank line ending the headers
    const std::string_view name = trim(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    t->response_.headers.add(std::string(name), std::string(value));
    if (iequals(name, "Content-Length") && t->request_.method != "HEAD") {
      std::size_t len = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), len);
      const bool redirect_followed =
          t->request_.follow_redirects && t->current_status_ >= 300 && t->current_status_ < 400;
      if (ec == std::errc() && !redirect_followed) {
        t->expected_size_ = len;
        if (t->warn_size_ != 0 && len > t->warn_size_) t->response_.size_warning = true;
        if (t->max_size_ != 0 && len > t->max_size_) {
          t->too_large_ = true;
          return 0;  // CURLE_WRITE_ERROR: abandoned at the headers
        }
      }
    }
    return bytes;
  } catch (...) {
    return 0;
  }
}

void Transfer::finish(CURLcode rc) noexcept {
  CURL* e = easy_;
  Response& r = response_;
  try {
    r.status = static_cast<int>(info_long(e, CURLINFO_RESPONSE_CODE));
    r.http_version = http_version_name(info_long(e, CURLINFO_HTTP_VERSION));
    r.url = info_str(e, CURLINFO_EFFECTIVE_URL);
    r.redirect_url = info_str(e, CURLINFO_REDIRECT_URL);
    r.redirect_count = static_cast<int>(info_long(e, CURLINFO_REDIRECT_COUNT));
    r.ip = info_str(e, CURLINFO_PRIMARY_IP);
    r.port = static_cast<int>(info_long(e, CURLINFO_PRIMARY_PORT));
    r.new_connections = info_long(e, CURLINFO_NUM_CONNECTS);
    r.header_bytes = static_cast<std::uint64_t>(info_long(e, CURLINFO_HEADER_SIZE));
    curl_off_t dl = 0;
    if (curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &dl) == CURLE_OK && dl > 0) {
      r.bytes_downloaded = static_cast<std::uint64_t>(dl);
    }
    Timing& tm = r.timing;
    tm.name_lookup = info_us(e, CURLINFO_NAMELOOKUP_TIME_T);
    tm.connect = info_us(e, CURLINFO_CONNECT_TIME_T);
    tm.tls = info_us(e, CURLINFO_APPCONNECT_TIME_T);
    tm.pretransfer = info_us(e, CURLINFO_PRETRANSFER_TIME_T);
    tm.first_byte = info_us(e, CURLINFO_STARTTRANSFER_TIME_T);
    tm.total = info_us(e, CURLINFO_TOTAL_TIME_T);
    tm.redirect = info_us(e, CURLINFO_REDIRECT_TIME_T);
    tm.latency = std::max(tm.first_byte - tm.pretransfer, std::chrono::microseconds(0));
    ClientStats& st = core_->stats;
    st.connections_opened += static_cast<std::uint64_t>(std::max(r.new_connections, 0L));
    st.bytes_downloaded += r.bytes_downloaded;
    if (rc == CURLE_PARTIAL_FILE && !request_.fail_on_dataloss) {
      r.dataloss = true;
      ++st.completed;
    } else if (rc != CURLE_OK) {
      error_ = error_for(rc);
      ++st.failed;
    } else {
      ++st.completed;
    }
  } catch (...) {
    error_ = std::current_exception();
  }
}

std::exception_ptr Transfer::error_for(CURLcode rc) const {
  const std::string what = errbuf_[0] != '\0' ? std::string(errbuf_) : curl_easy_strerror(rc);
  const std::string msg = what + " (" + request_.method + " " + request_.url + ")";
  const int code = static_cast<int>(rc);
  const int os_errno = static_cast<int>(info_long(easy_, CURLINFO_OS_ERRNO));
  if (too_large_ && (rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED)) {
    const std::string size_msg =
        (expected_size_ > max_size_
             ? "Content-Length " + std::to_string(expected_size_)
             : "the body (" + std::to_string(response_.body.size()) + " bytes so far)") +
        " exceeds max_size " + std::to_string(max_size_) + " (" + request_.method + " " +
        request_.url + ")";
    return std::make_exception_ptr(ResponseTooLarge(
        code, size_msg, max_size_, expected_size_ > max_size_ ? expected_size_ : 0));
  }
  if (is_tls_error(rc)) return std::make_exception_ptr(SSLError(msg));
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return std::make_exception_ptr(TimeoutError(msg));
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return std::make_exception_ptr(DNSLookupError(code, msg));
    case CURLE_COULDNT_CONNECT:
      return connection_error(os_errno, msg);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return connection_error(os_errno, msg);
    case CURLE_GOT_NOTHING:
      // Python's http.client: RemoteDisconnected, a ConnectionResetError.
      return std::make_exception_ptr(ConnectionResetError(0, msg));
    case CURLE_PARTIAL_FILE:
      return std::make_exception_ptr(TruncatedResponse(code, msg, response_.body.size()));
    case CURLE_TOO_MANY_REDIRECTS:
      return std::make_exception_ptr(TooManyRedirects(code, msg));
    default:
      return std::make_exception_ptr(DownloadError(code, msg));
  }
}

}  // namespace detail

// ---- HttpClient ---------------------------------------------------------------------------------

HttpClient::HttpClient(aio::Loop& loop, ClientOptions options)
    : core_(std::make_shared<detail::ClientCore>(loop, std::move(options))) {
  core_->start_guard();
}

HttpClient::HttpClient(ClientOptions options)
    : HttpClient(aio::get_running_loop(), std::move(options)) {}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (core_) core_->close(false);
}

bool HttpClient::closed() const noexcept { return core_->closed(); }
std::size_t HttpClient::in_flight() const noexcept { return core_->in_flight(); }
ClientStats HttpClient::stats() const noexcept { return core_->stats; }
const ClientOptions& HttpClient::options() const noexcept { return core_->options(); }

namespace detail {
namespace {

// perform(core, request): the fetch coroutine. It shares the core (not the HttpClient: a task
// created now may first run after the client is gone — it then meets a closed core), so the
// transfer's memory stays valid whatever happens to the client.
aio::Task<Response> perform(std::shared_ptr<ClientCore> core, Request request) {
  Transfer t(std::move(core), std::move(request));
  co_await aio::detail::by_ref(t);
  co_return t.take_response();
}

}  // namespace
}  // namespace detail

aio::Task<Response> HttpClient::fetch(Request request) {
  return detail::perform(core_, std::move(request));
}

aio::Task<Response> HttpClient::fetch(std::string url) {
  Request request;
  request.url = std::move(url);
  return fetch(std::move(request));
}

std::vector<std::string> HttpClient::cookies() const {
  std::vector<std::string> out;
  if (!core_->options().cookies || core_->closed()) return out;
  CURL* e = curl_easy_init();
  if (e == nullptr) return out;
  curl_easy_setopt(e, CURLOPT_SHARE, core_->share());  // the share's cookies are the handle's
  curl_slist* list = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_COOKIELIST, &list) == CURLE_OK) {
    for (curl_slist* l = list; l != nullptr; l = l->next) out.emplace_back(l->data);
    curl_slist_free_all(list);
  }
  curl_easy_cleanup(e);
  return out;
}

}  // namespace concur::crawl
