// ThreadPoolExecutor: the work-stealing pool behind it (detail::PoolCore), its parking protocol,
// helping waits and the deadlock check. The design is described in docs/internals/futures.md.
#include "concur/thread_pool.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../base/this_pid.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/wait_queue.hpp"
#include "concur/detail/work_deque.hpp"
#include "concur/errors.hpp"
#include "concur/thread.hpp"

namespace concur {

Executor::~Executor() = default;

namespace detail {
namespace {

// kSearchBudget: how long an idle worker keeps looking for work (yielding the CPU between looks)
// before it sleeps. A submit that arrives meanwhile is picked up without a futex wake-up, which
// costs ~20-30 µs on the VMs measured here (docs/benchmarks.md).
constexpr std::chrono::microseconds kSearchBudget{50};
// A helping wait with nothing to run sleeps on the future in slices growing to kMaxHelpSlice,
// then looks for work again.
constexpr std::chrono::microseconds kFirstHelpSlice{50};
constexpr std::chrono::microseconds kMaxHelpSlice{10'000};
// kBatch: outside tasks a worker moves from the injection list to its inbox at a time.
constexpr std::uint64_t kBatch = 32;
// kMaxDepth: nested tasks (helping runs tasks inside a waiting task) recorded per worker for the
// deadlock check; deeper ones still run, but a wait there is not checked.
constexpr int kMaxDepth = 128;

std::atomic<std::uint64_t> g_pool_counter{0};
std::atomic<std::uint32_t> g_pool_ids{0};

// next_pool_id(): a pool's FutureStateBase::pool_id(), never kNoPool. After 2^32 pools ids repeat:
// a worker could then help in a wait on a long-dead pool's future — extra helping, never a hang.
std::uint32_t next_pool_id() noexcept {
  for (;;) {
    const std::uint32_t id = g_pool_ids.fetch_add(1, std::memory_order_relaxed) + 1;
    if (id != FutureStateBase::kNoPool) return id;
  }
}

std::size_t default_max_workers() {
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  return std::min<std::size_t>(32, cores + 4);
}

// Single-writer counters: the owner bumps them with a plain load and store.
void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// WorkMap: one bit per worker slot, set while that worker's queue of one kind (its deque, or its
// inbox) may hold tasks, so that a worker looking for work visits only those queues instead of
// every slot (a pool of thousands of workers blocked in their tasks, concur serve's fan-out, spent
// most of its CPU scanning empty slots: docs/benchmarks.md). Only the queue's owner pushes into
// it, and only the owner writes its bit: mark(i) after a push (an RMW only when the bit is clear),
// unmark(i) once it sees the queue empty. No push can race an unmark (the owner does both), so a
// clear bit means an empty queue: a reader that sees the bit clear read it before the owner's
// mark, which is sequenced after the push and before the push's wake-up check (the parking
// protocol's re-check relies on that: see any_work_visible). A set bit may be stale (thieves
// emptied the queue); readers check the queue itself.
class WorkMap {
 public:
  explicit WorkMap(std::size_t slots) : words_((slots + 63) / 64) {}

  void mark(std::size_t i) noexcept {
    std::atomic<std::uint64_t>& w = words_[i / 64];
    const std::uint64_t bit = std::uint64_t{1} << (i % 64);
    // The owner's own bit: a relaxed load sees its last write (nobody else writes this bit).
    if ((w.load(std::memory_order_relaxed) & bit) == 0) w.fetch_or(bit, std::memory_order_seq_cst);
  }
  void unmark(std::size_t i) noexcept {
    std::atomic<std::uint64_t>& w = words_[i / 64];
    const std::uint64_t bit = std::uint64_t{1} << (i % 64);
    if ((w.load(std::memory_order_relaxed) & bit) != 0) {
      w.fetch_and(~bit, std::memory_order_seq_cst);
    }
  }

  // any(start, n, fn): fn(i) for the marked slots among the first n, in turn from start (wrapping
  // around), until fn returns true; whether one did.
  template <class Fn>
  bool any(std::size_t start, std::size_t n, Fn&& fn) const {
    if (n == 0) return false;
    const std::size_t nwords = (n + 63) / 64;
    const std::size_t first = start % n;
    for (std::size_t k = 0; k <= nwords; ++k) {
      const std::size_t wi = (first / 64 + k) % nwords;
      std::uint64_t bits = words_[wi].load(std::memory_order_seq_cst);
      if (wi == nwords - 1 && n % 64 != 0) bits &= (std::uint64_t{1} << (n % 64)) - 1;
      // The start word is visited twice: from `first` up, then (after the wrap) below it.
      if (k == 0) bits &= ~std::uint64_t{0} << (first % 64);
      if (k == nwords) bits &= (std::uint64_t{1} << (first % 64)) - 1;
      while (bits != 0) {
        const auto b = static_cast<std::size_t>(__builtin_ctzll(bits));
        bits &= bits - 1;
        if (fn(wi * 64 + b)) return true;
      }
    }
    return false;
  }

 private:
  std::vector<std::atomic<std::uint64_t>> words_;
};

}  // namespace

struct WorkerSlot {
  explicit WorkerSlot(std::string n) : name(std::move(n)) {}

