// concur/mp/managers.hpp — Manager (multiprocessing.Manager / SyncManager) and its shared dict,
// list and queue: DictProxy<K, V>, ListProxy<T>, QueueProxy<T>.
//
//   mp::Manager manager;                       // starts the server process
//   auto d = manager.dict<std::string, int>(); // a dict living in the server
//   mp::Process p(add_data, d, "bobby1", 22);  // the proxy travels to the child
//   auto q = manager.Queue<std::string>(10);   // Manager().Queue(10): a queue.Queue in the server
//   pool.submit(producer, q);                  // proxies reach process pool tasks too
//
// The objects live in one server process; a proxy sends each operation to it over its own
// Connection and waits for the answer, so every single operation is atomic across all processes
// (it runs alone in the single-threaded server). A sequence of operations is not: `d.set(k,
// d.get(k) + 1)` can lose updates between processes exactly as Python's `d[k] += 1` — guard it
// with an mp::Lock, or use the atomic read-modify-write members (dict `increment`, `setdefault`,
// `pop`; list `pop`). Keys and values are serialized (serialize.hpp); keys compare by their
// serialized bytes, so K must serialize equal values to equal bytes (numbers, strings, tuples and
// containers of them do).
// A queue's blocking calls (get on an empty queue, put on a full one, join) wait in the server,
// which answers when they can complete, when their timeout passes, or never if the client hangs
// up; waiters are served first come, first served, so an item goes to the longest waiting get. A
// thread blocked there holds a connection of its own: the proxy's other users (threads of the
// same process) go on meanwhile.
// A proxy passed to a child process (a Process or process pool task argument, or sent over a
// Connection) opens a new connection to the server for the child; so does a proxy a forked child
// finds in its memory (a fork-started Process's run() member, a raw fork()), at its first call.
// Those connections are made where the server listens, in Linux's abstract socket namespace: its
// name is visible to every process, so the server accepts only processes of its own user and a
// proxy talks only to a server of its own user (SO_PEERCRED) — what Python's authkey is for; any
// process of that user in the same network namespace can reach the objects. Objects live until the
// Manager shuts down (Python frees them when the last proxy goes). After shutdown, proxy operations
// throw InvalidStateError. Thread-safety: a proxy may be used from several threads (its requests
// are serialized, but for a queue's blocking calls, see above); the Manager object by one thread.
// Errors: KeyError, IndexError, ValueError, and the queue's Empty, Full, ShutDown, as Python.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/mp/connection.hpp"
#include "concur/mp/process.hpp"
#include "concur/mp/serialize.hpp"

namespace concur::mp {

// KeyError: a dict has no such key (Python's KeyError). what() is "KeyError: <detail>".
class CONCUR_EXPORT KeyError : public Error {
 public:
  explicit KeyError(const std::string& msg) : Error("KeyError: " + msg) {}
};

// IndexError: a list index out of range (Python's IndexError).
class CONCUR_EXPORT IndexError : public Error {
 public:
  explicit IndexError(const std::string& msg) : Error("IndexError: " + msg) {}
};

namespace detail {

// The wire format between proxies and the server.
enum class ManagerOp : std::uint8_t {
  shutdown,
  dict_new,
  dict_get,
  dict_get_or,
  dict_set,
  dict_del,
  dict_pop,
  dict_contains,
  dict_len,
  dict_keys,
  dict_values,
  dict_items,
  dict_clear,
  dict_setdefault,
  dict_increment,
  list_new,
  list_append,
  list_extend,
  list_get,
  list_set,
  list_pop,
  list_insert,
  list_len,
  list_items,
  list_clear,
  list_remove,
  list_index,
  list_count,
  queue_new,  // i: maxsize
  queue_put,  // a: the item; x: seconds to wait when full (< 0: forever, 0: not at all)
  queue_get,  // x: as queue_put, when empty
  queue_qsize,
  queue_full,
  queue_task_done,
  queue_join,      // x: as queue_put; n = 1 when every task was done in time
  queue_shutdown,  // i: immediate
};

struct ManagerRequest {
  ManagerOp op = ManagerOp::dict_len;
  std::uint64_t id = 0;
  std::string a;
  std::string b;
  std::int64_t i = 0;
  double x = 0;
  std::vector<std::string> many;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(op, id, a, b, i, x, many);
  }
};

enum class ManagerStatus : std::uint8_t {
  ok,
  key_error,
  index_error,
  value_error,
  error,
  empty,      // concur::Empty
  full,       // concur::Full
  shut_down,  // concur::ShutDown
  refused,    // a new connection the server could not take (it closes it)
};

struct ManagerResponse {
  ManagerStatus status = ManagerStatus::ok;
  std::string message;
  std::string value;
  std::vector<std::string> values;
  std::int64_t n = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(status, message, value, values, n);
  }
};

