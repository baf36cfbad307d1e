// concur/aio/queue.hpp — asyncio's queues for coroutines (asyncio/queues.py, Python 3.13):
// Queue<T> (FIFO), LifoQueue<T>, PriorityQueue<T, Compare>, bounded by maxsize (0: unbounded).
// co_await q.put(x) / q.get() wait while full / empty (put_nowait / get_nowait throw Full /
// Empty); task_done() and co_await q.join(); shutdown(immediate) ends it with concur::ShutDown.
// Waiters are served FIFO: an item or a slot is promised to the first waiter at once, and a waiter
// cancelled after its promise passes it on: no item is lost or delivered twice.
// Thread-safety: loop thread only. Memory: no allocation per wait (the awaiter, holding a put's
// item, lives in the frame); a queue must outlive its waiters (shutdown() and let them end).
#pragma once

#include <coroutine>
#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"
#include "concur/errors.hpp"
#include "concur/queue.hpp"

namespace concur::aio {

namespace detail {

template <class Q>
class QueuePut;
template <class Q>
class QueueGet;

// BasicQueue<T, Container>: the one implementation behind Queue, LifoQueue and PriorityQueue;
// Container (concur/queue.hpp's Fifo/Lifo/PriorityContainer) decides the order.
// Promises: an item put while getters wait is promised to the first of them at once — it leaves
// qsize(), and no get_nowait() can take it before that getter runs (Python counts it until the
// getter runs and lets a get_nowait() steal it, sending the getter to the back of the line). A
// woken getter takes the item that is first when it resumes (LIFO / priority order at that time).
// A slot freed while putters wait is promised to the first putter the same way (full() counts it).
// Cancellation: a task cancelled while waiting leaves at once (its put() never happened, its get()
// took nothing); one cancelled after its promise hands the item / slot to the next waiter (or
// leaves the item queued).
template <class T, class Container>
class BasicQueue {
 public:
  static_assert(std::is_move_constructible_v<T>, "queue items must be movable");
  using value_type = T;

  // BasicQueue(maxsize): 0 is unbounded.
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  ~BasicQueue() { CONCUR_DCHECK(getters_.empty() && putters_.empty()); }

  // put(item): `co_await q.put(item)` adds the item, waiting (FIFO) while the queue is full;
  // returns at once, without suspending, when there is room. ShutDown when the queue is shut
  // down (before or while waiting). CancelledError when cancelled while waiting: the item is not
  // put (and a slot promised to it goes to the next putter).
  QueuePut<BasicQueue> put(T item) { return QueuePut<BasicQueue>(*this, std::move(item)); }
  // put_nowait(item): adds the item now; ShutDown after shutdown(), else Full when full().
  void put_nowait(T item) { put_now(item); }
  // get(): `co_await q.get()` removes and returns the next item, waiting (FIFO) while the queue is
  // empty. After shutdown(), returns what is left, then throws ShutDown (at once for waiting
  // getters). CancelledError when cancelled while waiting: nothing is taken (an item promised to
  // it goes to the next getter, or stays queued).
  QueueGet<BasicQueue> get() noexcept { return QueueGet<BasicQueue>(*this); }
  // get_nowait(): removes and returns the next item now; Empty when there is none (ShutDown
  // instead once shut down).
  T get_nowait();

  // qsize(): items a get() would find now (items promised to woken getters are not counted).
  [[nodiscard]] std::size_t qsize() const noexcept { return items_.size() - promised_items_; }
  // empty(): qsize() == 0.
  [[nodiscard]] bool empty() const noexcept { return qsize() == 0; }
  // full(): a put() would wait: maxsize() items queued or promised to woken putters (never for an
  // unbounded queue).
  [[nodiscard]] bool full() const noexcept {
    return maxsize_ > 0 && qsize() + promised_slots_ >= maxsize_;
  }
  // maxsize(): the bound given at construction (0: unbounded).
  [[nodiscard]] std::size_t maxsize() const noexcept { return maxsize_; }

  // task_done(): one item taken by a get is processed; join() returns once every item put is.
  // ValueError("task_done() called too many times") when no item is unfinished.
  void task_done();
  // join(): `co_await q.join()` waits until every item put has been marked task_done() (or was
  // dropped by shutdown(immediate=true)); at once when none is unfinished. CancelledError when
  // cancelled while waiting.
  [[nodiscard]] Park join() noexcept { return finished_.wait(); }
  // unfinished_tasks(): items put and not yet marked done.
  [[nodiscard]] std::size_t unfinished_tasks() const noexcept { return unfinished_; }

  // shutdown(immediate): every later put raises ShutDown, and so does every get once the queue is
  // empty; waiting putters and getters raise ShutDown now (a getter already promised an item
  // still receives it). immediate=true also drops the queued items (promised ones included) and
  // counts them done, so join() returns once the items taken before are done. Idempotent.
  void shutdown(bool immediate = false);
  // is_shutdown(): shutdown() was called.
  [[nodiscard]] bool is_shutdown() const noexcept { return shutdown_; }

