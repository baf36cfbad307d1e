// Streams on Boost.Asio: a connection's shared state (StreamState: the socket, the read buffer,
// the write buffers, the waiting tasks), servers (ServerState: acceptors, the connections and
// handler tasks they count), open_connection / start_server, TLS (SslContext, Asio's ssl::stream
// over the same socket), and the io_context service that closes every socket before the loop's
// io_context goes.
//
// Reads: a read that lacks bytes reads the socket into a small per-connection chunk — TCP: one
// non-blocking recv (from the loop's ready queue), and only when that finds nothing a wait for
// readability in the reactor, after which it reads; TLS: one async_read_some. What came is
// appended to the buffer — whether or not the reader is still waiting, so a cancelled read loses
// nothing — and, when the chunk came back full, the socket is read on without blocking (a burst)
// before the reader wakes. A TCP wait is withdrawn (cancellation slot) when its reader is
// cancelled; a TLS read is left to complete.
// Writes go to the kernel at once (TCP) and the rest through one async_write_some at a time.
//
// Every Asio completion handler runs on the loop's thread (the loop drives the io_context) and
// holds a shared_ptr to the state it completes, never a pointer to a task or an awaiter: it
// updates the state and wakes the tasks queued on it (TaskCore::wake), so a handler that arrives
// after its task was cancelled, or after the awaiter is gone, touches nothing dangling.
#include "concur/aio/streams.hpp"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "concur/aio/sockets.hpp"
#include "concur/future.hpp"
#include "os_error.hpp"
#include "sendfile.hpp"

namespace concur::aio {
namespace detail {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// kReadChunk: the most one socket read asks for.
constexpr std::size_t kReadChunk = 64 * 1024;
// kKeepBytes: an empty buffer keeps its storage up to this size (larger storage is freed, so an
// idle connection holds no buffer).
constexpr std::size_t kKeepBytes = 16 * 1024;
// kBindAttempts: port 0 on several addresses: how often the shared port is picked afresh when
// another process holds it on one of the other addresses.
constexpr int kBindAttempts = 8;
// kAcceptRetry: after EMFILE/ENFILE/ENOBUFS/ENOMEM, accepting resumes this much later.
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);
// kTcpChunk / kTlsChunk: the buffer of a read (what a connection waiting for data holds):
// small for TCP (a full chunk is followed by a burst of direct reads), one record for TLS (at most
// 16 KiB of plaintext).
constexpr std::size_t kTcpChunk = 4 * 1024;
constexpr std::size_t kTlsChunk = 16 * 1024;
// kBurstBytes: after a full chunk, how much more a read handler takes without blocking.
constexpr std::size_t kBurstBytes = 256 * 1024;

// ---- waiting: a FIFO of tasks suspended on one condition of a stream or server ----

class QueueWait;

// WaitQueue: the tasks waiting for one thing (data, drain, close). wake_all() unlinks each waiter
// before waking its task, so a task is woken once per suspension.
struct WaitQueue {
  QueueWait* head = nullptr;
  QueueWait* tail = nullptr;
  [[nodiscard]] bool empty() const noexcept { return head == nullptr; }
  void push(QueueWait* w) noexcept;
  void unlink(QueueWait* w) noexcept;
  void wake_all() noexcept;
};

// QueueWait: the awaiter of a WaitQueue (task.hpp's Waiter protocol). cancel() unlinks it, runs
// the optional on_cancel hook (a read withdraws its socket operation) and reschedules the task,
// which then raises CancelledError.
class QueueWait final : public Waiter {
 public:
  using aio_awaitable = void;
  explicit QueueWait(WaitQueue& q, void (*on_cancel)(void*) = nullptr, void* ctx = nullptr) noexcept
      : q_(&q), on_cancel_(on_cancel), ctx_(ctx) {}
  // Movable before it is awaited (g++ 12 moves a prvalue awaiter into the frame).
  QueueWait(QueueWait&& o) noexcept : Waiter(), q_(o.q_), on_cancel_(o.on_cancel_), ctx_(o.ctx_) {}
  QueueWait& operator=(QueueWait&&) = delete;
  ~QueueWait() {
    if (linked_) q_->unlink(this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> /*h*/) noexcept {
    task_ = tls_task;
    if (!task_->suspend_on(this)) return false;
    q_->push(this);
    return true;
  }
  void await_resume() { tls_task->check_cancel(); }
  bool cancel(TaskCore& task) noexcept override {
    if (linked_) {
      q_->unlink(this);
      if (on_cancel_ != nullptr) on_cancel_(ctx_);
      task.wake();
    }
    return false;
  }

 private:
  friend struct WaitQueue;
  WaitQueue* q_;
  void (*on_cancel_)(void*);
  void* ctx_;
  TaskCore* task_ = nullptr;
  QueueWait* prev_ = nullptr;
  QueueWait* next_ = nullptr;
  bool linked_ = false;
};

void WaitQueue::push(QueueWait* w) noexcept {
  w->prev_ = tail;
  w->next_ = nullptr;
  if (tail != nullptr) {
    tail->next_ = w;
  } else {
    head = w;
  }
  tail = w;
  w->linked_ = true;
}

void WaitQueue::unlink(QueueWait* w) noexcept {
  if (w->prev_ != nullptr) {
    w->prev_->next_ = w->next_;
  } else {
    head = w->next_;
  }
  if (w->next_ != nullptr) {
    w->next_->prev_ = w->prev_;
  } else {
    tail = w->prev_;
  }
  w->prev_ = w->next_ = nullptr;
  w->linked_ = false;
}

void WaitQueue::wake_all() noexcept {
  while (QueueWait* w = head) {
    unlink(w);
    w->task_->wake();
  }
}

// ---- waiting for one Asio operation (resolve, connect) ----

// OpState: what an operation's completion handler and its awaiter share.
struct OpState {
  TaskCore* task = nullptr;  // the waiting task; null once it gave up (cancelled)
  bool done = false;
  bool timed_out = false;  // a TLS handshake's bound expired
  error_code ec;
  asio::cancellation_signal signal;
  void complete(const error_code& e) noexcept {
    done = true;
    ec = e;
    if (TaskCore* t = std::exchange(task, nullptr)) t->wake();
  }
};

// OpWait: suspends until the operation completes. Cancelled, it withdraws the operation (the
// cancellation signal, or `abort` when given) and reschedules the task; the late completion then
// finds no task to wake.
class OpWait final : public Waiter {
 public:
  using aio_awaitable = void;
  explicit OpWait(std::shared_ptr<OpState> op, std::function<void()> abort = {}) noexcept
      : op_(std::move(op)), abort_(std::move(abort)) {}
  OpWait(OpWait&& o) noexcept : Waiter(), op_(std::move(o.op_)), abort_(std::move(o.abort_)) {}
  OpWait& operator=(OpWait&&) = delete;
  ~OpWait() {
    if (op_ && !op_->done) {
      op_->task = nullptr;
      withdraw();
    }
  }

  bool await_ready() const noexcept { return op_->done; }
  bool await_suspend(std::coroutine_handle<> /*h*/) noexcept {
    TaskCore* me = tls_task;
    if (!me->suspend_on(this)) return false;
    op_->task = me;
    return true;
  }
  void await_resume() { tls_task->check_cancel(); }
  bool cancel(TaskCore& task) noexcept override {
    if (op_->task != nullptr) {
      op_->task = nullptr;
      withdraw();
      task.wake();
    }
    return false;
  }

