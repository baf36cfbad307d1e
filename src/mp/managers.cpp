// The Manager's server and clients (see include/concur/mp/managers.hpp).
//
// The server is a registered task run in a daemonic child: one thread, a poll loop (mp::wait) over
// its clients' Connections and its listening socket (in the abstract namespace: no file to remove,
// gone with the process), objects kept as serialized bytes (it never needs K, V or T). Each
// request is handled before the next is read, which is what makes every operation atomic. A queue
// request that cannot complete yet (a get on an empty queue, a put on a full one, a join) is
// parked, not answered: its client keeps waiting, and the server answers it once a later request
// lets it complete, at its deadline, or drops it when the client hangs up.
#include "concur/mp/managers.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <variant>

#include "../base/this_pid.hpp"

namespace concur::mp {

namespace detail {

namespace {

// Dict keeps insertion order (Python's dict) with O(1) lookups.
struct Dict {
  std::list<std::pair<std::string, std::string>> items;
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index;

  std::string* find(const std::string& key) {
    const auto it = index.find(key);
    return it == index.end() ? nullptr : &it->second->second;
  }
  void set(const std::string& key, std::string value) {
    if (std::string* v = find(key)) {
      *v = std::move(value);
      return;
    }
    items.emplace_back(key, std::move(value));
    index.emplace(key, std::prev(items.end()));
  }
  bool erase(const std::string& key, std::string* out) {
    const auto it = index.find(key);
    if (it == index.end()) return false;
    if (out != nullptr) *out = std::move(it->second->second);
    items.erase(it->second);
    index.erase(it);
    return true;
  }
};

using List = std::vector<std::string>;

// SharedQueue is a queue.Queue: the items, the unfinished-task count of task_done / join, and
// Python 3.13's shutdown.
struct SharedQueue {
  std::deque<std::string> items;
  std::size_t maxsize = 0;  // 0: unbounded
  std::uint64_t unfinished = 0;
  bool shut = false;
  [[nodiscard]] bool full() const noexcept { return maxsize != 0 && items.size() >= maxsize; }
};

using Clock = std::chrono::steady_clock;

// Waiter is a parked queue request: its client waits on `conn` for the answer. The connection is
// polled only for a hang-up meanwhile (a waiting client sends nothing).
struct Waiter {
  Connection* conn = nullptr;
  ManagerRequest req;
  Clock::time_point deadline = Clock::time_point::max();  // max(): none
};

bool is_queue_op(ManagerOp op) noexcept {
  switch (op) {
    case ManagerOp::queue_new:
    case ManagerOp::queue_put:
    case ManagerOp::queue_get:
    case ManagerOp::queue_qsize:
    case ManagerOp::queue_full:
    case ManagerOp::queue_task_done:
    case ManagerOp::queue_join:
    case ManagerOp::queue_shutdown:
      return true;
    default:
      return false;
  }
}

// try_complete(q, req, resp): a get, put or join that can complete now does (filling resp);
// false when it must wait.
bool try_complete(SharedQueue& q, ManagerRequest& req, ManagerResponse& resp) {
  switch (req.op) {
    case ManagerOp::queue_get:
      if (!q.items.empty()) {
        resp.value = std::move(q.items.front());
        q.items.pop_front();
        return true;
      }
      if (!q.shut) return false;
      resp.status = ManagerStatus::shut_down;
      return true;
    case ManagerOp::queue_put:
      if (q.shut) {
        resp.status = ManagerStatus::shut_down;
        return true;
      }
      if (q.full()) return false;
      q.items.push_back(std::move(req.a));
      ++q.unfinished;
      return true;
    case ManagerOp::queue_join:
      if (q.unfinished != 0) return false;
      resp.n = 1;
      return true;
    default:
      return true;
  }
}

// time_out(req, resp): the answer of a get, put or join whose wait ended unfulfilled.
void time_out(const ManagerRequest& req, ManagerResponse& resp) {
  if (req.op == ManagerOp::queue_get) resp.status = ManagerStatus::empty;
  if (req.op == ManagerOp::queue_put) resp.status = ManagerStatus::full;
  resp.n = 0;  // join: not done in time
}

struct Failure {
  ManagerStatus status;
  std::string message;
};

// normalize(i, size, op) is Python's index rule: negative counts from the end; out of range →
// IndexError.
std::size_t normalize(std::int64_t i, std::size_t size, const char* what) {
  const auto n = static_cast<std::int64_t>(size);
  if (i < 0) i += n;
  if (i < 0 || i >= n)
    throw Failure{ManagerStatus::index_error, std::string(what) + " out of range"};
  return static_cast<std::size_t>(i);
}

// add_number(bytes, kind, i, x) adds to a number stored as cereal binary bytes (the raw object
// representation, native byte order) and returns the new bytes.
std::string add_number(const std::string* old, const std::string& kind, std::int64_t i, double x) {
  const std::size_t size =
      kind.size() > 1 ? static_cast<std::size_t>(std::stoul(kind.substr(1))) : 0;
  if (size == 0 || size > 8 || (old != nullptr && old->size() != size))
    throw Failure{ManagerStatus::value_error,
                  "increment: the stored value is not a number of the requested type"};
  std::string out(size, '\0');
  if (kind[0] == 'f') {
    if (size == sizeof(double)) {
      double v = 0;
      if (old != nullptr) std::memcpy(&v, old->data(), size);
      v += x;
      std::memcpy(out.data(), &v, size);
    } else {
      float v = 0;
      if (old != nullptr) std::memcpy(&v, old->data(), size);
      v += static_cast<float>(x);
      std::memcpy(out.data(), &v, size);
    }
    return out;
  }
  // Integers: little-endian two's complement of `size` bytes; wraps as the C++ type would.
  std::uint64_t v = 0;
  if (old != nullptr) std::memcpy(&v, old->data(), size);
  v += static_cast<std::uint64_t>(i);
  std::memcpy(out.data(), &v, size);
  return out;
}

class Server {
 public:
  // Server(control, listener): listener is the listening socket, held in a Connection only to be
  // polled and closed.
  Server(Connection control, Connection listener)
      : listener_(std::move(listener)), reserve_(take_reserve()) {
    clients_.push_back(std::move(control));
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() {
    if (reserve_ >= 0) ::close(reserve_);
  }

  void run() {
    for (;;) {
      std::vector<Connection*> ptrs;
      for (Connection& c : clients_)
        if (!c.closed()) ptrs.push_back(&c);
      // Last: hang-ups seen in the same wait free their descriptors first.
      if (!accept_paused_) ptrs.push_back(&listener_);
      Clock::time_point next = Clock::time_point::max();
      for (const Waiter& w : waiters_) next = std::min(next, w.deadline);
      const std::vector<Connection*> ready =
          wait_until(ptrs, next == Clock::time_point::max() ? concur::detail::Deadline::infinite()
                                                            : concur::detail::Deadline::at(next));
      // A parked client that is readable has hung up: its request is dropped first, so that
      // nothing (an item) goes to it.
      for (Connection* c : ready)
        if (parked(*c)) hang_up(*c);
      for (Connection* c : ready) {
        if (c == &listener_) {
          accept_client();
          continue;
        }
        if (c->closed()) continue;
        if (!serve(*c)) return;  // the Manager asked to stop, or is gone
      }
      expire(Clock::now());
      // Forget clients that hung up (the control connection is never dropped here; a parked
      // one is never closed while it waits).
      const Connection* control = &clients_.front();
      if (clients_.remove_if([&](const Connection& c) { return &c != control && c.closed(); }) > 0)
        accept_paused_ = false;
    }
  }

 private:
  // serve(c) answers one request; false when the server must stop.
  bool serve(Connection& c) {
    const bool control = &c == &clients_.front();
    ManagerRequest req;
    try {
      req = c.recv<ManagerRequest>();
    } catch (const EOFError&) {
      c.close();
      return !control;
    } catch (const Error&) {
      c.close();
      return !control;
    }
    ManagerResponse resp;
    bool stop = false;
    bool answer_now = true;
    const bool queue_op = is_queue_op(req.op);
    try {
      if (req.op == ManagerOp::shutdown) {
        if (!control)
          throw Failure{ManagerStatus::error, "only the Manager may shut its server down"};
        stop = true;
      } else if (queue_op) {
        answer_now = handle_queue(c, req, resp);
      } else {
        handle(req, resp);
      }
    } catch (const Failure& f) {
      resp = ManagerResponse{};
      resp.status = f.status;
      resp.message = f.message;
    } catch (const std::exception& e) {
      resp = ManagerResponse{};
      resp.status = ManagerStatus::error;
      resp.message = e.what();
    }
    if (answer_now) answer(c, resp);
    if (queue_op) settle(req.id);
    return !stop;
  }

  // take_reserve() is a descriptor to give up when accept() finds none left (-1 if none).
  int take_reserve() const noexcept { return ::fcntl(listener_.fileno(), F_DUPFD_CLOEXEC, 0); }

  // accept_client() takes one new connection from the listening socket (non-blocking; the next
  // poll reports any other). A process of another user is turned away. Out of descriptors, the
  // server spends its reserve one on taking the connection, to answer it with a refusal and close
  // it: the client's call fails instead of waiting for an accept that cannot come. Without a
  // reserve it stops polling the listener (which would stay readable) until a client hangs up.
  void accept_client() {
    if (reserve_ < 0) reserve_ = take_reserve();
    int fd = ::accept4(listener_.fileno(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
      if (reserve_ < 0) {
        accept_paused_ = true;
        return;
      }
      ::close(reserve_);
      fd = ::accept4(listener_.fileno(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        Connection refused(fd);
        ManagerResponse resp;
        resp.status = ManagerStatus::refused;
        resp.message = "the server has no descriptor left for a new connection";
        (void)answer(refused, resp);
      }
      reserve_ = take_reserve();
      return;
    }
    if (fd < 0) return;  // EAGAIN: the client gave up; EINTR, ECONNABORTED: the next poll
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != ::geteuid()) {
      ::close(fd);
      return;
    }
    clients_.emplace_back(fd);
  }

  // answer(c, resp): false when the client is gone (its connection is then closed).
  static bool answer(Connection& c, const ManagerResponse& resp) {
    try {
      c.send(resp);
      return true;
    } catch (const Error&) {
      c.close();
      return false;
    }
  }

  bool parked(const Connection& c) const {
    return std::any_of(waiters_.begin(), waiters_.end(),
                       [&](const Waiter& w) { return w.conn == &c; });
  }
  void hang_up(Connection& c) {
    waiters_.remove_if([&](const Waiter& w) { return w.conn == &c; });
    c.close();
  }
  // expire(now) answers the waiters whose deadline has passed (Empty, Full, or a join not done).
  void expire(Clock::time_point now) {
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->deadline > now) {
        ++it;
        continue;
      }
      ManagerResponse resp;
      time_out(it->req, resp);
      answer(*it->conn, resp);
      it = waiters_.erase(it);
    }
  }
  // settle(id) completes, in the order they came, the waiters of queue `id` that can complete
  // now; until none can (a put let in may complete a get, which frees room for another put).
  void settle(std::uint64_t id) {
    const auto found = objects_.find(id);
    if (found == objects_.end() || !std::holds_alternative<SharedQueue>(found->second)) return;
    SharedQueue& q = std::get<SharedQueue>(found->second);
    for (bool progress = true; progress;) {
      progress = false;
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        ManagerResponse resp;
        if (it->req.id != id || !try_complete(q, it->req, resp)) {
          ++it;
          continue;
        }
        // A getter that died since the poll cannot take its item: it goes back to the front.
        if (!answer(*it->conn, resp) && it->req.op == ManagerOp::queue_get &&
            resp.status == ManagerStatus::ok)
          q.items.push_front(std::move(resp.value));
        it = waiters_.erase(it);
        progress = true;
      }
    }
  }