  WorkDeque<Runnable> deque;  // tasks submitted by this worker's tasks: owner LIFO, thieves FIFO
  WorkDeque<Runnable> inbox;  // a batch from the injection list: everyone takes FIFO (steal)
  std::string name;
  std::unique_ptr<Thread> thread;  // set under PoolCore::spawn_mu_
  // Owner-written statistics.
  alignas(64) std::atomic<std::uint64_t> submitted{0};
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> finished{0};
  // The states of the tasks this worker is running, outermost first (helping nests them).
  std::array<std::atomic<FutureStateBase*>, kMaxDepth> stack{};
  std::atomic<int> depth{0};
  // The future this worker's innermost task is blocked on, when it has nothing else to run;
  // written and read under PoolCore::graph_mu_.
  FutureStateBase* waiting_on = nullptr;
  // A cycle seen once through this wait; reported when seen again one wait slice later.
  FutureStateBase* suspect = nullptr;
};

// The calling thread's worker identity (null outside pool workers).
struct WorkerContext {
  PoolCore* core = nullptr;
  WorkerSlot* slot = nullptr;
  std::size_t index = 0;
};
thread_local WorkerContext tls_worker;

class PoolCore final : public WaitHelper,
                       public BulkGate,
                       public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(ThreadPoolOptions options)
      : id_(next_pool_id()),
        max_workers_(options.max_workers != 0 ? options.max_workers : default_max_workers()),
        initializer_(std::move(options.initializer)),
        prefix_(options.thread_name_prefix.empty()
                    ? "ThreadPoolExecutor-" + std::to_string(g_pool_counter.fetch_add(1))
                    : std::move(options.thread_name_prefix)),
        min_workers_(options.min_workers) {
    slots_.reserve(max_workers_);
    for (std::size_t i = 0; i < max_workers_; ++i) {
      slots_.push_back(std::make_unique<WorkerSlot>(prefix_ + "_" + std::to_string(i)));
    }
  }
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore() override {
    // Every worker has finished (the last reference is dropped by the last worker or after the
    // join in shutdown). Tasks can only be left if a worker died mid-way: settle them.
    for (auto& s : slots_) {
      while (Runnable* t = s->deque.pop()) drop(t, nullptr);
      while (Runnable* t = s->inbox.pop()) drop(t, nullptr);
    }
    while (Runnable* t = pop_one()) drop(t, nullptr);
  }

  [[nodiscard]] std::size_t max_workers() const noexcept { return max_workers_; }

  // fresh_copy(start): the pool a forked child's copy of this one becomes (ThreadPoolExecutor::
  // adopt_after_fork): the same options, no tasks, shut down or broken if this one is; its
  // min_workers started when `start` (not for a shutdown()). It reads only what the constructor set
  // and the flags: a parent thread may have been half-way through changing anything else at the
  // fork.
  [[nodiscard]] std::shared_ptr<PoolCore> fresh_copy(bool start) const {
    ThreadPoolOptions o;
    o.max_workers = max_workers_;
    o.thread_name_prefix = prefix_;
    o.initializer = initializer_;
    o.min_workers = min_workers_;
    auto core = std::make_shared<PoolCore>(std::move(o));
    const bool broken = broken_flag_.load(std::memory_order_acquire);
    const bool closed = shutdown_flag_.load(std::memory_order_acquire);
    if (broken) core->break_pool();
    if (closed) core->shutdown(false, false);
    if (!broken && !closed && start) {
      try {
        core->prestart(min_workers_);
      } catch (...) {
        core->shutdown(true, false);  // join the workers already started
        throw;
      }
    }
    return core;
  }

  void execute(RunnablePtr task) {
    // Mark the future as this pool's before anyone can see the task: a wait on it in one of our
    // workers helps (see help_until). Its submitter learns the future only after this.
    task->future_state().set_pool_id(id_);
    WorkerContext& ctx = tls_worker;
    if (ctx.core == this) {  // from one of our tasks: onto this worker's own deque
      // (Broken first, as Python's submit: a broken pool that was shut down says it is broken.)
      if (broken_flag_.load(std::memory_order_acquire)) reject_broken(std::move(task));
      if (shutdown_flag_.load(std::memory_order_acquire)) reject_shutdown(std::move(task));
      ctx.slot->deque.push(task.release());
      deque_map_.mark(ctx.index);
      bump(ctx.slot->submitted);
      spawn_if_needed(ctx.slot->deque.size_hint());
      notify_work();
      return;
    }
    // Announce the submit before checking the flags: shutdown() and break_pool() set their flag
    // and then wait for submitting_ to drain, so every submit either sees the flag or lands (and
    // has its worker started) before they go on.
    submitting_.fetch_add(1, std::memory_order_seq_cst);
    if (broken_flag_.load(std::memory_order_seq_cst)) {
      submitting_.fetch_sub(1, std::memory_order_release);
      reject_broken(std::move(task));
    }
    if (shutdown_flag_.load(std::memory_order_seq_cst)) {
      submitting_.fetch_sub(1, std::memory_order_release);
      reject_shutdown(std::move(task));
    }
    const std::uint64_t submitted = external_submitted_.fetch_add(1, std::memory_order_relaxed) + 1;
    inject(task.release());
    const std::uint64_t taken = external_taken_.load(std::memory_order_acquire);
    spawn_if_needed(submitted > taken ? submitted - taken : 0);
    submitting_.fetch_sub(1, std::memory_order_release);
    notify_work();
  }