 private:
  void withdraw() noexcept {
    if (withdrawn_) return;
    withdrawn_ = true;
    try {
      if (abort_) {
        abort_();
      } else {
        op_->signal.emit(asio::cancellation_type::terminal);
      }
    } catch (...) {
    }
  }
  std::shared_ptr<OpState> op_;
  std::function<void()> abort_;
  bool withdrawn_ = false;
};

// ---- the read buffer ----

// ByteBuffer: bytes [head, tail) of an uninitialized array; reads append at the tail, readers
// consume at the head. prepare(n) makes room for n more bytes (compacting, or growing at least
// twofold); an emptied buffer frees storage above kKeepBytes.
class ByteBuffer {
 public:
  [[nodiscard]] std::string_view view() const noexcept {
    return {data_.get() + head_, tail_ - head_};
  }
  [[nodiscard]] std::size_t size() const noexcept { return tail_ - head_; }
  void consume(std::size_t n) noexcept {
    head_ += n;
    if (head_ == tail_) {
      head_ = tail_ = 0;
      if (cap_ > kKeepBytes) {
        data_.reset();
        cap_ = 0;
      }
    }
  }
  char* prepare(std::size_t n) {
    if (cap_ - tail_ >= n) return data_.get() + tail_;
    const std::size_t used = size();
    if (used + n <= cap_) {  // compact: move the live bytes to the front
      std::memmove(data_.get(), data_.get() + head_, used);
    } else {
      const std::size_t cap = std::max(cap_ * 2, used + n);
      std::unique_ptr<char[]> grown(new char[cap]);  // uninitialized: the bytes come from recv
      if (used > 0) std::memcpy(grown.get(), data_.get() + head_, used);
      data_ = std::move(grown);
      cap_ = cap;
    }
    head_ = 0;
    tail_ = used;
    return data_.get() + tail_;
  }
  void commit(std::size_t n) noexcept { tail_ += n; }
  void append(std::string_view bytes) {
    if (bytes.empty()) return;
    std::memcpy(prepare(bytes.size()), bytes.data(), bytes.size());
    commit(bytes.size());
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

// ---- memory for a connection's one pending TCP wait ----

// OpMemory: room for one Asio operation, kept by the connection. Asio recycles operation memory
// only through the thread's io_context call stack, and a read is started from the loop's ready
// queue, outside it: without this every wait would pay an aligned allocation and a free. One
// operation at a time uses it (read_pending); a larger or second one goes to operator new.
class OpMemory {
 public:
  void* allocate(std::size_t n) {
    if (!in_use_ && n <= sizeof bytes_) {
      in_use_ = true;
      return bytes_;
    }
    return ::operator new(n);
  }
  void deallocate(void* p) noexcept {
    if (p == bytes_) {
      in_use_ = false;
    } else {
      ::operator delete(p);
    }
  }

 private:
  alignas(std::max_align_t) unsigned char bytes_[256];  // Boost 1.81: a socket's wait takes 144
  bool in_use_ = false;
};

// OpAllocator<T>: the handler allocator (Asio's associated allocator) that draws on an OpMemory.
template <class T>
struct OpAllocator {
  using value_type = T;
  explicit OpAllocator(OpMemory* m) noexcept : mem(m) {}
  template <class U>
  OpAllocator(const OpAllocator<U>& o) noexcept : mem(o.mem) {}  // NOLINT: rebinding
  T* allocate(std::size_t n) { return static_cast<T*>(mem->allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t /*n*/) noexcept { mem->deallocate(p); }
  template <class U>
  bool operator==(const OpAllocator<U>& o) const noexcept {
    return mem == o.mem;
  }
  OpMemory* mem;
};

// ---- errors (errno_text, os_error, py_address: os_error.hpp) ----

bool is_ssl_error(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() ||
         ec.category() == asio::ssl::error::get_stream_category();
}

// error_of(ec): an Asio error as a concur exception ("[Errno 104] Connection reset by peer").
std::exception_ptr error_of(const error_code& ec) {
  if (ec.category() == boost::system::system_category() ||
      ec.category() == boost::system::generic_category()) {
    return os_error(ec.value(), errno_text(ec.value()));
  }
  if (is_ssl_error(ec)) return std::make_exception_ptr(SSLError(ec.message()));
  return std::make_exception_ptr(OSError(0, ec.message()));
}

bool is_cancelled(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

Endpoint endpoint_of(const tcp::endpoint& ep) {
  return Endpoint{ep.address().to_string(), ep.port(), ep.address().is_v6(), false};
}

// unix_name(fd, peer): an AF_UNIX socket's own (getsockname) or peer's (getpeername) address.
Endpoint unix_name(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                     : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r != 0) return Endpoint{"", 0, false, true};
  return sockaddr_endpoint(ss, len);
}

asio::io_context& io_of(LoopCore& loop) {
  return *static_cast<asio::io_context*>(loop.owner().native_handle());
}

// ---- the registry: every socket of a loop is closed before its io_context is destroyed ----

// IoResource: a stream or server registered with its io_context's StreamService.
class IoResource {
 public:
  // io_shutdown(): the io_context is going: close the sockets now; later calls find `dead`.
  virtual void io_shutdown() noexcept = 0;
  IoResource* prev_ = nullptr;
  IoResource* next_ = nullptr;

 protected:
  IoResource() = default;
  ~IoResource() = default;
  IoResource(const IoResource&) = delete;
  IoResource& operator=(const IoResource&) = delete;
};

// StreamService: an Asio service of the loop's io_context. Its shutdown() runs when the
// io_context is destroyed (Loop's destructor), before any service is destroyed: it closes the
// sockets of the streams and servers still alive, so handles that outlive their loop never touch
// a destroyed reactor.
class StreamService final : public asio::execution_context::service {
 public:
  static asio::execution_context::id id;
  explicit StreamService(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}
  void add(IoResource* r) noexcept {
    r->prev_ = nullptr;
    r->next_ = head_;
    if (head_ != nullptr) head_->prev_ = r;
    head_ = r;
  }
  void remove(IoResource* r) noexcept {
    if (r->prev_ != nullptr) {
      r->prev_->next_ = r->next_;
    } else if (head_ == r) {
      head_ = r->next_;
    }
    if (r->next_ != nullptr) r->next_->prev_ = r->prev_;
    r->prev_ = r->next_ = nullptr;
  }

 private:
  void shutdown() override {
    while (IoResource* r = head_) {
      remove(r);
      r->io_shutdown();
    }
  }
  IoResource* head_ = nullptr;
};
asio::execution_context::id StreamService::id;

}  // namespace

struct ServerState;

// ---- StreamState: one connection (or a fed reader without a socket) ----

struct StreamState final : IoResource, std::enable_shared_from_this<StreamState> {
  // StreamState(io, limit): a socket not yet open on io (open_connection), or, with a null io, a
  // reader fed by feed_data(). StreamState(peer, limit): an accepted connection.
  StreamState(asio::io_context* io, std::size_t read_limit) : limit(read_limit) {
    if (io != nullptr) {
      service = &asio::use_service<StreamService>(*io);
      service->add(this);
      sock.emplace(*io);
    }
  }
  StreamState(tcp::socket accepted, std::size_t read_limit) : limit(read_limit) {
    service = &asio::use_service<StreamService>(accepted.get_executor().context());
    service->add(this);
    sock.emplace(std::move(accepted));
  }
  ~StreamState();
  StreamState(const StreamState&) = delete;
  StreamState& operator=(const StreamState&) = delete;

  StreamService* service = nullptr;  // null: a reader fed by feed_data()
  LoopCore* loop = nullptr;          // the loop a connection belongs to (null: a fed reader)
  std::optional<tcp::socket> sock;
  bool dead = false;                    // the loop's io_context is gone
  std::shared_ptr<ServerState> server;  // an accepted connection's server
  Endpoint peer, local;

  // Reading: rbuf holds what was received and not read; one read operation at a time fills it.
  ByteBuffer rbuf;
  std::size_t limit;
  bool eof = false;
  std::exception_ptr error;   // what reads (and drain) raise
  bool read_pending = false;  // a TCP wait for readability or a TLS async_read_some is pending
  // A TCP read is started from the loop's ready queue (start_node), not inside the read() that
  // asks for it: the rest of the batch runs first, so a reply that the peer sends meanwhile is
  // taken by the first recv instead of an EAGAIN plus a reactor round (the file comment).
  struct StartNode final : ReadyNode {
    StreamState* state = nullptr;
    std::shared_ptr<StreamState> hold;  // keeps the state alive while the node is queued
  } start_node;
  bool start_queued = false;
  std::unique_ptr<char[]> chunk;          // reads land here (kTcpChunk or kTlsChunk)
  asio::cancellation_signal read_cancel;  // withdraws a TCP wait
  OpMemory read_mem;                      // a TCP wait's operation
  WaitQueue read_q;

  // Writing: wflight[woff..) is being written by the one write operation; wbuf collects the rest.
  std::string wflight;
  std::size_t woff = 0;
  std::string wbuf;
  bool writing = false;
  bool paused = false;  // above the high-water mark; drain() waits until low is reached
  std::size_t high = kDefaultHighWater;
  std::size_t low = kDefaultLowWater;
  bool eof_requested = false;  // write_eof(): shut down sending once flushed
  // StreamWriter::sendfile() owns the socket's sending: `writing` stays true meanwhile, so
  // write() only buffers (sent after the file) and close()/write_eof() wait for it.
  bool sendfile_active = false;
  WaitQueue flushed_q;   // sendfile(): waiting for everything written before it to be sent
  bool closing = false;  // close()/abort() called, or the connection was lost
  bool closed = false;   // the socket is closed
  std::exception_ptr close_error;  // what ended the connection (wait_closed raises it)
  WaitQueue drain_q;
  WaitQueue closed_q;

  // TLS: the ssl::stream over `sock` (declared after its context and socket: destroyed first),
  // the handshake's outcome, the close_notify exchange.
  std::shared_ptr<SslContextCore> tls_context;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;
  bool tls_ready = false;  // the handshake succeeded (before: closing just closes the socket)
  bool tls_shutdown_wanted = false;
  bool tls_shutdown_started = false;
  std::chrono::milliseconds tls_shutdown_timeout{30'000};
  std::unique_ptr<asio::steady_timer> tls_timer;
  std::string tls_hostname;  // the name a client checks the certificate against

  // attach(is_tcp): the socket is connected: cache its names, TCP_NODELAY, non-blocking writes.
  // A Unix stream (is_tcp false) lives in the same tcp::socket — reads, writes, shutdown and close
  // are the same system calls for any stream socket — but its names are AF_UNIX paths and it has
  // no TCP_NODELAY (docs/internals/aio-streams.md, "Unix streams").
  void attach(bool is_tcp = true) {
    error_code ec;
    if (!is_tcp) {
      sock->non_blocking(true, ec);
      peer = unix_name(sock->native_handle(), true);
      local = unix_name(sock->native_handle(), false);
      return;
    }
    sock->set_option(tcp::no_delay(true), ec);
    sock->non_blocking(true, ec);
    const tcp::endpoint r = sock->remote_endpoint(ec);
    if (!ec) peer = endpoint_of(r);
    const tcp::endpoint l = sock->local_endpoint(ec);
    if (!ec) local = endpoint_of(l);
  }

  void io_shutdown() noexcept override {
    dead = true;
    closing = closed = eof = true;
    read_pending = false;  // its handler is destroyed, never run
    read_cancel.slot().clear();
    tls_timer.reset();
    tls.reset();
    sock.reset();
  }

  // ---- reading ----
  [[nodiscard]] std::string_view data() const noexcept { return rbuf.view(); }
  [[nodiscard]] std::size_t size() const noexcept { return rbuf.size(); }
  void consume(std::size_t n) noexcept { rbuf.consume(n); }
  std::string take(std::size_t n) {
    std::string out(data().substr(0, n));
    consume(out.size());
    return out;
  }
  void throw_if_error() const {
    if (error) std::rethrow_exception(error);
  }
  // check_loop(what): a connection is used from its own loop's thread only.
  void check_loop(const char* what) const {
    if (loop != nullptr && !dead && tls_loop != loop) {
      throw RuntimeError(std::string(what) +
                         ": the stream belongs to another event loop (or to none running here)");
    }
  }
  [[nodiscard]] bool can_read_more() const noexcept {
    return sock.has_value() && !eof && !error && !closing;
  }

  // burst(): more non-blocking reads of the socket after a full chunk, up to kBurstBytes, until
  // it has nothing (or EOF, or an error). The kernel's bytes land in a per-thread scratch area,
  // so the buffer only ever holds what was received.
  void burst() {
    thread_local const std::unique_ptr<char[]> scratch(new char[kReadChunk]);
    for (std::size_t taken = 0; taken < kBurstBytes && can_read_more();) {
      error_code ec;
      const std::size_t n = sock->read_some(asio::buffer(scratch.get(), kReadChunk), ec);
      rbuf.append(std::string_view(scratch.get(), n));
      taken += n;
      if (!ec) continue;
      if (ec == asio::error::eof) {
        eof = true;
      } else if (ec != asio::error::would_block && ec != asio::error::try_again &&
                 ec != asio::error::interrupted) {
        fatal(ec);
      }
      return;
    }
  }

  // wait_for_data(what, self): the awaiter a read suspends on until the buffer changes (bytes,
  // EOF, an error, close(), feed_data()); starts the socket read when none is pending (self: the
  // caller's owning pointer to this state, which the read holds). RuntimeError when another task
  // waits already.
  QueueWait wait_for_data(const char* what, const std::shared_ptr<StreamState>& self) {
    if (dead) throw RuntimeError(std::string(what) + "(): the stream's event loop is closed");
    check_loop(what);
    if (!read_q.empty()) {
      throw RuntimeError(std::string(what) +
                         "() called while another coroutine is already waiting for incoming data");
    }
    if (can_read_more() && !read_pending) {
      if (tls) {
        start_read(self);
      } else if (!start_queued) {
        queue_start(self);
      }
    }
    if (tls) return QueueWait(read_q);  // a TLS read is not withdrawn (see the file comment)
    return QueueWait(read_q, &StreamState::read_wait_cancelled, this);
  }
  static void read_wait_cancelled(void* self) noexcept {
    auto* s = static_cast<StreamState*>(self);
    if (s->read_q.empty()) s->cancel_read();
  }
  // queue_start(owner): start_read() in a later step of the loop, if a reader still waits then.
  void queue_start(const std::shared_ptr<StreamState>& owner) {
    start_queued = true;
    start_node.state = this;
    start_node.hold = owner;
    start_node.run = [](ReadyNode* n) noexcept {
      auto* node = static_cast<StartNode*>(n);
      const std::shared_ptr<StreamState> self = std::move(node->hold);
      self->start_queued = false;
      if (!self->read_pending && !self->read_q.empty() && self->can_read_more()) {
        try {
          self->start_read(self);
        } catch (...) {
          self->set_exception(std::current_exception());
        }
      }
    };
    start_node.drop = [](ReadyNode* n) noexcept {
      auto* node = static_cast<StartNode*>(n);
      node->state->start_queued = false;
      node->hold.reset();
    };
    loop->push(&start_node);
  }
  // start_read(): TLS: one async_read_some into the chunk (on_read). TCP: the socket is tried at
  // once (the peer's bytes are usually there by now: see queue_start); only when it has nothing
  // does the connection wait for readability in the reactor (on_readable), so the common read
  // costs one recv and no Asio operation. self: this state's owning pointer.
  void start_read(const std::shared_ptr<StreamState>& self) {
    if (!tls) {
      if (read_now()) {
        read_q.wake_all();
      } else {
        wait_readable(self);
      }
      return;
    }
    if (!chunk) chunk.reset(new char[kTlsChunk]);
    read_pending = true;
    tls->async_read_some(asio::buffer(chunk.get(), kTlsChunk),
                         [self](const error_code& ec, std::size_t n) { self->on_read(ec, n); });
  }
  // read_now(): TCP: one non-blocking read of up to a chunk into the buffer (a full chunk is
  // followed by a burst); records EOF or the error. False when the socket had nothing (EAGAIN).
  // (EAGAIN must be what ends it: the reactor's epoll is edge-triggered, so a wait started while
  // bytes sit unread would not end; hence EINTR reads again.)
  bool read_now() {
    if (!chunk) chunk.reset(new char[kTcpChunk]);
    error_code ec;
    std::size_t n = 0;
    do {
      n = sock->read_some(asio::buffer(chunk.get(), kTcpChunk), ec);
    } while (ec == asio::error::interrupted && n == 0);
    rbuf.append(std::string_view(chunk.get(), n));
    if (!ec) {
      if (n == kTcpChunk) burst();
      return true;
    }
    if (ec == asio::error::eof) {
      eof = true;
    } else if (ec == asio::error::would_block || ec == asio::error::try_again ||
               ec == asio::error::interrupted) {
      return n > 0;
    } else {
      fatal(ec);
    }
    return true;
  }
  // TcpWaitDone: the handler of a TCP wait: its operation lives in read_mem, it is withdrawn
  // through read_cancel (whose slot keeps its handler's memory from one wait to the next:
  // cancel_read() only emits while a wait is pending).
  struct TcpWaitDone {
    std::shared_ptr<StreamState> self;
    using allocator_type = OpAllocator<void>;
    [[nodiscard]] allocator_type get_allocator() const noexcept {
      return allocator_type(&self->read_mem);
    }
    using cancellation_slot_type = asio::cancellation_slot;
    [[nodiscard]] cancellation_slot_type get_cancellation_slot() const noexcept {
      return self->read_cancel.slot();
    }
    void operator()(const error_code& ec) const { self->on_readable(ec); }
  };
  // wait_readable(self): TCP: waits in the reactor until the socket is readable (on_readable).
  void wait_readable(std::shared_ptr<StreamState> self) {
    read_pending = true;
    sock->async_wait(tcp::socket::wait_read, TcpWaitDone{std::move(self)});
  }
  // cancel_read(): withdraws a pending TCP wait (one that already completed reads anyway).
  void cancel_read() noexcept {
    if (read_pending && !tls) read_cancel.emit(asio::cancellation_type::terminal);
  }
  // on_readable(ec): the TCP wait ended: read what came (whether or not anybody still waits, as
  // a completed TLS read keeps its bytes); readable but empty (spurious): wait again while a
  // reader waits.
  void on_readable(const error_code& ec) {
    read_pending = false;
    if (!ec && can_read_more()) {
      if (!read_now()) {
        if (!read_q.empty()) wait_readable(shared_from_this());
        return;
      }
    } else if (ec && ec != asio::error::operation_aborted && !closed && !closing) {
      fatal(ec);  // withdrawn (a cancelled reader, close()) is not an error
    }
    read_q.wake_all();
  }
  // on_read(ec, n): a TLS read completed.
  void on_read(const error_code& ec, std::size_t n) {
    read_pending = false;
    if (!closed) rbuf.append(std::string_view(chunk.get(), n));
    if (!ec || closed) {
      // (TLS reads take at most one record: no burst)
    } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      eof = true;  // close_notify, or a peer that closed TCP without it
    } else if (ec == asio::error::operation_aborted) {
      // withdrawn: close(), or the TLS shutdown
    } else if (!closing) {
      fatal(ec);
    }
    if (tls_shutdown_wanted && !closed) start_tls_shutdown();
    read_q.wake_all();
  }
  void feed_data(std::string_view bytes) {
    if (eof && !closing) throw RuntimeError("feed_data() after feed_eof()");
    if (bytes.empty()) return;
    rbuf.append(bytes);
    read_q.wake_all();
  }
  void feed_eof() {
    eof = true;
    read_q.wake_all();
  }
  void set_exception(std::exception_ptr e) {
    error = std::move(e);
    read_q.wake_all();
  }

  // ---- writing ----
  [[nodiscard]] std::size_t pending() const noexcept {
    return (wflight.size() - woff) + wbuf.size();
  }
  void write(std::string_view bytes) {
    if (eof_requested) throw RuntimeError("Cannot call write() after write_eof()");
    check_loop("write()");
    if (closing || !sock || bytes.empty()) return;  // discarded once closing (Python)
    if (!writing && pending() == 0 && !tls) {
      // Nothing queued: hand the bytes to the kernel now (non-blocking), queue what is left.
      error_code ec;
      std::size_t n = sock->write_some(asio::buffer(bytes.data(), bytes.size()), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        n = 0;
      } else if (ec) {
        fatal(ec);
        return;
      }
      bytes.remove_prefix(n);
      if (bytes.empty()) return;
    }
    wbuf.append(bytes);
    if (!writing) start_write();
    if (!paused && pending() > high) paused = true;
  }
  void start_write() {
    if (woff == wflight.size()) {
      wflight.clear();
      woff = 0;
      wflight.swap(wbuf);
    }
    writing = true;
    auto done = [self = shared_from_this()](const error_code& ec, std::size_t n) {
      self->on_write(ec, n);
    };
    const auto bytes = asio::buffer(wflight.data() + woff, wflight.size() - woff);
    if (tls) {
      tls->async_write_some(bytes, std::move(done));
    } else {
      sock->async_write_some(bytes, std::move(done));
    }
  }
  void on_write(const error_code& ec, std::size_t n) {
    writing = false;
    if (closed) return;  // abort(), or a fatal error: the buffers are dropped
    if (ec) {
      fatal(ec);
      return;
    }
    woff += n;
    if (pending() > 0) start_write();
    maybe_resume();
    if (pending() == 0) {
      // Flushed: an idle connection keeps no large write buffer.
      wflight.clear();
      woff = 0;
      if (wflight.capacity() > kKeepBytes) std::string().swap(wflight);
      if (wbuf.capacity() > kKeepBytes) std::string().swap(wbuf);
      flushed_q.wake_all();
      if (closing) {
        begin_close();
      } else if (eof_requested) {
        shutdown_send();
      }
    }
  }
  void maybe_resume() noexcept {
    if (paused && pending() <= low) {
      paused = false;
      drain_q.wake_all();
    }
  }
  void shutdown_send() {
    error_code ec;
    sock->shutdown(tcp::socket::shutdown_send, ec);
  }
  void write_eof() {
    if (tls) throw RuntimeError("write_eof(): a TLS stream cannot half-close (can_write_eof())");
    if (closing || eof_requested) return;
    eof_requested = true;
    if (!writing && pending() == 0 && sock) shutdown_send();
  }
  void set_limits(std::size_t new_high, std::size_t new_low) {
    high = new_high;
    low = new_low;
    if (!paused && pending() > high) paused = true;
    maybe_resume();
  }

  // ---- closing ----
  // close(): no more reading (the reader sees EOF), close once the buffer is sent.
  void close() {
    if (closing) return;
    closing = true;
    eof = true;
    cancel_read();
    read_q.wake_all();
    if (!writing && pending() == 0) begin_close();
  }
  // begin_close(): the buffer is sent: close the socket; TLS first exchanges close_notify.
  void begin_close() {
    if (!tls || !tls_ready || closed) {
      finish_close();
      return;
    }
    tls_shutdown_wanted = true;
    if (read_pending) {
      // The pending read must end before the shutdown uses the ssl::stream: withdraw it (its
      // handler starts the shutdown). Nothing is being written: the buffer was sent.
      error_code ignored;
      sock->cancel(ignored);
      return;
    }
    start_tls_shutdown();
  }
  // start_tls_shutdown(): sends close_notify and waits for the peer's, bounded by the timeout.
  void start_tls_shutdown() {
    if (tls_shutdown_started || closed) return;
    tls_shutdown_started = true;
    tls_timer = std::make_unique<asio::steady_timer>(sock->get_executor());
    tls_timer->expires_after(tls_shutdown_timeout);
    tls_timer->async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->finish_close();  // the peer never answered: close anyway
    });
    tls->async_shutdown([self = shared_from_this()](const error_code&) { self->finish_close(); });
  }
  // abort(): close now, dropping the buffer.
  void abort() {
    closing = true;
    eof = true;
    wbuf.clear();
    finish_close();
  }
  // fatal(ec): the connection failed: reads, drain() and wait_closed() raise the error.
  void fatal(const error_code& ec) {
    std::exception_ptr e = error_of(ec);
    if (!error) error = e;
    close_error = e;
    abort();
  }
  void finish_close();
};

// ---- ServerState ----

struct ServerState final : IoResource, std::enable_shared_from_this<ServerState> {
  ServerState(asio::io_context& ctx, LoopCore& l, ClientConnected h, ServerOptions o,
              std::shared_ptr<SslContextCore> tls)
      : io(&ctx), loop(&l), handler(std::move(h)), options(o), ssl(std::move(tls)) {
    service = &asio::use_service<StreamService>(ctx);
    service->add(this);
  }
  ~ServerState() {
    if (!dead) service->remove(this);
  }
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;