  SharedQueue& queue(std::uint64_t id) {
    const auto it = objects_.find(id);
    if (it == objects_.end() || !std::holds_alternative<SharedQueue>(it->second))
      throw Failure{ManagerStatus::error, "no such queue"};
    return std::get<SharedQueue>(it->second);
  }

  // handle_queue(c, req, resp): a queue request; false when it was parked (answered later).
  bool handle_queue(Connection& c, ManagerRequest& req, ManagerResponse& resp) {
    if (req.op == ManagerOp::queue_new) {
      SharedQueue q;
      q.maxsize = req.i > 0 ? static_cast<std::size_t>(req.i) : 0;
      objects_.emplace(++last_id_, std::move(q));
      resp.n = static_cast<std::int64_t>(last_id_);
      return true;
    }
    SharedQueue& q = queue(req.id);
    switch (req.op) {
      case ManagerOp::queue_qsize:
        resp.n = static_cast<std::int64_t>(q.items.size());
        return true;
      case ManagerOp::queue_full:
        resp.n = q.full() ? 1 : 0;
        return true;
      case ManagerOp::queue_task_done:
        if (q.unfinished == 0)
          throw Failure{ManagerStatus::value_error, "task_done() called too many times"};
        --q.unfinished;
        return true;
      case ManagerOp::queue_shutdown:
        q.shut = true;
        if (req.i != 0) {
          const std::size_t dropped = q.items.size();
          q.items.clear();
          q.unfinished -= std::min<std::uint64_t>(q.unfinished, dropped);
        }
        return true;
      default:
        break;
    }
    // get, put, join: at once when they can, else they wait (unless told not to).
    // (Waiters of this queue came first: settle() left none that could complete now.)
    if (try_complete(q, req, resp)) return true;
    if (req.x == 0) {  // not at all
      time_out(req, resp);
      return true;
    }
    Waiter w;
    w.conn = &c;
    if (req.x > 0) {
      const auto wait = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(std::min(req.x, 1e9)));
      w.deadline = Clock::now() + wait;
    }
    w.req = std::move(req);
    waiters_.push_back(std::move(w));
    return false;
  }