// ManagerClient is one connection to the server, shared by copies of a proxy in one process.
// The server also listens at `address` (a socket in Linux's abstract namespace), where new
// connections are made: for a proxy sent to another process, for a blocking queue call, and for
// a process forked with the client in its memory, whose first call replaces the inherited
// connection — the parent may be using it at that moment (Python's proxies reconnect after fork).
// A new connection is used only when the listener runs as this process's user (SO_PEERCRED):
// once the server is gone, anyone may bind its name. A connection the server refused is not used
// again: the next call dials anew. Fork from a thread while another is inside a call on the same
// client, and the child's first call blocks on the lock it inherited held (as with any lock: the
// fork start method refuses multithreaded parents).
class CONCUR_EXPORT ManagerClient {
 public:
  ManagerClient(Connection conn, std::string address);
  // call(request) sends the request and returns the answer; throws KeyError / IndexError /
  // ValueError / Empty / Full / ShutDown as the server reports, InvalidStateError when the manager
  // is gone.
  ManagerResponse call(const ManagerRequest& request);
  // call_waiting(request) is call() on a connection of its own (a spare one, or a new one), for a
  // request the server may answer late (a queue's blocking get, put or join): the threads that
  // share this client are not held up meanwhile.
  ManagerResponse call_waiting(const ManagerRequest& request);
  // connect() opens a new connection to the server (for a proxy going to another process) and
  // returns its descriptor, owned by the caller; InvalidStateError when the manager is gone.
  [[nodiscard]] int connect() const;
  // address() is where the server listens (its first byte is the abstract namespace's NUL).
  [[nodiscard]] const std::string& address() const noexcept { return address_; }
  // valid_address(a) is true for a name in the abstract namespace that fits a sockaddr_un.
  static bool valid_address(const std::string& a) noexcept;

 private:
  // own_connection_locked(), with mu_ held: in a fork child, a connection of its own; after a
  // refusal, a new one.
  void own_connection_locked();

  const std::string address_;
  std::mutex mu_;
  Connection conn_ CONCUR_GUARDED_BY(mu_);
  std::vector<Connection> spare_ CONCUR_GUARDED_BY(mu_);  // for call_waiting
  pid_t pid_ CONCUR_GUARDED_BY(mu_);                      // the process conn_ and spare_ belong to
};

template <class T>
std::string encode_value(const T& value) {
  return dumps(value).bytes;
}

template <class T>
T decode_value(const std::string& bytes) {
  T out{};
  loads(bytes, {}, out);
  return out;
}

// ProxyBase holds what every proxy has: the client and the object's id; it travels to other
// processes as a new connection plus the id.
class ProxyBase {
 public:
  ProxyBase() noexcept = default;
  ProxyBase(std::shared_ptr<ManagerClient> client, std::uint64_t id) noexcept
      : client_(std::move(client)), id_(id) {}

