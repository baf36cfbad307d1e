// concur/mp/queues.hpp — process-safe queues (multiprocessing.Queue, JoinableQueue, SimpleQueue).
//
// A queue is a byte ring in a memfd shared mapping (1 MiB by default, pages allocated as used),
// guarded by a robust process-shared mutex, with futex waits for "not empty", "not full" and
// "all done". put() serializes the item (serialize.hpp) and copies the bytes into the ring; get()
// copies them out and deserializes. Items that carry handles (descriptors) or do not fit the ring
// travel over a Connection instead, their place in the ring held by a marker, so FIFO order holds
// across both paths and a large item never blocks put(): the notes' `q.put('X' * 1000000)` +
// `p.join()` before `q.get()` returns instead of deadlocking.
// Passing a queue to a child (a Process argument, or over a Connection) shares the same ring.
// Blocking calls have none / duration / time-point forms; put raises Full, get raises Empty when
// a bounded wait expires (Python's queue.Full / queue.Empty, concur::Full / Empty).
// Differences from Python: there is no feeder thread — put() writes directly, so an item is in
// the queue when put() returns and close()/join_thread() have nothing to flush; qsize() is exact;
// a process killed in the middle of an operation never leaves the ring locked (robust mutex) and,
// since every operation commits with its last store, never corrupts it — except for an item on
// the Connection path whose getter dies between taking its marker and reading it (documented
// risk; Python's queue can be corrupted by any killed process).
// Thread- and process-safety: every member may be called from any thread of any process sharing
// the queue, except close() and moves. Memory ordering: everything done before put() is visible
// to the process whose get() returns that item.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"
#include "concur/mp/connection.hpp"
#include "concur/mp/serialize.hpp"
#include "concur/mp/synchronize.hpp"

namespace concur::mp {

// QueueOptions: maxsize (0: unbounded, as Python's Queue(maxsize=0)) and the ring's size in bytes
// (items larger than about buffer_bytes travel over the Connection path).
struct QueueOptions {
  std::size_t maxsize = 0;
  std::size_t buffer_bytes = std::size_t{1} << 20;
};

namespace detail {

// ByteQueue is the untyped core: serialized items in the shared ring (or the Connection path).
class CONCUR_EXPORT ByteQueue {
 public:
  // ByteQueue(options, joinable) creates the ring, the side Connection and its locks. Throws
  // ValueError for a ring under 4 KiB, OSError when the system refuses.
  ByteQueue(QueueOptions options, bool joinable);
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;
  ~ByteQueue() = default;

  // fits(payload) is true when the payload can travel in the ring.
  [[nodiscard]] bool fits(const Payload& payload) const noexcept;
  // put_ring(bytes, deadline) puts bytes into the ring; false when the deadline passed first
  // (queue full).
  bool put_ring(std::string_view bytes, const concur::detail::Deadline& deadline);
  // put_side(send, deadline): holds the side lock, runs send() (which writes the item to the
  // side Connection), then puts a marker; false when the deadline passed first. Throws what
  // send() throws (nothing was queued then).
  template <class Send>
  bool put_side(Send&& send, const concur::detail::Deadline& deadline) {
    if (!wlock_.acquire_until(deadline.when())) return false;
    SideGuard guard(wlock_);
    if (!reserve(deadline)) return false;
    try {
      send(writer_);
    } catch (...) {
      unreserve();
      throw;
    }
    commit_marker();
    return true;
  }
  // get(out, deadline): waits for an item; ring items are copied into `out` (returns 1), a marker
  // returns 2 with the side lock held (the caller reads the side Connection, then calls
  // side_done()); 0 when the deadline passed (queue empty).
  int get(std::string& out, const concur::detail::Deadline& deadline);
  Connection& side_reader() noexcept { return reader_; }
  void side_done() { rlock_.release(); }

  [[nodiscard]] std::size_t qsize() const noexcept;
  [[nodiscard]] std::size_t maxsize() const noexcept;
  // task_done() / join_until(deadline): JoinableQueue.
  void task_done();
  bool join_until(const concur::detail::Deadline& deadline);
  [[nodiscard]] std::size_t unfinished_tasks() const noexcept;

  template <class Archive>
  void save(Archive& ar) const {
    ar(region_, reader_, writer_, rlock_, wlock_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(region_, reader_, writer_, rlock_, wlock_);
    check_loaded();
  }

 private:
  class SideGuard {
   public:
    explicit SideGuard(Lock& lock) noexcept : lock_(lock) {}
    SideGuard(const SideGuard&) = delete;
    SideGuard& operator=(const SideGuard&) = delete;
    ~SideGuard() { lock_.release(); }

   private:
    Lock& lock_;
  };
  // reserve(deadline) waits for a free item slot (maxsize) and ring room for a marker, and
  // claims them; unreserve() gives them back; commit_marker() publishes the marker.
  bool reserve(const concur::detail::Deadline& deadline);
  void unreserve() noexcept;
  void commit_marker();
  void check_loaded();

  SharedRegion region_;
  Connection reader_;
  Connection writer_;
  Lock rlock_;
  Lock wlock_;
};

}  // namespace detail

// Queue<T> is multiprocessing.Queue: FIFO, optionally bounded, shared by processes.
template <class T>
class Queue {
  static_assert(TaskArgument<T>, "concur::mp::Queue<T>: T must be serializable (serialize.hpp)");