  struct Listener {
    explicit Listener(asio::io_context& ctx) : acceptor(ctx), retry(ctx) {}
    tcp::acceptor acceptor;
    asio::steady_timer retry;
    bool listening = false;
  };

  StreamService* service;
  asio::io_context* io;
  LoopCore* loop;
  ClientConnected handler;
  ServerOptions options;  // options.ssl is null: `ssl` holds the context
  std::shared_ptr<SslContextCore> ssl;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<Endpoint> names;
  std::uint16_t port = 0;
  bool serving = false;
  bool closed = false;
  bool dead = false;
  bool forever_active = false;     // a task is in serve_forever()
  std::set<StreamState*> clients;  // accepted, not yet closed
  std::size_t handlers = 0;        // handler tasks not yet finished
  WaitQueue closed_q;              // wait_closed()
  WaitQueue forever_q;             // serve_forever()

  // A Unix server's socket file (start_unix_server): removed by close() when cleanup_socket is
  // on and the path still names this socket (the same inode; Python 3.13).
  bool unix_server = false;
  std::string unix_path;
  dev_t unix_dev = 0;
  ino_t unix_ino = 0;

  void io_shutdown() noexcept override {
    dead = true;
    closed = true;
    serving = false;
    listeners.clear();
    cleanup_unix_path();
  }