  template <class Archive>
  void save(Archive& ar) const {
    if (!client_) throw PicklingError("an empty proxy cannot be passed to another process");
    save_fresh_fd(ar, [client = client_] { return client->connect(); });
    ar(id_, client_->address());
  }
  template <class Archive>
  void load(Archive& ar) {
    Connection conn(load_fd(ar));
    std::string address;
    ar(id_, address);
    if (!ManagerClient::valid_address(address))
      throw UnpicklingError("a Manager proxy with a malformed server address");
    client_ = std::make_shared<ManagerClient>(std::move(conn), std::move(address));
  }

 protected:
  ManagerResponse call(ManagerOp op, std::string a = {}, std::string b = {}, std::int64_t i = 0,
                       double x = 0) const {
    if (!client_) throw InvalidStateError("the proxy is empty (default constructed)");
    ManagerRequest r;
    r.op = op;
    r.id = id_;
    r.a = std::move(a);
    r.b = std::move(b);
    r.i = i;
    r.x = x;
    return client_->call(r);
  }
  // call_waiting(op, a, x, i): a request the server may answer late (ManagerClient::call_waiting).
  ManagerResponse call_waiting(ManagerOp op, std::string a, double x, std::int64_t i = 0) const {
    if (!client_) throw InvalidStateError("the proxy is empty (default constructed)");
    ManagerRequest r;
    r.op = op;
    r.id = id_;
    r.a = std::move(a);
    r.i = i;
    r.x = x;
    return client_->call_waiting(r);
  }
  ManagerResponse call_many(ManagerOp op, std::vector<std::string> many) const {
    if (!client_) throw InvalidStateError("the proxy is empty (default constructed)");
    ManagerRequest r;
    r.op = op;
    r.id = id_;
    r.many = std::move(many);
    return client_->call(r);
  }

 private:
  std::shared_ptr<ManagerClient> client_;
  std::uint64_t id_ = 0;
};

}  // namespace detail

// DictProxy<K, V> is Manager().dict(): a dict in the manager's server. Insertion order is kept,
// as Python's dict.
template <class K, class V>
class DictProxy : public detail::ProxyBase {
 public:
  // DictProxy() is empty: usable only once assigned from Manager::dict() or loaded in a child.
  DictProxy() noexcept = default;