  Dict& dict(std::uint64_t id) {
    const auto it = objects_.find(id);
    if (it == objects_.end() || !std::holds_alternative<Dict>(it->second))
      throw Failure{ManagerStatus::error, "no such dict"};
    return std::get<Dict>(it->second);
  }
  List& list(std::uint64_t id) {
    const auto it = objects_.find(id);
    if (it == objects_.end() || !std::holds_alternative<List>(it->second))
      throw Failure{ManagerStatus::error, "no such list"};
    return std::get<List>(it->second);
  }

  void handle(ManagerRequest& req, ManagerResponse& resp) {
    switch (req.op) {
      case ManagerOp::dict_new:
        objects_.emplace(++last_id_, Dict{});
        resp.n = static_cast<std::int64_t>(last_id_);
        return;
      case ManagerOp::list_new:
        objects_.emplace(++last_id_, List{});
        resp.n = static_cast<std::int64_t>(last_id_);
        return;
      case ManagerOp::dict_get: {
        const std::string* v = dict(req.id).find(req.a);
        if (v == nullptr) throw Failure{ManagerStatus::key_error, "key not found"};
        resp.value = *v;
        return;
      }
      case ManagerOp::dict_get_or: {
        const std::string* v = dict(req.id).find(req.a);
        resp.n = v != nullptr ? 1 : 0;
        if (v != nullptr) resp.value = *v;
        return;
      }
      case ManagerOp::dict_set: {
        Dict& d = dict(req.id);
        if (req.many.empty()) {
          d.set(req.a, std::move(req.b));
        } else {
          for (std::size_t i = 0; i + 1 < req.many.size(); i += 2)
            d.set(req.many[i], std::move(req.many[i + 1]));
        }
        return;
      }
      case ManagerOp::dict_del:
        if (!dict(req.id).erase(req.a, nullptr))
          throw Failure{ManagerStatus::key_error, "key not found"};
        return;
      case ManagerOp::dict_pop:
        if (!dict(req.id).erase(req.a, &resp.value))
          throw Failure{ManagerStatus::key_error, "key not found"};
        return;
      case ManagerOp::dict_contains:
        resp.n = dict(req.id).find(req.a) != nullptr ? 1 : 0;
        return;
      case ManagerOp::dict_len:
        resp.n = static_cast<std::int64_t>(dict(req.id).items.size());
        return;
      case ManagerOp::dict_keys:
        for (const auto& [k, v] : dict(req.id).items) resp.values.push_back(k);
        return;
      case ManagerOp::dict_values:
        for (const auto& [k, v] : dict(req.id).items) resp.values.push_back(v);
        return;
      case ManagerOp::dict_items:
        for (const auto& [k, v] : dict(req.id).items) {
          resp.values.push_back(k);
          resp.values.push_back(v);
        }
        return;
      case ManagerOp::dict_clear:
        dict(req.id) = Dict{};
        return;
      case ManagerOp::dict_setdefault: {
        Dict& d = dict(req.id);
        if (const std::string* v = d.find(req.a)) {
          resp.value = *v;
        } else {
          resp.value = req.b;
          d.set(req.a, std::move(req.b));
        }
        return;
      }
      case ManagerOp::dict_increment: {
        Dict& d = dict(req.id);
        std::string next = add_number(d.find(req.a), req.b, req.i, req.x);
        resp.value = next;
        d.set(req.a, std::move(next));
        return;
      }
      case ManagerOp::list_append:
        list(req.id).push_back(std::move(req.a));
        return;
      case ManagerOp::list_extend: {
        List& l = list(req.id);
        for (std::string& v : req.many) l.push_back(std::move(v));
        return;
      }
      case ManagerOp::list_get: {
        List& l = list(req.id);
        resp.value = l[normalize(req.i, l.size(), "list index")];
        return;
      }
      case ManagerOp::list_set: {
        List& l = list(req.id);
        l[normalize(req.i, l.size(), "list assignment index")] = std::move(req.a);
        return;
      }
      case ManagerOp::list_pop: {
        List& l = list(req.id);
        if (l.empty()) throw Failure{ManagerStatus::index_error, "pop from empty list"};
        const std::size_t at = normalize(req.i, l.size(), "pop index");
        resp.value = std::move(l[at]);
        l.erase(l.begin() + static_cast<std::ptrdiff_t>(at));
        return;
      }
      case ManagerOp::list_insert: {
        List& l = list(req.id);
        const auto n = static_cast<std::int64_t>(l.size());
        std::int64_t at = req.i < 0 ? req.i + n : req.i;
        at = std::clamp<std::int64_t>(at, 0, n);
        l.insert(l.begin() + static_cast<std::ptrdiff_t>(at), std::move(req.a));
        return;
      }
      case ManagerOp::list_len:
        resp.n = static_cast<std::int64_t>(list(req.id).size());
        return;
      case ManagerOp::list_items:
        resp.values = list(req.id);
        return;
      case ManagerOp::list_clear:
        list(req.id).clear();
        return;
      case ManagerOp::list_remove: {
        List& l = list(req.id);
        const auto it = std::find(l.begin(), l.end(), req.a);
        if (it == l.end())
          throw Failure{ManagerStatus::value_error, "list.remove(x): x not in list"};
        l.erase(it);
        return;
      }
      case ManagerOp::list_index: {
        List& l = list(req.id);
        const auto it = std::find(l.begin(), l.end(), req.a);
        if (it == l.end()) throw Failure{ManagerStatus::value_error, "value is not in list"};
        resp.n = it - l.begin();
        return;
      }
      case ManagerOp::list_count: {
        List& l = list(req.id);
        resp.n = std::count(l.begin(), l.end(), req.a);
        return;
      }
      case ManagerOp::shutdown:
      default:  // the queue's: handle_queue()
        return;
    }
    throw Failure{ManagerStatus::error, "unknown operation"};
  }