  // bind_unix(path): one listening socket bound to the AF_UNIX path (a stale socket file was
  // removed by the caller).
  void bind_unix(const std::string& path);
  void cleanup_unix_path() noexcept {
    if (!unix_server || unix_path.empty() || unix_path[0] == '\0' || !options.cleanup_socket) {
      return;
    }
    struct stat st {};
    if (::stat(unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == unix_dev &&
        st.st_ino == unix_ino) {
      ::unlink(unix_path.c_str());
    }
    unix_path.clear();  // once
  }

  // bind(endpoints, requested_port): one listening socket per address, all on one port.
  void bind(const std::vector<tcp::endpoint>& endpoints, std::uint16_t requested_port);
  void start_serving();
  void accept(std::size_t i);
  void on_accept(std::size_t i, const error_code& ec, tcp::socket peer);
  void spawn(tcp::socket peer);
  void close() noexcept {
    if (closed) return;
    closed = true;
    serving = false;
    for (auto& l : listeners) {
      error_code ignored;
      l->acceptor.close(ignored);
      try {
        l->retry.cancel();
      } catch (...) {
      }
    }
    cleanup_unix_path();
    forever_q.wake_all();
    check_done();
  }
  [[nodiscard]] bool done() const noexcept { return closed && handlers == 0 && clients.empty(); }
  void check_done() noexcept {
    if (done()) closed_q.wake_all();
  }
  void connection_closed(StreamState* s) noexcept {
    clients.erase(s);
    check_done();
  }
  std::vector<std::shared_ptr<StreamState>> live_clients() const {
    std::vector<std::shared_ptr<StreamState>> out;
    out.reserve(clients.size());
    for (StreamState* s : clients) out.push_back(s->shared_from_this());
    return out;
  }
};

StreamState::~StreamState() {
  if (server) server->clients.erase(this);
  if (service != nullptr && !dead) service->remove(this);
}

void StreamState::finish_close() {
  if (closed) return;
  closing = closed = eof = true;
  if (tls_timer) tls_timer->cancel();
  if (sock) {
    error_code ignored;
    sock->close(ignored);  // withdraws the pending read and write
  }
  read_q.wake_all();
  drain_q.wake_all();
  flushed_q.wake_all();
  closed_q.wake_all();
  if (server) server->connection_closed(this);
}

// SslContextCore: an SslContext's OpenSSL context and the settings applied to its connections.
struct SslContextCore {
  SslContextCore(asio::ssl::context::method method, bool server)
      : ctx(method), server_side(server) {}
  asio::ssl::context ctx;
  bool server_side;
  bool verify = false;
  bool check_hostname = false;
  void apply_verify_mode() {
    error_code ec;
    if (!verify) {
      ctx.set_verify_mode(asio::ssl::verify_none, ec);
    } else if (server_side) {
      ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    } else {
      ctx.set_verify_mode(asio::ssl::verify_peer, ec);
    }
    if (ec) throw SSLError("set_verify(): " + ec.message());
  }
};

// StreamCore: what a connection's StreamReader and StreamWriter copies share; the last one to go
// closes the connection (after its buffered bytes are sent).
struct StreamCore {
  explicit StreamCore(std::shared_ptr<StreamState> st) noexcept : s(std::move(st)) {}
  ~StreamCore() {
    try {
      s->close();
    } catch (...) {
      concur::detail::report_exception(std::current_exception());
    }
  }
  StreamCore(const StreamCore&) = delete;
  StreamCore& operator=(const StreamCore&) = delete;
  std::shared_ptr<StreamState> s;
};

// ServerCore: what a Server's copies share; the last one to go closes the server.
struct ServerCore {
  explicit ServerCore(std::shared_ptr<ServerState> st) noexcept : s(std::move(st)) {}
  ~ServerCore() { s->close(); }
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;
  std::shared_ptr<ServerState> s;
};

struct StreamAccess {
  static StreamReader reader(std::shared_ptr<StreamCore> c) { return StreamReader(std::move(c)); }
  static StreamWriter writer(std::shared_ptr<StreamCore> c) { return StreamWriter(std::move(c)); }
  static Server server(std::shared_ptr<ServerCore> c) { return Server(std::move(c)); }
  static const std::shared_ptr<StreamCore>& core(const StreamReader& r) {
    if (!r.core_) throw InvalidStateError("the StreamReader is empty (moved from)");
    return r.core_;
  }
  static const std::shared_ptr<StreamCore>& core(const StreamWriter& w) {
    if (!w.core_) throw InvalidStateError("the StreamWriter is empty");
    return w.core_;
  }
  static const std::shared_ptr<ServerCore>& core(const Server& s) {
    if (!s.core_) throw InvalidStateError("the Server is empty (moved from)");
    return s.core_;
  }
  static const std::shared_ptr<SslContextCore>& ssl(const SslContext& c) noexcept {
    return c.core_;
  }
  static SslContextCore& ssl_core(const SslContext& c) {
    if (!c.core_) throw InvalidStateError("the SslContext is empty");
    return *c.core_;
  }
  static void set_ssl(SslContext& c, std::shared_ptr<SslContextCore> core) noexcept {
    c.core_ = std::move(core);
  }
};

namespace {

// ---- the reads (coroutines holding their stream) ----

enum class Scan { kFound, kFoundPastLimit, kOverrun, kEof, kNeedMore };

// scan_until(s, sep, offset, at): one look for sep in the buffer (asyncio's readuntil loop body);
// offset carries where the next look starts.
Scan scan_until(const StreamState& s, std::string_view sep, std::size_t& offset,
                std::size_t& at) noexcept {
  const std::string_view d = s.data();
  if (offset > d.size()) offset = 0;  // another reader consumed meanwhile
  if (d.size() - offset >= sep.size()) {
    at = d.find(sep, offset);
    if (at != std::string_view::npos) return at > s.limit ? Scan::kFoundPastLimit : Scan::kFound;
    offset = d.size() + 1 - sep.size();
    if (offset > s.limit) return Scan::kOverrun;
  }
  return s.eof ? Scan::kEof : Scan::kNeedMore;
}

constexpr const char* kNotFound = "Separator is not found, and chunk exceed the limit";
constexpr const char* kPastLimit = "Separator is found, but chunk is longer than limit";

Task<std::string> read_impl(std::shared_ptr<StreamCore> c, std::ptrdiff_t n) {
  StreamState& s = *c->s;
  s.throw_if_error();
  if (n == 0) co_return std::string();
  if (n < 0) {
    while (!s.eof) {
      co_await s.wait_for_data("read", c->s);
      s.throw_if_error();
    }
    co_return s.take(s.size());
  }
  while (s.size() == 0 && !s.eof) {
    co_await s.wait_for_data("read", c->s);
    s.throw_if_error();
  }
  co_return s.take(static_cast<std::size_t>(n));
}

Task<std::string> readexactly_impl(std::shared_ptr<StreamCore> c, std::size_t n) {
  StreamState& s = *c->s;
  s.throw_if_error();
  while (s.size() < n) {
    if (s.eof) {
      std::string partial = s.take(s.size());
      throw IncompleteReadError(std::move(partial), n);
    }
    co_await s.wait_for_data("readexactly", c->s);
    s.throw_if_error();
  }
  co_return s.take(n);
}

Task<std::string> readuntil_impl(std::shared_ptr<StreamCore> c, std::string sep) {
  if (sep.empty()) throw ValueError("Separator should be at least one-byte string");
  StreamState& s = *c->s;
  s.throw_if_error();
  std::size_t offset = 0;
  std::size_t at = 0;
  for (;;) {
    switch (scan_until(s, sep, offset, at)) {
      case Scan::kFound:
        co_return s.take(at + sep.size());
      case Scan::kFoundPastLimit:
        throw LimitOverrunError(kPastLimit, at);
      case Scan::kOverrun:
        throw LimitOverrunError(kNotFound, offset);
      case Scan::kEof: {
        std::string partial = s.take(s.size());
        throw IncompleteReadError(std::move(partial), 0);
      }
      case Scan::kNeedMore:
        break;
    }
    co_await s.wait_for_data("readuntil", c->s);
    s.throw_if_error();
  }
}

Task<std::string> readline_impl(std::shared_ptr<StreamCore> c) {
  StreamState& s = *c->s;
  s.throw_if_error();
  constexpr std::string_view kSep = "\n";
  std::size_t offset = 0;
  std::size_t at = 0;
  for (;;) {
    switch (scan_until(s, kSep, offset, at)) {
      case Scan::kFound:
        co_return s.take(at + 1);
      case Scan::kFoundPastLimit:
        s.consume(at + 1);  // the over-long line goes, the rest stays (asyncio)
        throw ValueError(kPastLimit);
      case Scan::kOverrun:
        s.consume(s.size());  // no separator: the whole buffer goes (asyncio)
        throw ValueError(kNotFound);
      case Scan::kEof:
        co_return s.take(s.size());
      case Scan::kNeedMore:
        break;
    }
    co_await s.wait_for_data("readline", c->s);
    s.throw_if_error();
  }
}

Task<void> drain_impl(std::shared_ptr<StreamCore> c) {
  StreamState& s = *c->s;
  for (;;) {
    if (s.dead) throw RuntimeError("drain(): the stream's event loop is closed");
    s.check_loop("drain()");
    s.throw_if_error();
    if (s.closed) throw ConnectionResetError(0, "Connection lost");
    if (!s.paused) co_return;
    co_await QueueWait(s.drain_q);
    // A clean close while waiting ends the wait normally (asyncio); an error raises it.
    if (s.closed) {
      if (s.close_error) std::rethrow_exception(s.close_error);
      co_return;
    }
  }
}

// ---- StreamWriter::sendfile (Python's loop.sendfile(transport, ...)) ----

// SendfileHold: sendfile() owns the socket's sending from its construction (the write buffers
// are empty then) to its destruction, which hands sending back: what write() buffered meanwhile
// goes out, and a close() / write_eof() that waited is carried out.
class SendfileHold {
 public:
  explicit SendfileHold(StreamState& st) : s_(st.shared_from_this()) {
    s_->writing = true;
    s_->sendfile_active = true;
  }
  SendfileHold(const SendfileHold&) = delete;
  SendfileHold& operator=(const SendfileHold&) = delete;
  ~SendfileHold() {
    StreamState& s = *s_;
    s.sendfile_active = false;
    s.writing = false;
    if (s.closed) return;
    try {
      if (s.pending() > 0) {
        s.start_write();
      } else if (s.closing) {
        s.begin_close();
      } else if (s.eof_requested) {
        s.shutdown_send();
      }
    } catch (...) {
      s.abort();
    }
  }