  // get(key) is the value, or nullopt when absent (dict.get).
  [[nodiscard]] std::optional<V> get(const K& key) const {
    auto r = call(detail::ManagerOp::dict_get_or, detail::encode_value(key));
    if (r.n == 0) return std::nullopt;
    return detail::decode_value<V>(r.value);
  }
  // get(key, fallback) is the value, or fallback when absent.
  [[nodiscard]] V get(const K& key, const V& fallback) const {
    auto v = get(key);
    return v ? *v : fallback;
  }
  // at(key) is d[key]: throws KeyError when absent.
  [[nodiscard]] V at(const K& key) const {
    return detail::decode_value<V>(
        call(detail::ManagerOp::dict_get, detail::encode_value(key)).value);
  }
  // set(key, value) is d[key] = value.
  void set(const K& key, const V& value) {
    call(detail::ManagerOp::dict_set, detail::encode_value(key), detail::encode_value(value));
  }
  // erase(key) is del d[key]: throws KeyError when absent.
  void erase(const K& key) { call(detail::ManagerOp::dict_del, detail::encode_value(key)); }
  // pop(key) removes and returns the value atomically; throws KeyError when absent.
  V pop(const K& key) {
    return detail::decode_value<V>(
        call(detail::ManagerOp::dict_pop, detail::encode_value(key)).value);
  }
  // contains(key) is `key in d`.
  [[nodiscard]] bool contains(const K& key) const {
    return call(detail::ManagerOp::dict_contains, detail::encode_value(key)).n != 0;
  }
  // size() is len(d).
  [[nodiscard]] std::size_t size() const {
    return static_cast<std::size_t>(call(detail::ManagerOp::dict_len).n);
  }
  // keys(), values(), items() are snapshots, in insertion order.
  [[nodiscard]] std::vector<K> keys() const { return decode_all<K>(detail::ManagerOp::dict_keys); }
  [[nodiscard]] std::vector<V> values() const {
    return decode_all<V>(detail::ManagerOp::dict_values);
  }
  [[nodiscard]] std::vector<std::pair<K, V>> items() const {
    auto r = call(detail::ManagerOp::dict_items);
    std::vector<std::pair<K, V>> out;
    out.reserve(r.values.size() / 2);
    for (std::size_t i = 0; i + 1 < r.values.size(); i += 2)
      out.emplace_back(detail::decode_value<K>(r.values[i]),
                       detail::decode_value<V>(r.values[i + 1]));
    return out;
  }
  // copy() is dict(d): a std::map snapshot.
  [[nodiscard]] std::map<K, V> copy() const {
    std::map<K, V> out;
    for (auto& [k, v] : items()) out.emplace(std::move(k), std::move(v));
    return out;
  }
  // clear() removes every item.
  void clear() { call(detail::ManagerOp::dict_clear); }
  // setdefault(key, value) returns the value of key, inserting `value` first when absent
  // (atomic).
  V setdefault(const K& key, const V& value) {
    return detail::decode_value<V>(call(detail::ManagerOp::dict_setdefault,
                                        detail::encode_value(key), detail::encode_value(value))
                                       .value);
  }
  // update(items) sets every pair (one request: atomic as a whole).
  void update(const std::map<K, V>& items) {
    std::vector<std::string> many;
    many.reserve(items.size() * 2);
    for (const auto& [k, v] : items) {
      many.push_back(detail::encode_value(k));
      many.push_back(detail::encode_value(v));
    }
    call_many(detail::ManagerOp::dict_set, std::move(many));
  }
  // increment(key, by) atomically adds `by` to an arithmetic value (absent: starts from 0) and
  // returns the new value: the safe form of Python's non-atomic `d[k] += by`. V must be an
  // integer or floating type.
  V increment(const K& key, V by = V{1}) requires std::is_arithmetic_v<V> {
    const bool floating = std::is_floating_point_v<V>;
    auto r = call(detail::ManagerOp::dict_increment, detail::encode_value(key),
                  std::string(1, floating ? 'f' : (std::is_signed_v<V> ? 'i' : 'u')) +
                      std::to_string(sizeof(V)),
                  floating ? 0 : static_cast<std::int64_t>(by),
                  floating ? static_cast<double>(by) : 0.0);
    return detail::decode_value<V>(r.value);
  }

 private:
  template <class T>
  std::vector<T> decode_all(detail::ManagerOp op) const {
    auto r = call(op);
    std::vector<T> out;
    out.reserve(r.values.size());
    for (const auto& b : r.values) out.push_back(detail::decode_value<T>(b));
    return out;
  }
};

// ListProxy<T> is Manager().list(): a list in the manager's server. Indexes may be negative
// (from the end), as Python's.
template <class T>
class ListProxy : public detail::ProxyBase {
 public:
  ListProxy() noexcept = default;