  Connection listener_;
  int reserve_;                 // a descriptor kept to be closed when accept() finds none left
  bool accept_paused_ = false;  // out of descriptors with no reserve: listener not polled
  // The clients; the first is the Manager's control connection. A list: a Waiter's pointer stays
  // valid while others come and go.
  std::list<Connection> clients_;
  std::unordered_map<std::uint64_t, std::variant<Dict, List, SharedQueue>> objects_;
  std::list<Waiter> waiters_;  // in the order they came
  std::uint64_t last_id_ = 0;
};

// abstract_address(fd, address): sockaddr_un for `address` (abstract: its first byte is NUL) and
// its length.
socklen_t abstract_address(const std::string& address, sockaddr_un& sa) {
  sa = sockaddr_un{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, address.data(), address.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
}

// listen_abstract(address) is a listening socket (non-blocking) at a new random name in the
// abstract namespace, written to `address`; throws OSError.
Connection listen_abstract(std::string& address) {
  std::random_device random;
  for (int attempt = 0;; ++attempt) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw OSError(errno, "manager: socket");
    Connection listener(fd);
    const std::uint64_t name = (std::uint64_t{random()} << 32) | random();
    address = std::string(1, '\0') + "concur-manager-" + std::to_string(::getpid()) + "-" +
              std::to_string(name);
    sockaddr_un sa{};
    const socklen_t len = abstract_address(address, sa);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
      if (errno == EADDRINUSE && attempt < 8) continue;
      throw OSError(errno, "manager: bind");
    }
    if (::listen(fd, SOMAXCONN) != 0) throw OSError(errno, "manager: listen");
    return listener;
  }
}