 public:
  // Queue(maxsize) / Queue(options) create the shared ring. Throws OSError when the system
  // refuses.
  explicit Queue(std::size_t maxsize = 0) : Queue(QueueOptions{.maxsize = maxsize}) {}
  explicit Queue(QueueOptions options) : core_(options, false) {}
  // Not copyable or movable (the locks inside are not): pass a queue by reference, or to another
  // process as an argument.
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  virtual ~Queue() = default;

  // put(item) blocks while the queue is full. put(item, timeout) / put_until(item, tp) throw Full
  // when the wait expires; put_nowait(item) throws Full at once. Throws PicklingError when item
  // cannot be serialized (nothing queued), ValueError after close().
  void put(const T& item) { put_deadline(item, concur::detail::Deadline::infinite()); }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    put_deadline(item, concur::detail::Deadline::after(timeout));
  }
  template <class C, class D>
  void put_until(const T& item, std::chrono::time_point<C, D> tp) {
    put_deadline(item, concur::detail::Deadline::at(tp));
  }
  void put_nowait(const T& item) {
    put_deadline(item, concur::detail::Deadline::after(std::chrono::seconds(0)));
  }

  // get() blocks until an item is available. get(timeout) / get_until(tp) throw Empty when the
  // wait expires; get_nowait() throws Empty at once. ValueError after close().
  T get() { return get_deadline(concur::detail::Deadline::infinite()); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_deadline(concur::detail::Deadline::after(timeout));
  }
  template <class C, class D>
  T get_until(std::chrono::time_point<C, D> tp) {
    return get_deadline(concur::detail::Deadline::at(tp));
  }
  T get_nowait() { return get_deadline(concur::detail::Deadline::after(std::chrono::seconds(0))); }

  // qsize() is the number of items queued (exact, unlike Python's approximation); empty() and
  // full() are snapshots.
  [[nodiscard]] std::size_t qsize() const noexcept { return core_.qsize(); }
  [[nodiscard]] bool empty() const noexcept { return qsize() == 0; }
  [[nodiscard]] bool full() const noexcept {
    return core_.maxsize() != 0 && qsize() >= core_.maxsize();
  }
  [[nodiscard]] std::size_t maxsize() const noexcept { return core_.maxsize(); }
  // close() says this process will use the queue no more: put/get then throw ValueError. Other
  // processes are unaffected. join_thread() and cancel_join_thread() do nothing (no feeder
  // thread); they exist for code ported from Python.
  void close() noexcept { closed_ = true; }
  void join_thread() noexcept {}
  void cancel_join_thread() noexcept {}

  template <class Archive>
  void save(Archive& ar) const {
    if (closed_) throw PicklingError("a closed Queue cannot be passed to another process");
    ar(core_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(core_);
    closed_ = false;
  }

 protected:
  Queue(QueueOptions options, bool joinable) : core_(options, joinable) {}

  void check_open() const {
    if (closed_) throw ValueError("Queue is closed");
  }

  void put_deadline(const T& item, const concur::detail::Deadline& deadline) {
    check_open();
    const Payload payload = dumps(item);
    const bool ok = core_.fits(payload)
                        ? core_.put_ring(payload.bytes, deadline)
                        : core_.put_side([&](Connection& w) { w.send(item); }, deadline);
    if (!ok) throw Full("Full");
  }

  T get_deadline(const concur::detail::Deadline& deadline) {
    check_open();
    std::string bytes;
    T out{};
    switch (core_.get(bytes, deadline)) {
      case 0:
        throw Empty("Empty");
      case 1:
        loads(bytes, {}, out);
        return out;
      default:
        try {
          out = core_.side_reader().template recv<T>();
        } catch (...) {
          core_.side_done();
          throw;
        }
        core_.side_done();
        return out;
    }
  }

  detail::ByteQueue core_;
  bool closed_ = false;
};

// JoinableQueue<T> is multiprocessing.JoinableQueue: a Queue whose consumers call task_done() for
// each item, so that join() can wait until every item put so far was processed.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  explicit JoinableQueue(std::size_t maxsize = 0)
      : JoinableQueue(QueueOptions{.maxsize = maxsize}) {}
  explicit JoinableQueue(QueueOptions options) : Queue<T>(options, true) {}

  // task_done() marks one item processed; throws ValueError("task_done() called too many times").
  void task_done() { this->core_.task_done(); }
  // join() blocks until every item put has been marked done; join(timeout) / join_until(tp)
  // return false when the wait expires.
  void join() { (void)this->core_.join_until(concur::detail::Deadline::infinite()); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->core_.join_until(concur::detail::Deadline::after(timeout));
  }
  template <class C, class D>
  bool join_until(std::chrono::time_point<C, D> tp) {
    return this->core_.join_until(concur::detail::Deadline::at(tp));
  }
  // unfinished_tasks() is the number of items put and not yet marked done.
  [[nodiscard]] std::size_t unfinished_tasks() const noexcept {
    return this->core_.unfinished_tasks();
  }
};

// SimpleQueue<T> is multiprocessing.SimpleQueue: an unbounded Queue with only put, get, empty and
// close (no timeouts, as Python's).
template <class T>
class SimpleQueue {
 public:
  SimpleQueue() = default;
  // put(item) queues item; get() blocks for the next one; empty() is a snapshot.
  void put(const T& item) { q_.put(item); }
  T get() { return q_.get(); }
  [[nodiscard]] bool empty() const noexcept { return q_.empty(); }
  void close() noexcept { q_.close(); }

  template <class Archive>
  void save(Archive& ar) const {
    ar(q_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(q_);
  }

 private:
  Queue<T> q_;
};

}  // namespace concur::mp