 private:
  friend class QueuePut<BasicQueue>;
  friend class QueueGet<BasicQueue>;
  static constexpr const char* kWhat = "aio::Queue";

  // put_now(item): put_nowait's checks, then push.
  void put_now(T& item);
  // push(item): the item enters the queue (counted unfinished); a waiting getter is promised it.
  void push(T& item);
  // take(): moves the next item out (if the move throws, the item stays queued).
  T take();
  // rebalance(): promises queued items to waiting getters and free slots to waiting putters,
  // first come first served. Called after every change.
  void rebalance() noexcept;

  Container items_;
  const std::size_t maxsize_;
  std::size_t promised_items_ = 0;  // queued items promised to woken getters
  std::size_t promised_slots_ = 0;  // free slots promised to woken putters
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
  bool dropped_ = false;  // shutdown(immediate=true) ran: promised items are gone
  LoopBinding binding_;
  WaitList getters_{binding_};
  WaitList putters_{binding_};
  Event finished_;  // set while unfinished_ == 0
};

// QueuePut<Q>: co_await q.put(item).
template <class Q>
class [[nodiscard]] QueuePut final : public Waiter, public WaitNode {
 public:
  using aio_awaitable = void;
  using T = typename Q::value_type;
  QueuePut(Q& q, T item) : q_(&q), item_(std::move(item)) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  QueuePut(QueuePut&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
      : Waiter(), WaitNode(), q_(o.q_), item_(std::move(o.item_)) {}
  QueuePut& operator=(QueuePut&&) = delete;
  ~QueuePut();

  // Ready: shut down (await_resume throws) or room now.
  bool await_ready() const noexcept { return q_->shutdown_ || !q_->full(); }
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume();
  bool cancel(TaskCore& task) noexcept override;

 private:
  Q* q_;
  T item_;
};

// QueueGet<Q>: co_await q.get().
template <class Q>
class [[nodiscard]] QueueGet final : public Waiter, public WaitNode {
 public:
  using aio_awaitable = void;
  using T = typename Q::value_type;
  explicit QueueGet(Q& q) noexcept : q_(&q) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  QueueGet(QueueGet&& o) noexcept : Waiter(), WaitNode(), q_(o.q_) {}
  QueueGet& operator=(QueueGet&&) = delete;
  ~QueueGet();

  // Ready: an item now, or shut down (await_resume throws).
  bool await_ready() const noexcept { return q_->qsize() > 0 || q_->shutdown_; }
  bool await_suspend(std::coroutine_handle<> h);
  T await_resume();
  bool cancel(TaskCore& task) noexcept override;