  void shutdown(bool wait, bool cancel_futures) {
    if (cancel_futures) cancel_flag_.store(true, std::memory_order_seq_cst);
    shutdown_flag_.store(true, std::memory_order_seq_cst);
    wait_for_submitters();  // from now on nothing new lands in the injection list
    if (cancel_futures) drop_injected(nullptr);
    work_ec_.notify(true);
    if (wait) join_workers();
  }

  ThreadPoolExecutor::Stats stats() const noexcept {
    ThreadPoolExecutor::Stats st;
    std::uint64_t submitted = external_submitted_.load(std::memory_order_relaxed);
    std::uint64_t started = 0, finished = 0;
    const std::size_t n = spawned_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
      submitted += slots_[i]->submitted.load(std::memory_order_relaxed);
      started += slots_[i]->started.load(std::memory_order_relaxed);
      finished += slots_[i]->finished.load(std::memory_order_relaxed);
    }
    const std::uint64_t dropped = dropped_.load(std::memory_order_relaxed);
    st.workers = n;
    st.completed = finished + dropped;
    st.running = started > finished ? started - finished : 0;
    const std::uint64_t taken = started + dropped;
    st.queued = submitted > taken ? submitted - taken : 0;
    return st;
  }

  // ---- map()'s range tasks (BulkGate) -----------------------------------------------------------
  // refuses(why): what run_task() does to a task it reaches, asked before each item of a range
  // task: after shutdown(cancel_futures = true) items are cancelled, in a broken pool they fail.
  bool refuses(std::exception_ptr& why) const noexcept override {
    if (cancel_flag_.load(std::memory_order_relaxed)) {
      why = nullptr;
      return true;
    }
    if (broken_flag_.load(std::memory_order_relaxed)) {
      why = broken_error();
      return true;
    }
    // A map item forked, and this is the child's copy of the range task: the items left are the
    // parent's (see worker_main's check); the child's copies of their futures are cancelled.
    if (concur::detail::this_pid() != made_in_) [[unlikely]] {
      why = nullptr;
      return true;
    }
    return false;
  }
  [[nodiscard]] std::uint32_t pool_id() const noexcept override { return id_; }

  // ---- helping (WaitHelper) ---------------------------------------------------------------------
  // help_until(s, d): in one of our workers, while s is a future this pool finishes (one of our
  // tasks, a then() continuation of one, an eager map's gate, as_completed()/wait() over some of
  // ours), run our queued tasks until s is done — the task behind s among them, so fork-join
  // completes on any number of workers. Any other future (a Promise, another executor's, the
  // event loop's) is declined: the worker blocks on it as a plain thread, so max_workers bounds
  // the tasks that run at once, as in Python. Also declined once s stops being ours
  // (then(executor, fn) moving on to another executor).
  bool help_until(FutureStateBase& s, const Deadline& d) override {
    WorkerContext& ctx = tls_worker;
    if (ctx.core != this) return false;
    if (!s.finished_by_pool(id_)) return false;
    WorkerSlot& me = *ctx.slot;
    FutureStateBase* const outer_wait = me.waiting_on;  // a wait further out on this worker
    bool published = false;
    const auto unpublish = [&] {
      if (published) {
        std::scoped_lock lk(graph_mu_);
        me.waiting_on = outer_wait;
        me.suspect = nullptr;
        published = false;
      }
    };
    struct Guard {
      decltype(unpublish)& f;
      ~Guard() { f(); }
    } guard{unpublish};
    auto slice = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstHelpSlice);
    for (;;) {
      if (s.done()) return true;
      if (!s.finished_by_pool(id_)) return false;
      if (Runnable* t = find_work(ctx)) {
        unpublish();  // running something: this worker is not blocked meanwhile
        run_task(me, t);
        continue;
      }
      if (d.expired()) return false;
      check_deadlock(me, s, published);
      const Deadline step = Deadline::after(slice);
      s.wait_plain(d.when() < step.when() ? d : step);
      slice = std::min<std::chrono::nanoseconds>(slice * 2, kMaxHelpSlice);
    }
  }