 private:
  std::shared_ptr<StreamState> s_;
};

// stream_lost(s): the error a sendfile raises once its stream closed under it.
[[noreturn]] void stream_lost(const StreamState& s) {
  if (s.close_error) std::rethrow_exception(s.close_error);
  throw ConnectionResetError(0, "Connection lost");
}

// stream_sendfile_native: waits until everything written before is sent, then sendfile(2) on the
// stream's socket, waiting for writability (the socket's async_wait) between calls.
Task<std::size_t> stream_sendfile_native(std::shared_ptr<StreamCore> c, int file_fd,
                                         std::int64_t offset, std::size_t count) {
  StreamState& s = *c->s;
  struct stat st {};
  if (::fstat(file_fd, &st) != 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, "sendfile(): the file: " + errno_text(e)));
  }
  if (!S_ISREG(st.st_mode)) throw SendfileNotAvailableError("not a regular file");
  while (s.writing || s.pending() > 0) {  // Python's transport._make_empty_waiter()
    if (s.closed) stream_lost(s);
    co_await QueueWait(s.flushed_q);
  }
  if (s.closed || !s.sock) stream_lost(s);
  SendfileHold hold(s);
  FilePosition pos(file_fd, offset);
  auto off = static_cast<off_t>(offset);
  const int fd = s.sock->native_handle();
  for (;;) {
    if (count != 0 && pos.sent >= count) co_return pos.sent;
    const std::size_t want = std::min(count != 0 ? count - pos.sent : kSendfileMax, kSendfileMax);
    const ssize_t r = sendfile_no_sigpipe(fd, file_fd, &off, want);
    bool wait = false;
    if (r > 0) {
      pos.sent += static_cast<std::size_t>(r);
      wait = count == 0 || pos.sent < count;  // yield to the loop between calls, as Python
    } else if (r == 0) {
      co_return pos.sent;  // the end of the file
    } else {
      const int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        wait = true;
      } else if (e != EINTR) {
        if (pos.sent == 0 && !connection_errno(e)) {
          throw SendfileNotAvailableError("os.sendfile call failed: [Errno " + std::to_string(e) +
                                          "] " + errno_text(e));
        }
        s.fatal(error_code(e, boost::system::system_category()));  // as a failed write does
        raise_send_error(e);
      }
    }
    if (!wait) continue;
    auto op = std::make_shared<OpState>();
    s.sock->async_wait(tcp::socket::wait_write,
                       asio::bind_cancellation_slot(
                           op->signal.slot(), [op](const error_code& e) { op->complete(e); }));
    co_await OpWait(op);  // cancelled: the wait is withdrawn; `hold` hands sending back
    if (s.closed) stream_lost(s);
    if (op->ec) std::rethrow_exception(error_of(op->ec));
  }
}

// stream_sendfile_fallback: reads of the file on the loop's default executor, each written to
// the stream and drained before the next (Python's _sendfile_fallback): the position counts the
// bytes handed to the stream.
Task<std::size_t> stream_sendfile_fallback(std::shared_ptr<StreamCore> c, int file_fd,
                                           std::int64_t offset, std::size_t count) {
  StreamState& s = *c->s;
  const bool seekable = ::lseek(file_fd, static_cast<off_t>(offset), SEEK_SET) >= 0;
  if (!seekable) {
    const int e = errno;
    if (e != ESPIPE || offset != 0) {
      std::rethrow_exception(os_error(e, "sendfile(): seeking the file: " + errno_text(e)));
    }
  }
  FilePosition pos(file_fd, offset, seekable);
  const std::size_t block = count != 0 ? std::min(count, kFallbackBlock) : kFallbackBlock;
  auto buf = std::make_shared<std::vector<char>>(block);  // outlives a cancelled read
  for (;;) {
    std::size_t want = block;
    if (count != 0) want = std::min(count - pos.sent, block);
    if (want == 0) break;
    const std::int64_t at = offset + static_cast<std::int64_t>(pos.sent);
    concur::Future<ssize_t> reading = read_block(s.loop->owner(), buf, file_fd, want, at, seekable);
    const ssize_t got = co_await std::move(reading);
    if (got < 0) {
      const int e = static_cast<int>(-got);
      std::rethrow_exception(os_error(e, "sendfile(): reading the file: " + errno_text(e)));
    }
    if (got == 0) break;
    s.throw_if_error();
    if (s.closing) throw ConnectionError(0, "Connection closed by peer");
    s.write(std::string_view(buf->data(), static_cast<std::size_t>(got)));
    pos.sent += static_cast<std::size_t>(got);
    co_await drain_impl(c);
  }
  co_return pos.sent;
}

Task<std::size_t> stream_sendfile(std::shared_ptr<StreamCore> c, int file_fd, std::int64_t offset,
                                  std::size_t count, bool fallback) {
  StreamState& s = *c->s;
  if (s.dead) throw RuntimeError("sendfile(): the stream's event loop is closed");
  s.check_loop("sendfile()");
  if (offset < 0) {
    throw ValueError("offset must be a non-negative integer (got " + std::to_string(offset) + ")");
  }
  if (s.closing || !s.sock) throw RuntimeError("Transport is closing");
  if (s.sendfile_active) throw RuntimeError("sendfile(): another sendfile() is in progress");
  if (!s.tls) {
    try {
      co_return co_await stream_sendfile_native(c, file_fd, offset, count);
    } catch (const SendfileNotAvailableError&) {
      if (!fallback) throw;
    }
  } else if (!fallback) {
    throw SendfileNotAvailableError(
        "fallback is disabled and native sendfile is not supported for a TLS stream");
  }
  co_return co_await stream_sendfile_fallback(c, file_fd, offset, count);
}

Task<void> stream_wait_closed(std::shared_ptr<StreamState> s) {
  if (!s->closed) s->check_loop("wait_closed()");
  while (!s->closed) co_await QueueWait(s->closed_q);
  if (s->dead) throw RuntimeError("wait_closed(): the stream's event loop is closed");
  if (s->close_error) std::rethrow_exception(s->close_error);
}

// ---- resolving and connecting ----

// resolve(host, port, passive): numeric addresses directly; "" (passive) as 0.0.0.0 and ::;
// names through getaddrinfo() on the loop's default executor (aio::getaddrinfo), as asyncio does
// — not Asio's resolver, whose own thread a forked child's copy of the loop would not have.
// A name that does not resolve: gaierror naming it.
Task<std::vector<tcp::endpoint>> resolve(std::string host, std::uint16_t port, bool passive) {
  if (host.empty()) {
    if (!passive) throw ValueError("open_connection(): host is empty");
    co_return std::vector<tcp::endpoint>{tcp::endpoint(tcp::v4(), port),
                                         tcp::endpoint(tcp::v6(), port)};
  }
  error_code ec;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (!ec) co_return std::vector<tcp::endpoint>{tcp::endpoint(addr, port)};

  std::vector<aio::AddrInfo> infos;
  try {
    infos = co_await aio::getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM, 0,
                                      passive ? AI_PASSIVE | AI_NUMERICSERV : AI_NUMERICSERV);
  } catch (const gaierror& e) {
    throw gaierror(e.errno_code(), "getaddrinfo('" + host + "', " + std::to_string(port) +
                                       ") failed: " + ::gai_strerror(e.errno_code()));
  }
  std::vector<tcp::endpoint> out;
  for (const aio::AddrInfo& info : infos) {
    const asio::ip::address a = asio::ip::make_address(info.sockaddr.host, ec);
    if (ec) continue;
    const tcp::endpoint ep(a, info.sockaddr.port);
    if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
  }
  if (out.empty()) throw OSError(0, "getaddrinfo('" + host + "') returned no address");
  co_return out;
}