  // append(value), extend(values).
  void append(const T& value) { call(detail::ManagerOp::list_append, detail::encode_value(value)); }
  void extend(const std::vector<T>& values) {
    std::vector<std::string> many;
    many.reserve(values.size());
    for (const auto& v : values) many.push_back(detail::encode_value(v));
    call_many(detail::ManagerOp::list_extend, std::move(many));
  }
  // at(i) is l[i]; set(i, value) is l[i] = value. Throw IndexError out of range.
  [[nodiscard]] T at(std::int64_t i) const {
    return detail::decode_value<T>(call(detail::ManagerOp::list_get, {}, {}, i).value);
  }
  void set(std::int64_t i, const T& value) {
    call(detail::ManagerOp::list_set, detail::encode_value(value), {}, i);
  }
  // pop(i = -1) removes and returns l[i] atomically; IndexError when empty or out of range.
  T pop(std::int64_t i = -1) {
    return detail::decode_value<T>(call(detail::ManagerOp::list_pop, {}, {}, i).value);
  }
  // insert(i, value) inserts before index i (clamped, as Python's).
  void insert(std::int64_t i, const T& value) {
    call(detail::ManagerOp::list_insert, detail::encode_value(value), {}, i);
  }
  // size() is len(l); copy() is list(l), a snapshot.
  [[nodiscard]] std::size_t size() const {
    return static_cast<std::size_t>(call(detail::ManagerOp::list_len).n);
  }
  [[nodiscard]] std::vector<T> copy() const {
    auto r = call(detail::ManagerOp::list_items);
    std::vector<T> out;
    out.reserve(r.values.size());
    for (const auto& b : r.values) out.push_back(detail::decode_value<T>(b));
    return out;
  }
  void clear() { call(detail::ManagerOp::list_clear); }
  // remove(value) removes the first equal item; ValueError when there is none.
  void remove(const T& value) { call(detail::ManagerOp::list_remove, detail::encode_value(value)); }
  // index(value) is the position of the first equal item; ValueError when there is none.
  [[nodiscard]] std::size_t index(const T& value) const {
    return static_cast<std::size_t>(
        call(detail::ManagerOp::list_index, detail::encode_value(value)).n);
  }
  // count(value) is the number of equal items.
  [[nodiscard]] std::size_t count(const T& value) const {
    return static_cast<std::size_t>(
        call(detail::ManagerOp::list_count, detail::encode_value(value)).n);
  }
};

namespace detail {

// wait_seconds(timeout): a timeout as the server takes it (seconds; negative ones wait not at all,
// as a zero timeout).
template <class Rep, class Period>
double wait_seconds(std::chrono::duration<Rep, Period> timeout) noexcept {
  const double s = std::chrono::duration<double>(timeout).count();
  return s > 0 ? s : 0.0;
}

}  // namespace detail

// QueueProxy<T> is Manager().Queue(maxsize) (and JoinableQueue): a queue.Queue in the manager's
// server, with the names and exceptions of concur::Queue — put blocks while the queue is full,
// get while it is empty; the timed and _nowait forms throw Full / Empty; after shutdown() every
// put, and a get on an empty queue, throws ShutDown (Python 3.13). task_done() throws ValueError
// when called more often than items were put. Several threads and processes may use one queue.
template <class T>
class QueueProxy : public detail::ProxyBase {
 public:
  static_assert(TaskArgument<T>, "mp::QueueProxy<T>: T must be serializable (serialize.hpp)");
  QueueProxy() noexcept = default;

  // put(item) blocks while the queue is full; put(item, timeout) throws Full when no slot freed
  // in time; put_nowait(item) throws Full at once. Throw ShutDown after shutdown().
  void put(const T& item) { put_wait(item, -1.0); }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    put_wait(item, detail::wait_seconds(timeout));
  }
  void put_nowait(const T& item) { put_wait(item, 0.0); }
  // get() blocks until an item is there; get(timeout) throws Empty when none came in time;
  // get_nowait() throws Empty at once. Throw ShutDown when shut down and empty.
  [[nodiscard]] T get() { return get_wait(-1.0); }
  template <class Rep, class Period>
  [[nodiscard]] T get(std::chrono::duration<Rep, Period> timeout) {
    return get_wait(detail::wait_seconds(timeout));
  }
  [[nodiscard]] T get_nowait() { return get_wait(0.0); }
  // qsize(), empty(), full(): snapshots.
  [[nodiscard]] std::size_t qsize() const {
    return static_cast<std::size_t>(call(detail::ManagerOp::queue_qsize).n);
  }
  [[nodiscard]] bool empty() const { return qsize() == 0; }
  [[nodiscard]] bool full() const { return call(detail::ManagerOp::queue_full).n != 0; }
  // task_done() marks one item got as processed; ValueError when called too many times.
  void task_done() { call(detail::ManagerOp::queue_task_done); }
  // join() blocks until every item put was marked task_done() (or dropped by an immediate
  // shutdown); join(timeout) returns false when some were still unfinished after `timeout`.
  void join() { (void)call_waiting(detail::ManagerOp::queue_join, {}, -1.0); }
  template <class Rep, class Period>
  [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) {
    return call_waiting(detail::ManagerOp::queue_join, {}, detail::wait_seconds(timeout)).n != 0;
  }
  // shutdown(immediate): later puts throw ShutDown, gets too once the queue is empty; blocked
  // callers are woken (a put with ShutDown, a get with ShutDown when nothing is left). With
  // immediate = true the items are dropped and their unfinished tasks settled, releasing join().
  void shutdown(bool immediate = false) {
    call(detail::ManagerOp::queue_shutdown, {}, {}, immediate ? 1 : 0);
  }

 private:
  void put_wait(const T& item, double seconds) {
    (void)call_waiting(detail::ManagerOp::queue_put, detail::encode_value(item), seconds);
  }
  T get_wait(double seconds) {
    return detail::decode_value<T>(call_waiting(detail::ManagerOp::queue_get, {}, seconds).value);
  }
};