// manager_serve(control) is the server process's task. It listens, tells the Manager where (the
// first message on control), and serves. Every client and every proxy in flight to another
// process holds a connection here: the server takes the descriptors it may.
void manager_serve(Connection control) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
  }
  ManagerResponse ready;
  Connection listener;
  try {
    listener = listen_abstract(ready.value);
  } catch (const OSError& e) {
    ready.status = ManagerStatus::error;
    ready.n = e.errno_code();
    ready.message = "the manager's server cannot listen";
    control.send(ready);
    return;
  }
  control.send(ready);
  Server(std::move(control), std::move(listener)).run();
}

// dial(address) is a new connection to the server listening at `address`, which must run as this
// process's user: once the server is gone, another user's process may have bound the name.
int dial(const std::string& address) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw OSError(errno, "manager: socket");
  sockaddr_un sa{};
  const socklen_t len = abstract_address(address, sa);
  while (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EISCONN) break;  // an interrupted connect that went through
    ::close(fd);
    if (err == ECONNREFUSED || err == ENOENT) throw InvalidStateError("the manager has shut down");
    throw OSError(err, "manager: connect");
  }
  ucred peer{};
  socklen_t peer_len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 || peer.uid != ::geteuid()) {
    ::close(fd);
    throw InvalidStateError("the manager has shut down (another user's process has its address)");
  }
  return fd;
}

}  // namespace

}  // namespace detail