// connect_error(failures): one failure as Python raises it; several with the same errno as that
// errno's exception naming every address; else OSError("Multiple exceptions: ...").
[[noreturn]] void throw_connect_error(
    const std::vector<std::pair<tcp::endpoint, error_code>>& failures) {
  auto text = [](const std::pair<tcp::endpoint, error_code>& f) {
    return "[Errno " + std::to_string(f.second.value()) + "] Connect call failed " +
           py_address(f.first);
  };
  const int first = failures.front().second.value();
  const bool same = std::all_of(failures.begin(), failures.end(),
                                [first](const auto& f) { return f.second.value() == first; });
  if (same) {
    std::string where;
    for (const auto& f : failures) where += (where.empty() ? "" : ", ") + py_address(f.first);
    std::rethrow_exception(os_error(first, "Connect call failed " + where));
  }
  std::string all;
  for (const auto& f : failures) all += (all.empty() ? "" : ", ") + text(f);
  throw OSError(0, "Multiple exceptions: " + all);
}

// use_tls(st, ctx, shutdown_timeout): the connection speaks TLS with ctx from now on.
void use_tls(StreamState& st, const std::shared_ptr<SslContextCore>& ctx,
             std::chrono::milliseconds shutdown_timeout) {
  st.tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(*st.sock, ctx->ctx);
  st.tls_context = ctx;
  st.tls_shutdown_timeout = shutdown_timeout;
}

// tls_handshake(st, type, timeout): the TLS handshake, bounded by timeout (TimeoutError) and
// cancellable (the socket is closed: the connection is abandoned). SSLError when it fails, with
// the certificate check's verdict when that is why.
Task<void> tls_handshake(std::shared_ptr<StreamState> st,
                         asio::ssl::stream_base::handshake_type type,
                         std::chrono::milliseconds timeout) {
  auto op = std::make_shared<OpState>();
  asio::steady_timer timer(st->sock->get_executor());
  timer.expires_after(timeout);
  timer.async_wait([op, st](const error_code& ec) {
    if (ec || op->done) return;
    op->timed_out = true;
    error_code ignored;
    st->sock->close(ignored);  // ends the handshake
  });
  st->tls->async_handshake(type, [op](const error_code& e) { op->complete(e); });
  // (A raw pointer, not a copy of `st`: g++ 12 destroys a lambda temporary written inside a
  // co_await expression twice, which would release a captured shared_ptr twice. `st` outlives
  // the wait.)
  StreamState* raw = st.get();
  co_await OpWait(op, [raw] {
    error_code ignored;
    raw->sock->close(ignored);
  });
  timer.cancel();
  if (op->timed_out) {
    throw TimeoutError("SSL handshake is taking longer than " +
                       std::to_string(std::chrono::duration<double>(timeout).count()) +
                       " seconds: aborting the connection");
  }
  if (op->ec) {
    std::string what = op->ec.message();
    const long verdict = SSL_get_verify_result(st->tls->native_handle());
    if (verdict != X509_V_OK) {
      what += std::string(": ") + X509_verify_cert_error_string(verdict);
      if (verdict == X509_V_ERR_HOSTNAME_MISMATCH || verdict == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        what += ", certificate is not valid for '" + st->tls_hostname + "'";
      }
    }
    if (is_ssl_error(op->ec)) throw SSLError(what);
    std::rethrow_exception(error_of(op->ec));
  }
  if (st->closed) throw ConnectionResetError(0, "Connection lost during the SSL handshake");
  st->tls_ready = true;
}

// ConnectSpec: open_connection()'s options with what they point to copied (owned by the coroutine).
struct ConnectSpec {
  ConnectOptions options;
  std::shared_ptr<SslContextCore> ssl;
  std::string server_hostname;
};

// use_client_tls(st, spec, name): a client connection speaks TLS with spec.ssl from now on,
// sending name (SNI) and checking the server's certificate against it when the context says so.
void use_client_tls(StreamState& st, const ConnectSpec& spec, const std::string& name) {
  const auto& ctx = spec.ssl;
  use_tls(st, ctx, spec.options.ssl_shutdown_timeout);
  SSL* ssl = st.tls->native_handle();
  error_code not_an_address;
  (void)asio::ip::make_address(name, not_an_address);
  if (not_an_address) {  // SNI names hosts, not addresses (RFC 6066)
    if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
      throw SSLError("cannot send the server name '" + name + "'");
    }
  }
  if (ctx->verify && ctx->check_hostname) {
    // OpenSSL checks the name during verification (as Python's ssl module does).
    const int ok = not_an_address
                       ? SSL_set1_host(ssl, name.c_str())
                       : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    if (ok != 1) throw SSLError("cannot check the host name '" + name + "'");
    st.tls_hostname = name;
  }
}

Task<Connection> connect_impl(std::string host, std::uint16_t port, ConnectSpec spec) {
  const ConnectOptions& options = spec.options;
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  LoopCore& loop = running_core();
  asio::io_context& io = io_of(loop);
  const std::vector<tcp::endpoint> endpoints = co_await resolve(host, port, false);
  auto st = std::make_shared<StreamState>(&io, options.limit);
  st->loop = &loop;
  std::vector<std::pair<tcp::endpoint, error_code>> failures;
  for (const tcp::endpoint& ep : endpoints) {
    if (failures.size() > 0) st->sock.emplace(io);  // a fresh socket for the next address
    error_code ec;
    st->sock->open(ep.protocol(), ec);
    if (!ec) {
      auto op = std::make_shared<OpState>();
      st->sock->async_connect(
          ep, asio::bind_cancellation_slot(op->signal.slot(),
                                           [op](const error_code& e) { op->complete(e); }));
      co_await OpWait(op);  // cancelled: the connect is withdrawn, `st` closes the socket
      ec = op->ec;
    }
    if (!ec) {
      st->attach();
      if (spec.ssl) {
        const std::string name = spec.server_hostname.empty() ? host : spec.server_hostname;
        use_client_tls(*st, spec, name);
        co_await tls_handshake(st, asio::ssl::stream_base::client, options.ssl_handshake_timeout);
      }
      auto core = std::make_shared<StreamCore>(std::move(st));
      co_return Connection{StreamAccess::reader(core), StreamAccess::writer(core)};
    }
    failures.emplace_back(ep, ec);
  }
  throw_connect_error(failures);
}

// unix_connect_impl(path, spec): open_unix_connection. The stream's tcp::socket is given a new
// AF_UNIX socket (see StreamState::attach); the connect is a non-blocking connect() and, when the
// kernel has not finished it, an async_wait for writability (withdrawn when cancelled).
Task<Connection> unix_connect_impl(std::string path, ConnectSpec spec) {
  const ConnectOptions& options = spec.options;
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  if (spec.ssl && spec.server_hostname.empty()) {
    throw ValueError("you have to pass server_hostname when using ssl");
  }
  const SockAddr addr = unix_sockaddr(path, "open_unix_connection");
  LoopCore& loop = running_core();
  asio::io_context& io = io_of(loop);
  auto st = std::make_shared<StreamState>(&io, options.limit);
  st->loop = &loop;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, "socket(AF_UNIX): " + errno_text(e)));
  }
  error_code ec;
  st->sock->assign(tcp::v4(), fd, ec);  // the protocol object is unused for a stream's calls
  if (ec) {
    ::close(fd);
    std::rethrow_exception(error_of(ec));
  }
  int e = 0;
  if (::connect(fd, addr.get(), addr.len) != 0) e = errno;
  if (e == EINPROGRESS || e == EINTR) {
    auto op = std::make_shared<OpState>();
    st->sock->async_wait(
        tcp::socket::wait_write,
        asio::bind_cancellation_slot(op->signal.slot(),
                                     [op](const error_code& err) { op->complete(err); }));
    co_await OpWait(op);  // cancelled: the wait is withdrawn, `st` closes the socket
    if (op->ec) std::rethrow_exception(error_of(op->ec));
    socklen_t len = sizeof e;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
  }
  if (e != 0) std::rethrow_exception(os_error(e, "Connect call failed " + addr.text()));
  st->attach(/*is_tcp=*/false);
  if (spec.ssl) {
    use_client_tls(*st, spec, spec.server_hostname);
    co_await tls_handshake(st, asio::ssl::stream_base::client, options.ssl_handshake_timeout);
  }
  auto core = std::make_shared<StreamCore>(std::move(st));
  co_return Connection{StreamAccess::reader(core), StreamAccess::writer(core)};
}

// ---- serving ----

// serve_client(server, reader, writer): the task of one accepted connection: the TLS handshake
// (if any), then the handler; what escapes the handler is reported once.
Task<void> serve_client(std::shared_ptr<ServerState> srv, StreamReader reader,
                        StreamWriter writer) {
  std::exception_ptr failure;
  bool handshake_failed = false;
  try {
    std::shared_ptr<StreamState> st = StreamAccess::core(writer)->s;
    if (st->tls) {
      handshake_failed = true;
      co_await tls_handshake(st, asio::ssl::stream_base::server,
                             srv->options.ssl_handshake_timeout);
      handshake_failed = false;
    }
    co_await srv->handler(reader, writer);
  } catch (...) {
    failure = std::current_exception();
  }
  --srv->handlers;
  srv->check_done();
  if (!failure) co_return;
  if (handshake_failed) {
    writer.abort();  // a client that failed its handshake is dropped, unreported (asyncio)
    if (is_cancelled(failure)) std::rethrow_exception(failure);
    co_return;
  }
  writer.close();  // asyncio closes the transport when the handler fails or is cancelled
  if (is_cancelled(failure)) std::rethrow_exception(failure);  // the task ends cancelled
  std::string what = "a non-std exception";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  try {
    try {
      std::rethrow_exception(failure);
    } catch (...) {
      std::throw_with_nested(RuntimeError("Unhandled exception in client_connected_cb (peer " +
                                          writer.get_extra_info("peername") + "): " + what));
    }
  } catch (...) {
    concur::detail::report_exception(std::current_exception());
  }
}