// Manager is multiprocessing.Manager(): it starts a server process at construction and stops it
// at shutdown() or destruction. The server is a daemonic child, so a Manager that is never shut
// down does not keep the program from exiting.
class CONCUR_EXPORT Manager {
 public:
  // Manager(options) starts the server (options.start_method, default get_start_method()) and
  // returns once it listens; throws what Process::start throws, InvalidStateError inside a
  // daemonic process, OSError when the server cannot listen, RuntimeError when it ends first.
  explicit Manager(ProcessOptions options = {});
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;
  // ~Manager() is shutdown().
  ~Manager();

  // dict<K, V>() makes a new empty dict in the server; list<T>() a new empty list.
  template <class K, class V>
  [[nodiscard]] DictProxy<K, V> dict() {
    auto [client, id] = make(detail::ManagerOp::dict_new);
    DictProxy<K, V> d;
    static_cast<detail::ProxyBase&>(d) = detail::ProxyBase(std::move(client), id);
    return d;
  }
  template <class T>
  [[nodiscard]] ListProxy<T> list() {
    auto [client, id] = make(detail::ManagerOp::list_new);
    ListProxy<T> l;
    static_cast<detail::ProxyBase&>(l) = detail::ProxyBase(std::move(client), id);
    return l;
  }
  // Queue<T>(maxsize) makes a new queue in the server (Manager().Queue(maxsize); 0: unbounded);
  // JoinableQueue<T>(maxsize) is the same queue (every QueueProxy has task_done and join).
  // NOLINTNEXTLINE(readability-identifier-naming): Python's name
  template <class T>
  [[nodiscard]] QueueProxy<T> Queue(std::size_t maxsize = 0) {
    auto [client, id] = make(detail::ManagerOp::queue_new, static_cast<std::int64_t>(maxsize));
    QueueProxy<T> q;
    static_cast<detail::ProxyBase&>(q) = detail::ProxyBase(std::move(client), id);
    return q;
  }
  // NOLINTNEXTLINE(readability-identifier-naming): Python's name
  template <class T>
  [[nodiscard]] QueueProxy<T> JoinableQueue(std::size_t maxsize = 0) {
    return Queue<T>(maxsize);
  }
  // shutdown() stops the server and waits for it; proxies then throw InvalidStateError.
  // Idempotent. In a process forked from the Manager's it does nothing, and the Manager stays
  // usable there (Python's Manager is shut down only by the process that started it).
  void shutdown();
  // pid() is the server's process id.
  [[nodiscard]] pid_t pid() const noexcept { return server_.pid(); }

 private:
  Manager(ProcessOptions options, std::pair<Connection, Connection> pipe);
  std::pair<std::shared_ptr<detail::ManagerClient>, std::uint64_t> make(detail::ManagerOp op,
                                                                        std::int64_t i = 0);

  Process server_;
  std::shared_ptr<detail::ManagerClient> client_;
  pid_t owner_;  // the process that started the server
  bool stopped_ = false;
};

}  // namespace concur::mp