CONCUR_TASK_NAMED("concur::mp::Manager", &detail::manager_serve);

namespace detail {

namespace {

// checked(r): r, or the exception the server reported.
ManagerResponse checked(ManagerResponse r) {
  switch (r.status) {
    case ManagerStatus::ok:
      return r;
    case ManagerStatus::key_error:
      throw KeyError(r.message);
    case ManagerStatus::index_error:
      throw IndexError(r.message);
    case ManagerStatus::value_error:
      throw ValueError(r.message);
    case ManagerStatus::empty:
      throw Empty();
    case ManagerStatus::full:
      throw Full();
    case ManagerStatus::shut_down:
      throw ShutDown();
    case ManagerStatus::refused:
      throw RuntimeError("manager: a new connection was refused: " + r.message);
    case ManagerStatus::error:
      break;
  }
  throw RuntimeError("manager: " + r.message);
}

// exchange(conn, request): send the request on conn, receive the answer (not checked yet). A
// server that hung up may have answered first (a connection it refused): that answer is read.
ManagerResponse exchange(Connection& conn, const ManagerRequest& request) {
  try {
    try {
      conn.send(request);
    } catch (const BrokenPipeError&) {  // the peer is gone: the read below cannot block
      return conn.recv<ManagerResponse>();
    } catch (const ConnectionResetError&) {
      return conn.recv<ManagerResponse>();
    }
    return conn.recv<ManagerResponse>();
  } catch (const EOFError&) {
    throw InvalidStateError("the manager has shut down");
  } catch (const OSError&) {
    throw InvalidStateError("the manager has shut down");
  }
}

}  // namespace

ManagerClient::ManagerClient(Connection conn, std::string address)
    : address_(std::move(address)), conn_(std::move(conn)), pid_(concur::detail::this_pid()) {
  if (!valid_address(address_)) throw ValueError("not a Manager's address");
}

bool ManagerClient::valid_address(const std::string& a) noexcept {
  return a.size() > 1 && a.size() <= sizeof(sockaddr_un::sun_path) && a[0] == '\0';
}

void ManagerClient::own_connection_locked() {
  if (pid_ != concur::detail::this_pid()) {
    // A child made by fork: the parent may be in a call on conn_ or waiting on a spare right now.
    // Only this process's copies are closed.
    conn_.close();
    spare_.clear();
    pid_ = concur::detail::this_pid();
  }
  if (conn_.closed()) conn_ = Connection(dial(address_));
}

ManagerResponse ManagerClient::call(const ManagerRequest& request) {
  ManagerResponse r;
  {
    std::scoped_lock lock(mu_);
    own_connection_locked();
    r = exchange(conn_, request);
    if (r.status == ManagerStatus::refused) conn_.close();  // the server closed it
  }
  return checked(std::move(r));
}

ManagerResponse ManagerClient::call_waiting(const ManagerRequest& request) {
  Connection conn;
  {
    std::scoped_lock lock(mu_);
    own_connection_locked();
    if (!spare_.empty()) {
      conn = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  if (conn.closed()) conn = Connection(dial(address_));
  ManagerResponse r = exchange(conn, request);  // a failed connection is dropped here
  {
    std::scoped_lock lock(mu_);
    if (pid_ == concur::detail::this_pid() && r.status != ManagerStatus::refused)
      spare_.push_back(std::move(conn));
  }
  return checked(std::move(r));
}

int ManagerClient::connect() const { return dial(address_); }

}  // namespace detail

namespace {

ProcessOptions server_options(ProcessOptions options) {
  if (options.name.empty()) options.name = "SyncManager";
  options.daemon = true;
  return options;
}

}  // namespace

Manager::Manager(ProcessOptions options) : Manager(std::move(options), Pipe()) {}

Manager::Manager(ProcessOptions options, std::pair<Connection, Connection> pipe)
    : server_(server_options(std::move(options)), &detail::manager_serve, std::move(pipe.second)),
      owner_(concur::detail::this_pid()) {
  pipe.second.close();  // the server has its own copy (dup'ed by the Process)
  server_.start();
  // The server's first message is where it listens, or why it cannot.
  Connection control = std::move(pipe.first);
  detail::ManagerResponse ready;
  try {
    ready = control.recv<detail::ManagerResponse>();
  } catch (const Error&) {
    control.close();  // a server still running sees end of file and exits
    server_.join();
    throw RuntimeError("manager: the server process ended before it was ready (exit code " +
                       std::to_string(server_.exitcode().value_or(-1)) + ")");
  }
  if (ready.status != detail::ManagerStatus::ok) {
    server_.join();
    throw OSError(static_cast<int>(ready.n), ready.message);
  }
  client_ = std::make_shared<detail::ManagerClient>(std::move(control), std::move(ready.value));
}

Manager::~Manager() {
  try {
    shutdown();
  } catch (...) {
  }
}

void Manager::shutdown() {
  if (concur::detail::this_pid() != owner_)
    return;  // a forked copy: the server is its parent's to stop
  if (stopped_) return;
  stopped_ = true;
  try {
    detail::ManagerRequest stop;
    stop.op = detail::ManagerOp::shutdown;
    (void)client_->call(stop);
  } catch (const Error&) {
  }
  if (!server_.join(std::chrono::seconds(10))) {
    server_.kill();
    server_.join();
  }
}

std::pair<std::shared_ptr<detail::ManagerClient>, std::uint64_t> Manager::make(detail::ManagerOp op,
                                                                               std::int64_t i) {
  if (stopped_) throw InvalidStateError("the manager has shut down");
  detail::ManagerRequest r;
  r.op = op;
  r.i = i;
  return {client_, static_cast<std::uint64_t>(client_->call(r).n)};
}

}  // namespace concur::mp