  // ---- workers ----------------------------------------------------------------------------------
  // worker_main(index, counted_idle): counted_idle — a prestarted worker, counted in idle_ from
  // its start (prestart()), so that a burst submitted before it reaches its loop does not start
  // more workers; it then looks for work only the counted way (search()).
  void worker_main(std::size_t index, bool counted_idle) {
    WorkerSlot& me = *slots_[index];
    tls_worker = WorkerContext{this, &me, index};
    ScopedWaitHelper helper(this);
    if (initializer_) {
      try {
        initializer_();
      } catch (...) {
        report_exception(std::current_exception());
        if (counted_idle) idle_.fetch_sub(1, std::memory_order_seq_cst);
        break_pool();
        tls_worker = WorkerContext{};
        return;
      }
    }
    bool idle = counted_idle;  // counted in idle_
    const auto busy = [&] {
      if (idle) idle_.fetch_sub(1, std::memory_order_seq_cst);
      idle = false;
    };
    bool woken = counted_idle;  // back from sleep(), or counted idle: look as a searcher (below)
    for (;;) {
      // A task forked, and this is its child's copy of the worker, back from the task: the
      // queued tasks are the parent's (they run there), so the thread ends here.
      if (concur::detail::this_pid() != made_in_) [[unlikely]]
        break;
      if (!woken) {
        if (Runnable* t = find_work(tls_worker)) {
          busy();
          run_task(me, t);
          continue;
        }
      }
      woken = false;
      if (!idle && spawned_.load(std::memory_order_relaxed) != max_workers_) {
        idle_.fetch_add(1, std::memory_order_seq_cst);
        idle = true;
      }
      bool searched = false;
      if (Runnable* t = search(tls_worker, searched, idle)) {
        idle = false;  // search() stopped counting this worker idle before it took t
        run_task(me, t);
        continue;
      }
      if (exit_now()) break;
      // A worker refused a search (enough others search) sleeps even while work is visible: the
      // searchers take it, and the last one to find work wakes a sleeper when more is left. The
      // sleeper woken looks as a searcher in turn, so that a burst (a batch of tasks in one
      // worker's inbox behind a blocking task) keeps waking workers until it is taken.
      sleep(/*even_if_work=*/!searched);
      woken = true;
    }
    busy();
    tls_worker = WorkerContext{};
  }

 private:
  // ---- submitting -------------------------------------------------------------------------------
  [[noreturn]] static void reject_shutdown(RunnablePtr task) {
    task->abandon();
    throw RuntimeError("cannot schedule new futures after shutdown");
  }
  [[noreturn]] void reject_broken(RunnablePtr task) {
    task->abandon();
    throw BrokenThreadPool(kBrokenMessage);
  }

  // spawn_if_needed(waiting): Python's _adjust_thread_count — start a worker when the tasks
  // waiting to start outnumber the idle workers, up to max_workers. (Python keeps an "idle
  // semaphore" that each submit decrements; counting idle workers and waiting tasks is the same
  // rule without a credit left behind by a worker that then found work.) It holds because a
  // worker counted idle is uncounted before each look for work (search()) and, while workers may
  // still be started, takes one outside task at a time (take_injected): a task counted taken has
  // a worker starting it. Called inside the submit's announcement (see execute), so that a
  // shutdown() after the submit joins the worker started for it.
  void spawn_if_needed(std::uint64_t waiting) {
    if (spawned_.load(std::memory_order_acquire) == max_workers_) return;
    if (waiting <= idle_.load(std::memory_order_seq_cst)) return;
    std::scoped_lock lk(spawn_mu_);
    if (spawned_.load(std::memory_order_relaxed) == max_workers_) return;
    spawn_locked();
  }

 public:
  // prestart(n): starts workers until n exist (ThreadPoolOptions::min_workers); n ≤ max_workers.
  // Each counts as idle from here, before its thread runs.
  void prestart(std::size_t n) {
    std::scoped_lock lk(spawn_mu_);
    while (spawned_.load(std::memory_order_relaxed) < n) spawn_locked(/*counted_idle=*/true);
  }

 private:
  // spawn_locked(counted_idle): starts the next worker (counted in idle_ at once if
  // counted_idle); caller holds spawn_mu_ and checked spawned_ < max.
  void spawn_locked(bool counted_idle = false) {
    const std::size_t n = spawned_.load(std::memory_order_relaxed);
    WorkerSlot& slot = *slots_[n];
    ThreadOptions topts;
    topts.name = slot.name;
    topts.daemon = false;
    // The worker keeps the core alive until it leaves; the reference is dropped inside the
    // thread's target, so a pool destroyed by its own task is destroyed by that worker.
    slot.thread =
        std::make_unique<Thread>(topts, [core = shared_from_this(), n, counted_idle]() mutable {
          core->worker_main(n, counted_idle);
          core.reset();
        });
    if (counted_idle) idle_.fetch_add(1, std::memory_order_seq_cst);
    spawned_.store(n + 1, std::memory_order_release);
    try {
      slot.thread->start();
    } catch (...) {
      if (counted_idle) idle_.fetch_sub(1, std::memory_order_seq_cst);  // (no worker to uncount it)
      throw;
    }
  }

  void notify_work() noexcept {
    if (searching_.load(std::memory_order_seq_cst) == 0) work_ec_.notify();
  }