Task<void> serve_forever_impl(std::shared_ptr<ServerCore> c) {
  ServerState& s = *c->s;
  if (s.forever_active) throw RuntimeError("server is already being awaited on serve_forever()");
  if (s.closed) throw RuntimeError("server is closed");
  s.start_serving();
  s.forever_active = true;
  std::exception_ptr cancelled;
  try {
    while (!s.closed) co_await QueueWait(s.forever_q);
  } catch (...) {
    cancelled = std::current_exception();
  }
  s.forever_active = false;
  if (cancelled) {
    s.close();
    std::rethrow_exception(cancelled);
  }
}

Task<void> server_wait_closed(std::shared_ptr<ServerState> s) {
  if (!s->done() && tls_loop != s->loop) {
    throw RuntimeError("wait_closed(): the server belongs to another event loop");
  }
  while (!s->done()) co_await QueueWait(s->closed_q);
}

Task<Server> start_server_impl(ClientConnected handler, std::string host, std::uint16_t port,
                               ServerOptions options, std::shared_ptr<SslContextCore> ssl) {
  if (!handler) throw ValueError("start_server(): the handler is empty");
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  LoopCore& loop = running_core();
  asio::io_context& io = io_of(loop);
  const std::vector<tcp::endpoint> endpoints = co_await resolve(host, port, true);
  auto srv = std::make_shared<ServerState>(io, loop, std::move(handler), options, std::move(ssl));
  srv->bind(endpoints, port);
  if (options.start_serving) srv->start_serving();
  co_return StreamAccess::server(std::make_shared<ServerCore>(std::move(srv)));
}

// start_unix_server_impl: as start_server_impl, on one AF_UNIX listening socket. A socket file
// at path is removed first (a stale server's); any other file is left, and the bind fails.
Task<Server> start_unix_server_impl(ClientConnected handler, std::string path,
                                    ServerOptions options, std::shared_ptr<SslContextCore> ssl) {
  if (!handler) throw ValueError("start_unix_server(): the handler is empty");
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  (void)unix_sockaddr(path, "start_unix_server");  // ValueError / OSError before touching files
  LoopCore& loop = running_core();
  asio::io_context& io = io_of(loop);
  if (path[0] != '\0') {
    struct stat st {};
    // Errors (no such file, no permission to look) are left to bind(), as Python logs and goes
    // on.
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  }
  auto srv = std::make_shared<ServerState>(io, loop, std::move(handler), options, std::move(ssl));
  srv->bind_unix(path);
  if (options.start_serving) srv->start_serving();
  co_return StreamAccess::server(std::make_shared<ServerCore>(std::move(srv)));
}

using reuse_port_option = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

}  // namespace

void ServerState::bind(const std::vector<tcp::endpoint>& endpoints, std::uint16_t requested_port) {
  for (int attempt = 0; attempt < kBindAttempts; ++attempt) {
    listeners.clear();
    names.clear();
    std::uint16_t chosen = requested_port;
    bool retry = false;
    std::string skipped;
    for (const tcp::endpoint& original : endpoints) {
      tcp::endpoint ep = original;
      if (chosen != 0) ep.port(chosen);
      auto l = std::make_unique<Listener>(*io);
      error_code ec;
      l->acceptor.open(ep.protocol(), ec);
      if (!ec && options.reuse_address)
        l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec && options.reuse_port) l->acceptor.set_option(reuse_port_option(true), ec);
      if (!ec && ep.address().is_v6()) l->acceptor.set_option(asio::ip::v6_only(true), ec);
      if (!ec) l->acceptor.bind(ep, ec);
      if (ec) {
        const int e = ec.value();
        if (requested_port == 0 && chosen != 0 && e == EADDRINUSE) {
          retry = true;  // the port picked for the first address is taken on this one
          break;
        }
        if (endpoints.size() > 1 && (e == EAFNOSUPPORT || e == EADDRNOTAVAIL)) {
          skipped += (skipped.empty() ? "" : ", ") + py_address(ep);  // e.g. no IPv6 here
          continue;
        }
        std::rethrow_exception(os_error(e, "error while attempting to bind on address " +
                                               py_address(ep) + ": " + errno_text(e)));
      }
      const tcp::endpoint bound = l->acceptor.local_endpoint(ec);
      if (chosen == 0) chosen = bound.port();
      names.push_back(endpoint_of(bound));
      listeners.push_back(std::move(l));
    }
    if (retry) continue;
    if (listeners.empty()) throw OSError(0, "could not bind on any address out of " + skipped);
    port = chosen;
    return;
  }
  throw OSError(EADDRINUSE, "could not find one free port for every address");
}

void ServerState::bind_unix(const std::string& path) {
  const SockAddr addr = unix_sockaddr(path, "start_unix_server");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int e = errno;
    std::rethrow_exception(os_error(e, "socket(AF_UNIX): " + errno_text(e)));
  }
  if (::bind(fd, addr.get(), addr.len) != 0) {
    const int e = errno;
    ::close(fd);
    if (e == EADDRINUSE) throw OSError(e, "Address '" + addr.text() + "' is already in use");
    std::rethrow_exception(os_error(
        e, "error while attempting to bind on address '" + addr.text() + "': " + errno_text(e)));
  }
  auto l = std::make_unique<Listener>(*io);
  error_code ec;
  l->acceptor.assign(tcp::v4(), fd, ec);  // accepts with accept4(): any stream socket works
  if (ec) {
    ::close(fd);
    std::rethrow_exception(error_of(ec));
  }
  unix_server = true;
  if (path[0] != '\0') {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      unix_path = path;
      unix_dev = st.st_dev;
      unix_ino = st.st_ino;
    }
  }
  names.push_back(Endpoint{path, 0, false, true});
  listeners.push_back(std::move(l));
  port = 0;
}

void ServerState::start_serving() {
  if (dead || closed) throw RuntimeError("start_serving(): the server is closed");
  if (tls_loop != loop) {
    throw RuntimeError("start_serving(): the server belongs to another event loop");
  }
  if (serving) return;
  for (auto& l : listeners) {
    if (l->listening) continue;
    error_code ec;
    l->acceptor.listen(options.backlog, ec);
    if (ec) std::rethrow_exception(os_error(ec.value(), "listen(): " + errno_text(ec.value())));
    l->listening = true;
  }
  serving = true;
  for (std::size_t i = 0; i < listeners.size(); ++i) accept(i);
}

void ServerState::accept(std::size_t i) {
  listeners[i]->acceptor.async_accept(
      [self = shared_from_this(), i](const error_code& ec, tcp::socket peer) {
        self->on_accept(i, ec, std::move(peer));
      });
}

void ServerState::on_accept(std::size_t i, const error_code& ec, tcp::socket peer) {
  if (closed || !serving || ec == asio::error::operation_aborted) return;  // `peer` is closed
  if (ec) {
    const int e = ec.value();
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
      // Out of a resource: report it and pause this socket's accepting briefly (asyncio).
      concur::detail::report_exception(
          os_error(e, "accept() out of system resource; retrying in 100 ms: " + errno_text(e)));
      Listener& l = *listeners[i];
      l.retry.expires_after(kAcceptRetry);
      l.retry.async_wait([self = shared_from_this(), i](const error_code& te) {
        if (!te && !self->closed && self->serving) self->accept(i);
      });
      return;
    }
    accept(i);  // ECONNABORTED, EPROTO...: that connection is gone, keep accepting
    return;
  }
  accept(i);
  spawn(std::move(peer));
}

void ServerState::spawn(tcp::socket peer) {
  auto st = std::make_shared<StreamState>(std::move(peer), options.limit);
  st->loop = loop;
  st->attach(!unix_server);
  if (ssl) use_tls(*st, ssl, options.ssl_shutdown_timeout);  // serve_client makes the handshake
  st->server = shared_from_this();
  clients.insert(st.get());
  ++handlers;
  auto core = std::make_shared<StreamCore>(st);
  try {
    const std::string name = "connection " + st->peer.to_string();
    // The loop holds the task until it ends; serve_client reports what the handler lets escape.
    (void)loop->owner().create_task(
        serve_client(shared_from_this(), StreamAccess::reader(core), StreamAccess::writer(core)),
        name);
  } catch (...) {
    --handlers;
    st->abort();
    concur::detail::report_exception(std::current_exception());
  }
}

}  // namespace detail

// ---- Endpoint ----