 private:
  Q* q_;
};

}  // namespace detail

// Queue<T>: asyncio.Queue, first in first out. Queue<T> q(maxsize) — 0 is unbounded.
template <class T>
class Queue : public detail::BasicQueue<T, concur::detail::FifoContainer<T>> {
 public:
  using detail::BasicQueue<T, concur::detail::FifoContainer<T>>::BasicQueue;
};

// LifoQueue<T>: asyncio.LifoQueue, last in first out.
template <class T>
class LifoQueue : public detail::BasicQueue<T, concur::detail::LifoContainer<T>> {
 public:
  using detail::BasicQueue<T, concur::detail::LifoContainer<T>>::BasicQueue;
};

// PriorityQueue<T, Compare>: asyncio.PriorityQueue, the smallest item by Compare first, equal
// items in arrival order (no (priority, count, item) tuple needed). T must be nothrow-movable;
// Compare default-constructible.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, concur::detail::PriorityContainer<T, Compare>> {
 public:
  using detail::BasicQueue<T, concur::detail::PriorityContainer<T, Compare>>::BasicQueue;
};

// ---- implementation ---------------------------------------------------------------------------

namespace detail {

template <class T, class Container>
void BasicQueue<T, Container>::put_now(T& item) {
  if (shutdown_) throw ShutDown();
  if (full()) throw Full();
  push(item);
}

template <class T, class Container>
void BasicQueue<T, Container>::push(T& item) {
  items_.push(std::move(item));
  ++unfinished_;
  finished_.clear();
  rebalance();
}

template <class T, class Container>
T BasicQueue<T, Container>::take() {
  T out(std::move(items_.top()));
  items_.pop();
  return out;
}

template <class T, class Container>
T BasicQueue<T, Container>::get_nowait() {
  if (qsize() == 0) {
    if (shutdown_) throw ShutDown();
    throw Empty();
  }
  T out = take();
  rebalance();  // a slot is free: the first waiting putter may have it
  return out;
}

template <class T, class Container>
void BasicQueue<T, Container>::rebalance() noexcept {
  while (!getters_.empty() && qsize() > 0) {
    ++promised_items_;
    getters_.wake_one();
  }
  while (!putters_.empty() && !full()) {
    ++promised_slots_;
    putters_.wake_one();
  }
}

template <class T, class Container>
void BasicQueue<T, Container>::task_done() {
  if (unfinished_ == 0) throw ValueError("task_done() called too many times");
  if (--unfinished_ == 0) finished_.set();
}

template <class T, class Container>
void BasicQueue<T, Container>::shutdown(bool immediate) {
  shutdown_ = true;
  if (immediate && !dropped_) {
    dropped_ = true;
    const std::size_t n = items_.size();
    items_.clear();
    promised_items_ = 0;  // the woken getters find ShutDown instead
    unfinished_ -= n < unfinished_ ? n : unfinished_;
    if (unfinished_ == 0) finished_.set();
  }
  getters_.wake_all(WaitState::kShutdown);
  putters_.wake_all(WaitState::kShutdown);
}

// ---- QueuePut ----

template <class Q>
QueuePut<Q>::~QueuePut() {
  // A frame destroyed mid-wait: leave the queue, or hand on a promised slot.
  if (list != nullptr) {
    list->remove(this);
  } else if (state == WaitState::kWoken) {
    --q_->promised_slots_;
    q_->rebalance();
  }
}

template <class Q>
bool QueuePut<Q>::await_suspend(std::coroutine_handle<> /*h*/) {
  TaskCore* t = tls_task;
  q_->putters_.check_loop(*t, Q::kWhat);
  if (!t->suspend_on(this)) {
    state = WaitState::kRefused;
    return false;
  }
  task = t;
  q_->putters_.push_back(this);
  return true;
}

template <class Q>
void QueuePut<Q>::await_resume() {
  switch (state) {
    case WaitState::kIdle:  // room now, or shut down: put_now() decides
      q_->put_now(item_);
      return;
    case WaitState::kWoken:  // a slot was promised to this putter
      state = WaitState::kDone;
      --q_->promised_slots_;
      try {
        tls_task->check_cancel();
        if (q_->shutdown_) throw ShutDown();
        q_->push(item_);
      } catch (...) {
        q_->rebalance();  // the slot goes to the next putter
        throw;
      }
      return;
    case WaitState::kShutdown:
      state = WaitState::kDone;
      tls_task->check_cancel();
      throw ShutDown();
    default:  // kCancelled, kRefused
      state = WaitState::kDone;
      tls_task->check_cancel();
      throw CancelledError();  // the cancellation was withdrawn (uncancel), the wait was not
  }
}

template <class Q>
bool QueuePut<Q>::cancel(TaskCore& t) noexcept {
  if (list != nullptr) {
    list->remove(this);
    state = WaitState::kCancelled;
    t.wake();
  }
  // Woken already: await_resume() sees the pending cancellation and hands the slot on.
  return false;
}

// ---- QueueGet ----

template <class Q>
QueueGet<Q>::~QueueGet() {
  // A frame destroyed mid-wait: leave the queue, or hand on a promised item.
  if (list != nullptr) {
    list->remove(this);
  } else if (state == WaitState::kWoken && !q_->dropped_) {
    --q_->promised_items_;
    q_->rebalance();
  }
}

template <class Q>
bool QueueGet<Q>::await_suspend(std::coroutine_handle<> /*h*/) {
  TaskCore* t = tls_task;
  q_->getters_.check_loop(*t, Q::kWhat);
  if (!t->suspend_on(this)) {
    state = WaitState::kRefused;
    return false;
  }
  task = t;
  q_->getters_.push_back(this);
  return true;
}

template <class Q>
auto QueueGet<Q>::await_resume() -> T {
  switch (state) {
    case WaitState::kIdle:  // an item now, or shut down: get_nowait() decides
      return q_->get_nowait();
    case WaitState::kWoken: {  // an item was promised to this getter
      state = WaitState::kDone;
      if (q_->dropped_) {  // shutdown(immediate=true) dropped it
        tls_task->check_cancel();
        throw ShutDown();
      }
      --q_->promised_items_;
      try {
        tls_task->check_cancel();
        T out = q_->take();
        q_->rebalance();
        return out;
      } catch (...) {
        q_->rebalance();  // the item goes to the next getter (or stays queued)
        throw;
      }
    }
    case WaitState::kShutdown:
      state = WaitState::kDone;
      tls_task->check_cancel();
      throw ShutDown();
    default:  // kCancelled, kRefused
      state = WaitState::kDone;
      tls_task->check_cancel();
      throw CancelledError();  // the cancellation was withdrawn (uncancel), the wait was not
  }
}

template <class Q>
bool QueueGet<Q>::cancel(TaskCore& t) noexcept {
  if (list != nullptr) {
    list->remove(this);
    state = WaitState::kCancelled;
    t.wake();
  }
  // Woken already: await_resume() sees the pending cancellation and hands the item on.
  return false;
}

}  // namespace detail

}  // namespace concur::aio