  // ---- finding work -----------------------------------------------------------------------------
  // ---- the injection list: D. Vyukov's intrusive MPSC queue. Submitters link with one exchange
  // and never wait; workers take turns at the consumer end through a try-lock (a worker that
  // finds it taken goes stealing instead: the holder spreads what it takes over its deque).
  void inject(Runnable* t) noexcept {
    t->next.store(nullptr, std::memory_order_relaxed);
    Runnable* prev = inj_back_.exchange(t, std::memory_order_seq_cst);
    prev->next.store(t, std::memory_order_seq_cst);
  }
  // pop_one(): the oldest task, or nullptr (empty, or a submit is half-way through linking).
  // Caller holds inj_consumer_mu_.
  Runnable* pop_one() noexcept {
    Runnable* front = inj_front_.load(std::memory_order_relaxed);
    Runnable* next = front->next.load(std::memory_order_acquire);
    if (front == &stub_) {
      if (next == nullptr) return nullptr;
      inj_front_.store(next, std::memory_order_seq_cst);
      front = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      inj_front_.store(next, std::memory_order_seq_cst);
      return front;
    }
    if (front != inj_back_.load(std::memory_order_seq_cst)) return nullptr;  // mid-link
    inject(&stub_);  // re-insert the stub behind the last task, so it can be taken
    next = front->next.load(std::memory_order_acquire);
    if (next == nullptr) return nullptr;
    inj_front_.store(next, std::memory_order_seq_cst);
    return front;
  }
  [[nodiscard]] bool injected_visible() const noexcept {
    return inj_front_.load(std::memory_order_seq_cst) != &stub_ ||
           inj_back_.load(std::memory_order_seq_cst) != &stub_;
  }

  // take_injected(ctx): takes a batch — the oldest kBatch injected tasks, or all if fewer — and
  // returns the oldest; the rest go into ctx's inbox, oldest on top. Everyone takes from inboxes
  // with steal() (oldest first) and looks at the other inboxes before the injection list, so
  // outside tasks still start in submission order (up to the race between two workers taking
  // neighbours), while the consumer lock is taken once per batch instead of once per task. While
  // workers may still be started, it takes one task: a submit counts a taken task as started
  // (spawn_if_needed), and the rest of a batch behind a task that blocks would wait for a worker
  // no submit started for them.
  Runnable* take_injected(const WorkerContext& ctx) {
    if (!injected_visible()) return nullptr;
    std::unique_lock lk(inj_consumer_mu_, std::try_to_lock);
    if (!lk.owns_lock()) return nullptr;
    const std::uint64_t batch =
        spawned_.load(std::memory_order_acquire) == max_workers_ ? kBatch : 1;
    Runnable* first = pop_one();
    std::uint64_t taken = first != nullptr ? 1 : 0;
    while (taken != 0 && taken < batch) {
      Runnable* t = pop_one();
      if (t == nullptr) break;
      ctx.slot->inbox.push(t);
      ++taken;
    }
    // (release: a submit that sees the count sees the taker uncounted from idle_, see search())
    external_taken_.store(external_taken_.load(std::memory_order_relaxed) + taken,
                          std::memory_order_release);
    lk.unlock();
    // The batch's other tasks wait in this worker's inbox while it runs the first, which may
    // block: they are announced as a submit is (a sleeper is woken unless someone searches), or
    // a worker that took them outside a search would leave them to no one. (Marked before that,
    // as every push is: see WorkMap.)
    if (taken > 1) {
      inbox_map_.mark(ctx.index);
      notify_work();
    }
    return first;
  }

  void wait_for_submitters() const noexcept {
    while (submitting_.load(std::memory_order_seq_cst) != 0) yield_cpu();
  }

  // find_work: the own deque (newest first), then outside tasks oldest first — the own inbox, the
  // other inboxes, a new batch from the injection list — then the other deques (oldest first).
  // Other workers' queues are visited only where their WorkMap bit is set.
  Runnable* find_work(const WorkerContext& ctx) {
    WorkerSlot& me = *ctx.slot;
    if (Runnable* t = me.deque.pop()) return t;
    deque_map_.unmark(ctx.index);  // empty, and only this worker pushes into it
    if (Runnable* t = me.inbox.steal()) return t;
    if (me.inbox.size_hint() == 0) inbox_map_.unmark(ctx.index);  // (steal may have lost a race)
    if (Runnable* t = steal_from_others(ctx, &WorkerSlot::inbox, inbox_map_)) return t;
    if (Runnable* t = take_injected(ctx)) return t;
    return steal_from_others(ctx, &WorkerSlot::deque, deque_map_);
  }
  // steal_from_others(ctx, which, map): the oldest task of the first other worker whose `which`
  // queue (inbox or deque, marked in map) has one, looking at the workers after ctx's in turn.
  Runnable* steal_from_others(const WorkerContext& ctx, WorkDeque<Runnable> WorkerSlot::*which,
                              const WorkMap& map) {
    Runnable* found = nullptr;
    map.any(ctx.index + 1, spawned_.load(std::memory_order_acquire), [&](std::size_t i) {
      if (i == ctx.index) return false;
      WorkDeque<Runnable>& victim = (*slots_[i]).*which;
      if (victim.size_hint() == 0) return false;
      found = victim.steal();
      return found != nullptr;
    });
    return found;
  }

  // any_work_visible(): seq_cst loads throughout (the injection list's ends, the WorkMaps' words,
  // the queues' ends), so that a parking worker's re-check after EventCount::prepare() and a
  // submit's publish-then-notify cannot both miss.
  [[nodiscard]] bool any_work_visible() const noexcept {
    if (injected_visible()) return true;
    const std::size_t n = spawned_.load(std::memory_order_acquire);
    return inbox_map_.any(0, n, [&](std::size_t i) { return slots_[i]->inbox.size_hint() != 0; }) ||
           deque_map_.any(0, n, [&](std::size_t i) { return slots_[i]->deque.size_hint() != 0; });
  }