std::string Endpoint::to_string() const {
  if (is_unix) return host;
  if (ipv6) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// ---- StreamReader ----

StreamReader::StreamReader(std::size_t limit) {
  if (limit == 0) throw ValueError("Limit cannot be <= 0");
  core_ =
      std::make_shared<detail::StreamCore>(std::make_shared<detail::StreamState>(nullptr, limit));
}
StreamReader::StreamReader(std::shared_ptr<detail::StreamCore> core) noexcept
    : core_(std::move(core)) {}

Task<std::string> StreamReader::read(std::ptrdiff_t n) {
  return detail::read_impl(detail::StreamAccess::core(*this), n);
}
Task<std::string> StreamReader::readline() {
  return detail::readline_impl(detail::StreamAccess::core(*this));
}
Task<std::string> StreamReader::readexactly(std::size_t n) {
  return detail::readexactly_impl(detail::StreamAccess::core(*this), n);
}
Task<std::string> StreamReader::readuntil(std::string separator) {
  return detail::readuntil_impl(detail::StreamAccess::core(*this), std::move(separator));
}
bool StreamReader::at_eof() const {
  const detail::StreamState& s = *detail::StreamAccess::core(*this)->s;
  return s.eof && s.size() == 0;
}
std::size_t StreamReader::buffered() const { return detail::StreamAccess::core(*this)->s->size(); }
std::size_t StreamReader::limit() const { return detail::StreamAccess::core(*this)->s->limit; }
std::exception_ptr StreamReader::exception() const {
  return detail::StreamAccess::core(*this)->s->error;
}
void StreamReader::feed_data(std::string_view bytes) {
  detail::StreamAccess::core(*this)->s->feed_data(bytes);
}
void StreamReader::feed_eof() { detail::StreamAccess::core(*this)->s->feed_eof(); }
void StreamReader::set_exception(std::exception_ptr e) {
  detail::StreamAccess::core(*this)->s->set_exception(std::move(e));
}

// ---- StreamWriter ----

StreamWriter::StreamWriter(std::shared_ptr<detail::StreamCore> core) noexcept
    : core_(std::move(core)) {}
detail::StreamCore& StreamWriter::core() const { return *detail::StreamAccess::core(*this); }

void StreamWriter::write(std::string_view bytes) { core().s->write(bytes); }
void StreamWriter::writelines(std::initializer_list<std::string_view> lines) {
  std::string all;
  for (std::string_view line : lines) all += line;
  write(all);
}
Task<void> StreamWriter::drain() { return detail::drain_impl(detail::StreamAccess::core(*this)); }
void StreamWriter::write_eof() { core().s->write_eof(); }
bool StreamWriter::can_write_eof() const { return !core().s->tls; }
void StreamWriter::close() { core().s->close(); }
void StreamWriter::abort() { core().s->abort(); }
bool StreamWriter::is_closing() const { return core().s->closing; }
Task<void> StreamWriter::wait_closed() { return detail::stream_wait_closed(core().s); }
Task<std::size_t> StreamWriter::sendfile(int file_fd, std::int64_t offset, std::size_t count,
                                         bool fallback) {
  return detail::stream_sendfile(detail::StreamAccess::core(*this), file_fd, offset, count,
                                 fallback);
}
std::string StreamWriter::get_extra_info(std::string_view name) const {
  const detail::StreamState& s = *core().s;
  if (name == "peername") return s.peer.host.empty() ? std::string() : s.peer.to_string();
  if (name == "sockname") return s.local.host.empty() ? std::string() : s.local.to_string();
  return {};
}
Endpoint StreamWriter::peername() const { return core().s->peer; }
Endpoint StreamWriter::sockname() const { return core().s->local; }
std::size_t StreamWriter::get_write_buffer_size() const {
  const detail::StreamState& s = *core().s;
  return s.closed ? 0 : s.pending();
}
void StreamWriter::set_write_buffer_limits(std::size_t high, std::ptrdiff_t low) {
  const std::size_t lo = low < 0 ? high / 4 : static_cast<std::size_t>(low);
  if (lo > high) {
    throw ValueError("high (" + std::to_string(high) + ") must be >= low (" + std::to_string(lo) +
                     ") must be >= 0");
  }
  core().s->set_limits(high, lo);
}
int StreamWriter::fileno() const {
  const detail::StreamState& s = *core().s;
  if (!s.sock || !s.sock->is_open()) return -1;
  return const_cast<detail::StreamState&>(s).sock->native_handle();
}

// ---- Server ----

Server::Server(std::shared_ptr<detail::ServerCore> core) noexcept : core_(std::move(core)) {}

std::vector<Endpoint> Server::sockets() const {
  const detail::ServerState& s = *detail::StreamAccess::core(*this)->s;
  if (s.closed) return {};
  return s.names;
}
std::uint16_t Server::port() const { return detail::StreamAccess::core(*this)->s->port; }
void Server::start_serving() { detail::StreamAccess::core(*this)->s->start_serving(); }
Task<void> Server::serve_forever() {
  return detail::serve_forever_impl(detail::StreamAccess::core(*this));
}
bool Server::is_serving() const { return detail::StreamAccess::core(*this)->s->serving; }
void Server::close() { detail::StreamAccess::core(*this)->s->close(); }
void Server::close_clients() {
  for (auto& c : detail::StreamAccess::core(*this)->s->live_clients()) c->close();
}
void Server::abort_clients() {
  for (auto& c : detail::StreamAccess::core(*this)->s->live_clients()) c->abort();
}
Task<void> Server::wait_closed() {
  return detail::server_wait_closed(detail::StreamAccess::core(*this)->s);
}
std::size_t Server::active_connections() const {
  return detail::StreamAccess::core(*this)->s->clients.size();
}

// ---- SslContext ----

namespace {
[[noreturn]] void throw_ssl(const std::string& what, const boost::system::error_code& ec) {
  throw SSLError(what + ": " + ec.message());
}
}  // namespace

SslContext SslContext::create_default_context(SslPurpose purpose) {
  namespace ssl = boost::asio::ssl;
  const bool server = purpose == SslPurpose::kClientAuth;
  auto core = std::make_shared<detail::SslContextCore>(
      server ? ssl::context::tls_server : ssl::context::tls_client, server);
  boost::system::error_code ec;
  core->ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1,
                        ec);
  if (ec) throw_ssl("create_default_context()", ec);
  if (!server) {
    core->ctx.set_default_verify_paths(ec);  // the system's CAs (a missing store is not an error)
    core->verify = true;
    core->check_hostname = true;
  }
  core->apply_verify_mode();
  SslContext out;
  detail::StreamAccess::set_ssl(out, std::move(core));
  return out;
}

void SslContext::load_cert_chain(const std::string& certfile, const std::string& keyfile) {
  auto& c = detail::StreamAccess::ssl_core(*this);
  boost::system::error_code ec;
  c.ctx.use_certificate_chain_file(certfile, ec);
  if (ec) throw_ssl("load_cert_chain('" + certfile + "')", ec);
  c.ctx.use_private_key_file(keyfile, boost::asio::ssl::context::pem, ec);
  if (ec) throw_ssl("load_cert_chain('" + keyfile + "')", ec);
}

void SslContext::load_cert_chain_pem(std::string_view cert_pem, std::string_view key_pem) {
  auto& c = detail::StreamAccess::ssl_core(*this);
  boost::system::error_code ec;
  c.ctx.use_certificate_chain(boost::asio::buffer(cert_pem.data(), cert_pem.size()), ec);
  if (ec) throw_ssl("load_cert_chain_pem(): the certificate", ec);
  c.ctx.use_private_key(boost::asio::buffer(key_pem.data(), key_pem.size()),
                        boost::asio::ssl::context::pem, ec);
  if (ec) throw_ssl("load_cert_chain_pem(): the key", ec);
}

void SslContext::load_verify_locations(const std::string& cafile) {
  auto& c = detail::StreamAccess::ssl_core(*this);
  boost::system::error_code ec;
  c.ctx.load_verify_file(cafile, ec);
  if (ec) throw_ssl("load_verify_locations('" + cafile + "')", ec);
}

void SslContext::load_verify_pem(std::string_view ca_pem) {
  auto& c = detail::StreamAccess::ssl_core(*this);
  boost::system::error_code ec;
  c.ctx.add_certificate_authority(boost::asio::buffer(ca_pem.data(), ca_pem.size()), ec);
  if (ec) throw_ssl("load_verify_pem()", ec);
}

void SslContext::set_verify(bool required) {
  auto& c = detail::StreamAccess::ssl_core(*this);
  if (!required && c.check_hostname) {
    throw ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.");
  }
  c.verify = required;
  c.apply_verify_mode();
}

bool SslContext::verify() const { return detail::StreamAccess::ssl_core(*this).verify; }

void SslContext::set_check_hostname(bool on) {
  auto& c = detail::StreamAccess::ssl_core(*this);
  c.check_hostname = on;
  if (on && !c.verify) {
    c.verify = true;  // as Python: check_hostname needs CERT_REQUIRED
    c.apply_verify_mode();
  }
}

bool SslContext::check_hostname() const {
  return detail::StreamAccess::ssl_core(*this).check_hostname;
}

// ---- an adopted stream socket (aio subprocesses) ----

namespace detail {

Connection adopt_stream_socket(int fd, std::size_t limit) {
  if (fd < 0) throw ValueError("adopt_stream_socket: no descriptor");
  LoopCore& loop = running_core();
  auto& io = *static_cast<asio::io_context*>(loop.owner().native_handle());
  tcp::socket sock(io);
  error_code ec;
  sock.assign(tcp::v4(), fd, ec);  // reads and writes are recv/send: any stream socket works
  if (ec) {
    ::close(fd);
    throw OSError(ec.value(), "adopt_stream_socket: " + ec.message());
  }
  auto st = std::make_shared<StreamState>(std::move(sock), limit);
  st->loop = &loop;
  st->attach();
  st->peer = Endpoint{};  // a socket pair has no address
  st->local = Endpoint{};
  auto core = std::make_shared<StreamCore>(st);
  return Connection{StreamAccess::reader(core), StreamAccess::writer(core)};
}

}  // namespace detail

// ---- open_connection / start_server ----

Task<Connection> open_connection(std::string host, std::uint16_t port, ConnectOptions options) {
  detail::ConnectSpec spec{options, nullptr, std::string(options.server_hostname)};
  if (options.ssl != nullptr) spec.ssl = detail::StreamAccess::ssl(*options.ssl);
  spec.options.ssl = nullptr;  // copied: the pointer may dangle once this call returns
  spec.options.server_hostname = {};
  return detail::connect_impl(std::move(host), port, std::move(spec));
}

Task<Connection> open_unix_connection(std::string path, ConnectOptions options) {
  detail::ConnectSpec spec{options, nullptr, std::string(options.server_hostname)};
  if (options.ssl != nullptr) spec.ssl = detail::StreamAccess::ssl(*options.ssl);
  spec.options.ssl = nullptr;  // copied: the pointer may dangle once this call returns
  spec.options.server_hostname = {};
  return detail::unix_connect_impl(std::move(path), std::move(spec));
}

Task<Server> start_unix_server(ClientConnected handler, std::string path, ServerOptions options) {
  std::shared_ptr<detail::SslContextCore> ssl;
  if (options.ssl != nullptr) ssl = detail::StreamAccess::ssl(*options.ssl);
  options.ssl = nullptr;  // copied: the pointer may dangle once this call returns
  return detail::start_unix_server_impl(std::move(handler), std::move(path), options,
                                        std::move(ssl));
}

Task<Server> start_server(ClientConnected handler, std::string host, std::uint16_t port,
                          ServerOptions options) {
  std::shared_ptr<detail::SslContextCore> ssl;
  if (options.ssl != nullptr) ssl = detail::StreamAccess::ssl(*options.ssl);
  options.ssl = nullptr;  // copied: the pointer may dangle once this call returns
  return detail::start_server_impl(std::move(handler), std::move(host), port, options,
                                   std::move(ssl));
}

}  // namespace concur::aio