  [[nodiscard]] bool exit_now() const noexcept {
    // A submit announced before the flag was set may still be linking its task: wait for it.
    return shutdown_flag_.load(std::memory_order_seq_cst) &&
           submitting_.load(std::memory_order_seq_cst) == 0 && !any_work_visible();
  }

  // search(): look for work for up to kSearchBudget — first a short spin of cpu_relax() pauses
  // (under a steady stream of work the next task usually arrives within it), then yielding the
  // CPU between looks — counted in searching_ so that submits skip the wake-up while someone is
  // looking. At most max_searchers_ (the CPU count) workers search at once: the others go to sleep
  // at once (with thousands of workers, idle ones looking for work would otherwise take the CPUs
  // from those that have it). The last searcher to find work wakes a sleeper if more is visible
  // (it may have been skipped for this searcher's sake).
  // searched: set when this worker did search (false: refused, enough others search).
  // counted_idle: the worker is counted in idle_ (see spawn_if_needed): each look then uncounts it
  // first and counts it again when it finds nothing, so that a submit never counts as idle a
  // worker that has taken a task; a task found returns uncounted.
  Runnable* search(WorkerContext& ctx, bool& searched, bool counted_idle) {
    std::uint32_t n = searching_.load(std::memory_order_seq_cst);
    do {
      if (n >= max_searchers_) return nullptr;
    } while (!searching_.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst));
    searched = true;
    Runnable* found = nullptr;
    const auto look = [&] {
      if (!counted_idle) return find_work(ctx);
      idle_.fetch_sub(1, std::memory_order_seq_cst);
      Runnable* t = find_work(ctx);
      if (t == nullptr) idle_.fetch_add(1, std::memory_order_seq_cst);
      return t;
    };
    for (int i = 0; i < kSpinPauses && found == nullptr; ++i) {
      cpu_relax();
      found = look();
    }
    const auto end = Clock::now() + kSearchBudget;
    while (found == nullptr) {
      if (shutdown_flag_.load(std::memory_order_relaxed) && !any_work_visible()) break;
      if (Clock::now() >= end) break;
      yield_cpu();
      found = look();
    }
    if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1 && found != nullptr &&
        any_work_visible()) {
      work_ec_.notify();
    }
    return found;
  }

  // sleep(even_if_work): waits for a notify; returns at once when work is visible (unless
  // even_if_work and someone searches) or the pool shuts down.
  void sleep(bool even_if_work = false) {
    const std::uint32_t ticket = work_ec_.prepare();
    const bool others_search = even_if_work && searching_.load(std::memory_order_seq_cst) != 0;
    if ((!others_search && any_work_visible()) || shutdown_flag_.load(std::memory_order_seq_cst)) {
      work_ec_.cancel();
      return;
    }
    work_ec_.wait(ticket, Deadline::infinite());
  }

  // ---- running ----------------------------------------------------------------------------------
  void run_task(WorkerSlot& me, Runnable* t) {
    if (cancel_flag_.load(std::memory_order_relaxed)) {
      drop(t, nullptr);
      bump(me.started);
      bump(me.finished);
      return;
    }
    if (broken_flag_.load(std::memory_order_relaxed)) {
      drop(t, broken_error());
      bump(me.started);
      bump(me.finished);
      return;
    }
    const int depth = me.depth.load(std::memory_order_relaxed);
    if (depth < kMaxDepth) {
      me.stack[static_cast<std::size_t>(depth)].store(&t->future_state(),
                                                      std::memory_order_relaxed);
    }
    me.depth.store(depth + 1, std::memory_order_release);
    bump(me.started);
    t->run();
    if (depth < kMaxDepth) {
      me.stack[static_cast<std::size_t>(depth)].store(nullptr, std::memory_order_relaxed);
    }
    me.depth.store(depth, std::memory_order_release);
    RunnablePtr(t).reset();
    bump(me.finished);
  }

  static void drop(Runnable* t, std::exception_ptr why) noexcept {
    t->abandon(std::move(why));
    RunnablePtr(t).reset();
  }
  // drop_injected(why): settles every task still in the injection list (cancelled when why is
  // null, else finished with why); called once no submit can land any more.
  void drop_injected(const std::exception_ptr& why) noexcept {
    std::scoped_lock lk(inj_consumer_mu_);
    while (Runnable* t = pop_one()) {
      drop(t, why);
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // ---- deadlock check ---------------------------------------------------------------------------
  // The worker whose task stack holds state s, or null (s is queued, done, or not a task of ours).
  WorkerSlot* runner_of(const FutureStateBase* s) const noexcept {
    const std::size_t n = spawned_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
      const WorkerSlot& w = *slots_[i];
      const int depth = std::min(w.depth.load(std::memory_order_acquire), kMaxDepth);
      for (int k = 0; k < depth; ++k) {
        if (w.stack[static_cast<std::size_t>(k)].load(std::memory_order_relaxed) == s) {
          return slots_[i].get();
        }
      }
    }
    return nullptr;
  }

  // check_deadlock(me, s, published): publish that `me` is blocked on s, then follow the chain
  // s → the worker running s → the future that worker is blocked on → … If it leads back to `me`,
  // no task on the chain can ever finish. A cycle is reported only when seen twice, one wait slice
  // apart, so that a chain read while a task was finishing never raises a false DeadlockError.
  void check_deadlock(WorkerSlot& me, FutureStateBase& s, bool& published) {
    std::scoped_lock lk(graph_mu_);
    me.waiting_on = &s;
    published = true;
    std::vector<const WorkerSlot*> chain;
    const FutureStateBase* cur = &s;
    for (std::size_t hops = 0; hops <= slots_.size(); ++hops) {
      if (cur->done()) break;
      // A state no task of its own finishes (map()'s gate) names the task that will finish it.
      const FutureStateBase* by = cur->finisher();
      const WorkerSlot* runner = runner_of(by != nullptr ? by : cur);
      if (runner == nullptr) break;
      if (runner == &me) {
        if (me.suspect == &s) throw DeadlockError(describe_cycle(me, chain));
        me.suspect = &s;
        return;
      }
      chain.push_back(runner);
      cur = runner->waiting_on;
      if (cur == nullptr) break;
    }
    me.suspect = nullptr;
  }

  static std::string describe_cycle(const WorkerSlot& me,
                                    const std::vector<const WorkerSlot*>& chain) {
    if (chain.empty()) {
      return "a wait that can never end: the task running on " + me.name +
             " waits for a future that only it can finish (its own, or one of a task it is "
             "itself running)";
    }
    std::string msg = "a wait that can never end: the task running on " + me.name;
    for (const WorkerSlot* w : chain)
      msg += " waits for the task running on " + w->name + ", which";
    msg += " waits for the task running on " + me.name;
    return msg;
  }

  // ---- broken pool ------------------------------------------------------------------------------
  static constexpr const char* kBrokenMessage =
      "A thread initializer failed, the thread pool is not usable anymore";
  static std::exception_ptr broken_error() noexcept {
    try {
      return std::make_exception_ptr(BrokenThreadPool(kBrokenMessage));
    } catch (...) {
      return std::current_exception();
    }
  }
  void break_pool() {
    broken_flag_.store(true, std::memory_order_seq_cst);
    wait_for_submitters();
    drop_injected(broken_error());
    work_ec_.notify(true);
  }

  void join_workers() {
    std::size_t n = 0;
    {
      std::scoped_lock lk(spawn_mu_);
      n = spawned_.load(std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < n; ++i) {
      WorkerSlot& w = *slots_[i];
      if (tls_worker.slot == &w) continue;  // never join ourselves
      w.thread->join();
    }
  }

  // Read-mostly: every submit and every look for work reads these; they change a few times in
  // a pool's life, so they share no cache line with a counter that changes per task.
  const std::uint32_t id_;  // the pool_id() of our futures
  const std::size_t max_workers_;
  // max_searchers_: how many workers may search for work at once (search()): the CPU count.
  const std::uint32_t max_searchers_ = std::max(2U, std::thread::hardware_concurrency());
  const std::function<void()> initializer_;
  const std::string prefix_;       // the workers' thread_name_prefix
  const std::size_t min_workers_;  // ThreadPoolOptions::min_workers
  const pid_t made_in_ = concur::detail::this_pid();
  std::vector<std::unique_ptr<WorkerSlot>> slots_;  // max_workers_ slots; spawned_ in use
  // Which slots' deques and inboxes may hold tasks (see WorkMap); their words change when a
  // worker's queue turns empty or non-empty, not per task.
  alignas(64) WorkMap deque_map_{max_workers_};
  WorkMap inbox_map_{max_workers_};
  std::atomic<std::size_t> spawned_{0};
  std::atomic<bool> shutdown_flag_{false};
  std::atomic<bool> cancel_flag_{false};
  std::atomic<bool> broken_flag_{false};

  alignas(64) FutexMutex spawn_mu_;
  std::atomic<std::uint32_t> idle_{0};  // idle workers, counted only until all are spawned
  std::atomic<std::uint64_t> dropped_{0};

  // The injection list (see inject / pop_one): producers exchange inj_back_; the consumer end
  // inj_front_ moves only under inj_consumer_mu_.
  struct Stub final : Runnable {
    void run() noexcept override {}
    FutureStateBase& future_state() noexcept override { std::terminate(); }
    void dispose() noexcept override {}
    void do_abandon(std::exception_ptr) noexcept override {}
  };
  Stub stub_;
  alignas(64) std::atomic<Runnable*> inj_back_{&stub_};
  std::atomic<std::uint32_t> submitting_{0};
  std::atomic<std::uint64_t> external_submitted_{0};
  std::atomic<std::uint64_t> external_taken_{0};  // written under inj_consumer_mu_
  alignas(64) std::atomic<Runnable*> inj_front_{&stub_};
  FutexMutex inj_consumer_mu_;

  alignas(64) std::atomic<std::uint32_t> searching_{0};
  EventCount work_ec_;

  FutexMutex graph_mu_;
};

}  // namespace detail

namespace {
// kMaxWorkersLimit: a sanity bound on max_workers (every worker slot is allocated up front).
constexpr std::size_t kMaxWorkersLimit = 4096;

// Forked copies (see thread_pool.hpp). g_adopt_mu serializes the child threads that first use a
// copied pool at once; a parent thread may have held it at the fork, so the child makes it anew.
// A parent's core is never destroyed in the child (its destructor would join threads that are not
// there): it stays in left_cores() for the child's life.
constinit std::mutex g_adopt_mu;

std::vector<std::shared_ptr<detail::PoolCore>>& left_cores() {
  static auto* cores = new std::vector<std::shared_ptr<detail::PoolCore>>;
  return *cores;
}

void leave_core(std::shared_ptr<detail::PoolCore> core) noexcept {
  std::scoped_lock lk(g_adopt_mu);
  try {
    left_cores().push_back(std::move(core));
  } catch (...) {
    new std::shared_ptr<detail::PoolCore>(std::move(core));  // NOLINT: kept for the child's life
  }
}

// In the child the forking thread is the only one. If it is a worker (its task called fork()), it
// is not one of any pool here: a wait in the task must not help (run the parent's queued tasks,
// take the parent's graph_mu_), and its submits go to the pool's copy as from outside.
void after_fork_in_child() noexcept {
  new (&g_adopt_mu) std::mutex();
  detail::tls_worker = detail::WorkerContext{};
}
[[maybe_unused]] const bool kAfterForkRegistered =
    ::pthread_atfork(nullptr, nullptr, &after_fork_in_child) == 0;
}  // namespace

// ---- ThreadPoolExecutor ---------------------------------------------------------------------

ThreadPoolExecutor::ThreadPoolExecutor() : ThreadPoolExecutor(Options{}) {}

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : ThreadPoolExecutor([&] {
        if (max_workers == 0) throw ValueError("max_workers must be greater than 0");
        Options o;
        o.max_workers = max_workers;
        return o;
      }()) {}

ThreadPoolExecutor::ThreadPoolExecutor(Options options)
    : core_([&] {
        if (options.max_workers > kMaxWorkersLimit) {
          throw ValueError("max_workers must be at most " + std::to_string(kMaxWorkersLimit) +
                           " (a negative count converted to size_t?)");
        }
        return std::make_shared<detail::PoolCore>(options);
      }()),
      made_in_(concur::detail::this_pid()) {
  if (options.min_workers > core_->max_workers()) {
    core_->shutdown(true, false);
    throw ValueError("min_workers (" + std::to_string(options.min_workers) +
                     ") must be at most max_workers (" + std::to_string(core_->max_workers()) +
                     ")");
  }
  try {
    core_->prestart(options.min_workers);
  } catch (...) {
    core_->shutdown(true, false);  // join the workers already started
    throw;
  }
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  if (made_in_.load(std::memory_order_acquire) != concur::detail::this_pid()) {
    leave_core(std::move(core_));  // a forked copy never used in this process
    return;
  }
  core_->shutdown(true, false);
}

detail::PoolCore& ThreadPoolExecutor::core() const {
  if (made_in_.load(std::memory_order_acquire) == concur::detail::this_pid()) [[likely]] {
    return *core_;
  }
  return adopt_after_fork(/*start=*/true);
}

detail::PoolCore& ThreadPoolExecutor::adopt_after_fork(bool start) const {
  std::scoped_lock lk(g_adopt_mu);
  const pid_t self = concur::detail::this_pid();
  if (made_in_.load(std::memory_order_relaxed) != self) {
    left_cores().reserve(left_cores().size() + 1);  // so that the push below cannot throw
    std::shared_ptr<detail::PoolCore> mine = core_->fresh_copy(start);
    left_cores().push_back(std::move(core_));
    core_ = std::move(mine);
    made_in_.store(self, std::memory_order_release);
  }
  return *core_;
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  if (made_in_.load(std::memory_order_acquire) == concur::detail::this_pid()) [[likely]] {
    core_->shutdown(wait, cancel_futures);
  } else {
    adopt_after_fork(/*start=*/false).shutdown(wait, cancel_futures);  // no workers to stop
  }
}

std::size_t ThreadPoolExecutor::max_workers() const noexcept {
  if (made_in_.load(std::memory_order_acquire) == concur::detail::this_pid()) [[likely]] {
    return core_->max_workers();
  }
  std::scoped_lock lk(g_adopt_mu);  // (another thread of a forked child may be adopting core_)
  return core_->max_workers();      // the parent's value is the copy's
}

ThreadPoolExecutor::Stats ThreadPoolExecutor::stats() const noexcept {
  // A forked copy not used yet has no workers and no tasks of its own.
  if (made_in_.load(std::memory_order_acquire) != concur::detail::this_pid()) return {};
  return core_->stats();
}

void ThreadPoolExecutor::execute(detail::RunnablePtr task) { core().execute(std::move(task)); }

std::shared_ptr<const detail::BulkGate> ThreadPoolExecutor::bulk_gate() const {
  core();
  return core_;
}

}  // namespace concur
