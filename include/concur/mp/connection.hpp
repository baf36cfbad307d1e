// concur/mp/connection.hpp — Pipe() and Connection (multiprocessing.Pipe / .connection.Connection),
// wait() over several connections (multiprocessing.connection.wait), and their errors (EOFError,
// BrokenPipeError, ConnectionResetError, BufferTooShort).
//
// send(obj) / recv<T>() move Serializable values (serialize.hpp) with the descriptors of the
// handles inside them; send_bytes() / recv_bytes() move raw bytes. A frame is a fixed header
// (length, descriptor count, flags) then the payload. A payload above kLargeMessageThreshold
// travels in a sealed memfd whose descriptor the frame carries, so sending it never waits for the
// reader: a child that sends 1 MiB and exits cannot deadlock a parent that joins it first (the
// notes' `q.put('X' * 1000000)` + `p.join()`).
// Transport: a Pipe() end holds up to 3 descriptors: the read end of the pipe its peer writes, the
// write end of the pipe its peer reads (a Pipe(false) end has one of the two) and one end of an
// AF_UNIX socketpair that carries only descriptors (SCM_RIGHTS), sent just before the frame that
// needs them. A Connection(fd) adopted from a connected socket keeps frames and descriptors on
// that socket. A small frame blocks send() only while the peer is a full pipe (64 KiB) or socket
// buffer (~200 KiB) behind; unreceived large messages cost memory and one in-flight descriptor.
// (The pipes keep Linux's default size: enlarging them would count against the user's pipe
// quota, fs.pipe-user-pages-soft, which shrinks every later pipe of that user once exceeded.)
// SIGPIPE: writing a pipe whose reader is gone would raise SIGPIPE. Unless SIGPIPE was ignored
// when the end was created or loaded, send() blocks SIGPIPE in the calling thread around its write
// and consumes the one that write raised; the process-wide disposition is never changed. (If you
// ignore SIGPIPE, then restore its default while an end made meanwhile is in use, a send() to a
// closed peer kills the process, as a plain write() would.) Either way send() throws
// BrokenPipeError.
// Thread-safety: unlike Python's, one Connection may be shared by the threads of a process: sends
// are serialized by one mutex and receives by another, so one thread may send while another
// receives and concurrent sends never interleave. close(), moves and assignment must not race with
// other calls. Several *processes* using the same end are not synchronized (process Queue adds a
// cross-process lock for that).
// Memory ordering: what the sender did before send() is visible once the matching recv() returns.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"
#include "concur/mp/serialize.hpp"
#include "concur/mp/shared_memory.hpp"

namespace concur::mp {

// ---- Errors

// EOFError: recv() / recv_bytes() found the other end closed and no message left (Python's
// EOFError). Not an OSError, as in Python. what() is "EOFError".
class CONCUR_EXPORT EOFError : public Error {
 public:
  EOFError() : Error("EOFError") {}
};

// ConnectionError: the peer of a connection went away (Python's ConnectionError, an OSError).
class CONCUR_EXPORT ConnectionError : public OSError {
 protected:
  ConnectionError(const char* type_name, int errno_code) : OSError(type_name, errno_code, "") {}
};

// BrokenPipeError: send() after the peer closed its end (EPIPE):
// "BrokenPipeError: [Errno 32] Broken pipe".
class CONCUR_EXPORT BrokenPipeError : public ConnectionError {
 public:
  BrokenPipeError();
};

// ConnectionResetError: the peer closed its end while messages this end had sent were still
// unread (ECONNRESET; reported by Linux after the messages still queued here have been read):
// "ConnectionResetError: [Errno 104] Connection reset by peer".
class CONCUR_EXPORT ConnectionResetError : public ConnectionError {
 public:
  ConnectionResetError();
};

// BufferTooShort: recv_bytes_into() got a message larger than the buffer (Python's
// multiprocessing.BufferTooShort). The message was consumed; message() holds it whole (Python's
// e.args[0]).
class CONCUR_EXPORT BufferTooShort : public Error {
 public:
  explicit BufferTooShort(std::string message);
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
};

namespace detail {

// PlainOSError is an OSError whose what() is Python's plain text ("OSError: handle is closed")
// instead of errno text; errno_code() still names the condition (EBADF, EINVAL, EPROTO...).
// Catch it as OSError.
class CONCUR_EXPORT PlainOSError : public OSError {
 public:
  PlainOSError(int errno_code, const std::string& text);
  [[nodiscard]] const char* what() const noexcept override { return text_.c_str(); }

 private:
  std::string text_;
};

}  // namespace detail

// ---- Connection

// kLargeMessageThreshold: payloads larger than this travel in a memfd instead of the pipe (or
// socket). On a Pipe() end so do payloads above a quarter of the pipe's capacity (16 KiB for
// Linux's default 64 KiB pipe), so that one message never fills the pipe by itself.
inline constexpr std::size_t kLargeMessageThreshold = 64 * 1024;
// kMaxDescriptors: the most descriptors one message may carry (Linux's SCM_MAX_FD), counting the
// memfd of a large message.
inline constexpr std::size_t kMaxDescriptors = 253;

class Connection;

namespace detail {
// wait_until(conns, deadline) is the one wait loop behind wait()'s three forms.
CONCUR_EXPORT std::vector<Connection*> wait_until(std::span<Connection* const> conns,
                                                  concur::detail::Deadline deadline);
// pipe_ends(duplex) makes the two ends Pipe(duplex) returns.
std::pair<Connection, Connection> pipe_ends(bool duplex);
}  // namespace detail

class CONCUR_EXPORT Connection {
 public:
  // Connection() is a closed connection (closed() is true); assign a real one to it.
  Connection() noexcept = default;
  // Connection(fd, readable, writable) adopts `fd`, a connected AF_UNIX SOCK_STREAM socket whose
  // peer speaks this framing (Python's Connection(handle, readable, writable)); frames and
  // descriptors both travel on it. Throws ValueError when fd is negative or both flags are false.
  explicit Connection(int fd, bool readable = true, bool writable = true);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Moves transfer the descriptors and any received data not yet consumed; the moved-from
  // connection is closed.
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  // ~Connection() closes.
  ~Connection();

  // send(obj) serializes obj with dumps() and writes it as one message; the descriptors of the
  // handles inside obj travel with it (the receiver gets duplicates; obj keeps its own). Blocks
  // only while the peer is a full pipe (or socket buffer) behind (never for a payload above
  // kLargeMessageThreshold). Throws OSError("handle is closed") when closed, OSError("connection
  // is read-only") on the reading end of Pipe(false), PicklingError when obj cannot be serialized
  // or carries more than kMaxDescriptors descriptors, BrokenPipeError when the peer has closed.
  template <class T>
  void send(const T& obj);
  // recv<T>() blocks until a whole message has arrived and returns it loaded as a T (it must have
  // been sent as a T). Throws EOFError when the peer closed and nothing is left, OSError on a
  // closed or write-only connection, UnpicklingError when the bytes do not load as a T (the
  // message is consumed).
  template <class T>
  T recv();

  // send_bytes(buf, offset, size) sends buf[offset, offset + size) as one message (size: to the
  // end). Throws ValueError("buffer length < offset") / ValueError("buffer length < offset +
  // size") as Python, and what send() throws.
  void send_bytes(std::string_view buf, std::size_t offset = 0,
                  std::optional<std::size_t> size = std::nullopt);
  // recv_bytes(maxlength) blocks until a whole message has arrived and returns its bytes. A
  // message longer than maxlength throws OSError("bad message length") and, as in Python, leaves
  // the connection unreadable (closed, when it was read-only). Otherwise throws as recv().
  std::string recv_bytes(std::optional<std::size_t> maxlength = std::nullopt);
  // recv_bytes_into(buf, offset) receives a message into buf starting at `offset` and returns its
  // length. Throws ValueError("offset too large") when offset > buf.size() (nothing is read), and
  // BufferTooShort, carrying the consumed message, when it does not fit; otherwise as recv().
  std::size_t recv_bytes_into(std::span<std::byte> buf, std::size_t offset = 0);

  // poll() returns at once: true when data (or end of file) is ready to be received, so that
  // recv() would not block for the first byte (Python's poll() / poll(0)).
  // poll(timeout) waits up to `timeout` for that; poll(deadline) waits until a time point of any
  // clock; poll(std::nullopt) waits with no limit and returns true (Python's poll(None)).
  // All throw OSError on a closed or write-only connection.
  [[nodiscard]] bool poll();
  template <class Rep, class Period>
  [[nodiscard]] bool poll(std::chrono::duration<Rep, Period> timeout) {
    return poll_until(concur::detail::Deadline::after(timeout));
  }
  template <class C, class D>
  [[nodiscard]] bool poll(std::chrono::time_point<C, D> deadline) {
    return poll_until(concur::detail::Deadline::at(deadline));
  }
  bool poll(std::nullopt_t /*forever*/) { return poll_until(concur::detail::Deadline::infinite()); }

  // close() closes the end's descriptors (the peer then sees end of file once it has read what
  // was sent) and drops received data not yet consumed. Idempotent; must not race with other
  // calls.
  void close() noexcept;
  // closed() is true once close()d, moved from, or default-constructed.
  [[nodiscard]] bool closed() const noexcept { return fd_channel_ < 0; }
  // readable() / writable(): whether recv / send are allowed (Pipe(false) makes one of each).
  [[nodiscard]] bool readable() const noexcept { return readable_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool writable() const noexcept { return writable_.load(std::memory_order_relaxed); }
  // set_exact_reads(on): with on, this end reads exactly one message at a time from the kernel
  // (no read-ahead: a little slower for streams of small messages). For an end that several
  // processes read in turn under a lock of their own (a process Queue's side path): the bytes of
  // the next message then stay in the pipe for whichever process reads next. Not a hand-off
  // property: set it again on a loaded end. Call before the first receive.
  void set_exact_reads(bool on) noexcept { exact_reads_ = on; }
  // fileno() is the descriptor to poll for input, still owned by the Connection: the read end of
  // the incoming pipe, or for a write-only Pipe(false) end the write end of the outgoing pipe;
  // the socket of a Connection(fd). Throws OSError("handle is closed") when closed.
  [[nodiscard]] int fileno() const;

  // save(ar) / load(ar) make a Connection Serializable, so it can be a task argument or be sent
  // over another Connection: every descriptor of the end (3 for a duplex Pipe() end, 2 for a
  // Pipe(false) end, 1 for a Connection(fd)) travels by serialize.hpp's save_fd, with the kind and
  // the readable/writable flags, and the loaded Connection is a second handle on the same end.
  // save() throws PicklingError outside of a process hand-off (a plain cereal archive; dumps()
  // and send() are hand-offs), on a closed connection, and when received data is still buffered
  // in this handle (it could not follow). load() into an open Connection closes it first; it
  // throws UnpicklingError on bytes that do not describe a Connection.
  template <class Archive>
  void save(Archive& ar) const {
    save_check();
    ar(static_cast<std::uint8_t>(kind_));
    if (kind_ == Kind::socket) {
      save_fd(ar, fd_channel_);
    } else {
      ar(read_fd_ >= 0, write_fd_ >= 0);
      if (read_fd_ >= 0) save_fd(ar, read_fd_);
      if (write_fd_ >= 0) save_fd(ar, write_fd_);
      save_fd(ar, fd_channel_);
    }
    ar(readable(), writable());
  }
  template <class Archive>
  void load(Archive& ar) {
    close();
    LoadedFds fds;  // closes what it holds if loading fails
    std::uint8_t kind = 0;
    ar(kind);
    if (kind == static_cast<std::uint8_t>(Kind::socket)) {
      fds.channel = load_fd(ar);
    } else if (kind == static_cast<std::uint8_t>(Kind::pipes)) {
      bool has_read = false;
      bool has_write = false;
      ar(has_read, has_write);
      if (has_read) fds.read = load_fd(ar);
      if (has_write) fds.write = load_fd(ar);
      fds.channel = load_fd(ar);
    } else {
      throw UnpicklingError("the bytes do not describe a Connection");
    }
    bool readable = false;
    bool writable = false;
    ar(readable, writable);
    adopt(static_cast<Kind>(kind), fds, readable, writable);
  }

 private:
  friend std::vector<Connection*> detail::wait_until(std::span<Connection* const>,
                                                     concur::detail::Deadline);
  friend std::pair<Connection, Connection> detail::pipe_ends(bool);

  // Kind is the transport: `socket`, one connected AF_UNIX stream socket carrying frames and
  // descriptors (Connection(fd)); `pipes`, frames on pipes and descriptors on a side socket
  // (Pipe()). Its value is part of the serialized form.
  enum class Kind : std::uint8_t { socket = 1, pipes = 2 };
  // LoadedFds owns the descriptors of a connection being loaded until adopt() takes them.
  struct CONCUR_EXPORT LoadedFds {
    LoadedFds() = default;
    LoadedFds(const LoadedFds&) = delete;
    LoadedFds& operator=(const LoadedFds&) = delete;
    ~LoadedFds();
    int read = -1;
    int write = -1;
    int channel = -1;
  };

  // Message is a received frame: a small payload's bytes, or a large one's memfd (not yet read);
  // and the descriptors that came with it. It owns the memfd and the descriptors.
  struct Message {
    Message() = default;
    Message(const Message&) = delete;
    Message& operator=(const Message&) = delete;
    Message(Message&& other) noexcept
        : bytes(std::move(other.bytes)),
          fds(std::exchange(other.fds, {})),
          memfd(std::exchange(other.memfd, -1)),
          length(other.length) {}
    Message& operator=(Message&&) = delete;
    ~Message();
    [[nodiscard]] std::size_t size() const noexcept { return memfd >= 0 ? length : bytes.size(); }

    std::string bytes;
    std::vector<int> fds;
    int memfd = -1;
    std::size_t length = 0;
  };
  // MappedPayload maps a large message's memfd read-only for as long as it lives.
  class CONCUR_EXPORT MappedPayload {
   public:
    MappedPayload(int memfd, std::size_t length);
    MappedPayload(const MappedPayload&) = delete;
    MappedPayload& operator=(const MappedPayload&) = delete;
    ~MappedPayload();
    [[nodiscard]] std::string_view view() const noexcept { return {data_, length_}; }

   private:
    const char* data_;
    std::size_t length_;
  };

  // adopt(kind, fds, readable, writable) takes fds' descriptors (a socket kind's is fds.channel);
  // a flag is cleared when its pipe is missing.
  void adopt(Kind kind, LoadedFds& fds, bool readable, bool writable) noexcept;
  void check_writable() const;
  void check_readable() const;
  void save_check() const;
  bool poll_until(concur::detail::Deadline deadline);
  // send_frame(bytes, fds) writes one frame under send_mu_.
  void send_frame(std::string_view bytes, std::span<const int> fds);
  // recv_message(maxlength) reads one frame under recv_mu_.
  Message recv_message(std::optional<std::size_t> maxlength);
  // fill(need) reads from read_fd_ until `need` bytes are buffered (recv_mu_ held).
  void fill(std::size_t need);
  // recvmsg_rights(fd, buf, len) is recvmsg(fd) into buf[0, len); the descriptors that came with
  // the bytes are appended to rfds_. Returns recvmsg's result (errno set when negative). Throws
  // OSError (EMFILE) when descriptors were dropped (MSG_CTRUNC), leaving the end unreadable.
  std::ptrdiff_t recvmsg_rights(int fd, char* buf, std::size_t len);
  // receive_descriptors() reads the next side message, whose descriptors (one frame's) it appends
  // to rfds_ (pipes kind; recv_mu_ held). Throws, leaving the end unreadable, when there is none.
  void receive_descriptors();
  // bad_message_length() is Python's _bad_message_length(): unreadable, then throw.
  [[noreturn]] void bad_message_length();
  [[nodiscard]] bool has_buffered() const noexcept {
    return buffered_.load(std::memory_order_acquire) != 0;
  }

  // The descriptors: frames are read from read_fd_ and written to write_fd_, descriptors travel
  // on fd_channel_. The socket kind has its socket in all three; the pipes kind has the pipe ends
  // (-1 for the one a Pipe(false) end lacks) and the side socket. fd_channel_ < 0: closed.
  int read_fd_ = -1;
  int write_fd_ = -1;
  int fd_channel_ = -1;
  Kind kind_ = Kind::socket;
  // sigpipe_ignored_: SIGPIPE was ignored when this end was made, so pipe writes need not block it.
  bool sigpipe_ignored_ = false;
  // inline_limit_: payloads up to this size travel inline, larger ones in a memfd:
  // kLargeMessageThreshold, or less on a pipe of under 4 * kLargeMessageThreshold bytes.
  std::size_t inline_limit_ = kLargeMessageThreshold;
  // exact_reads_: see set_exact_reads().
  bool exact_reads_ = false;
  // readable_ is atomic because a recv_bytes() over maxlength clears it while others may poll().
  std::atomic<bool> readable_{false};
  std::atomic<bool> writable_{false};
  std::mutex send_mu_;
  std::mutex recv_mu_;
  // The receive buffer: bytes [rpos_, rend_) of rbuf_ are received and not consumed; rfds_ are
  // received descriptors not yet given to a message, in arrival order.
  std::unique_ptr<char[]> rbuf_ CONCUR_GUARDED_BY(recv_mu_);
  std::size_t rpos_ CONCUR_GUARDED_BY(recv_mu_) = 0;
  std::size_t rend_ CONCUR_GUARDED_BY(recv_mu_) = 0;
  std::vector<int> rfds_ CONCUR_GUARDED_BY(recv_mu_);
  // buffered_ mirrors rend_ - rpos_ for poll() and wait(), which do not take recv_mu_.
  std::atomic<std::size_t> buffered_{0};
};

// Pipe(duplex) returns the two ends of a new connection (Python's multiprocessing.Pipe). With
// duplex = true both ends send and receive; with duplex = false the first end only receives and
// the second only sends. Both are close-on-exec; fork() children inherit them. Throws OSError.
CONCUR_EXPORT std::pair<Connection, Connection> Pipe(bool duplex = true);

// wait(conns) blocks until at least one of `conns` is ready — a message (or end of file) can be
// received — and returns the ready ones, in the order given (Python's
// multiprocessing.connection.wait). wait(conns, timeout) / wait(conns, deadline) give up then and
// return an empty vector. An empty `conns` sleeps until the timeout and returns nothing; with no
// timeout it throws ValueError rather than block forever. Throws OSError when one is closed.
// Ready means recv() would not block for the first byte; with several readers of one Connection,
// another thread may take the message first.
inline std::vector<Connection*> wait(std::span<Connection* const> conns) {
  return detail::wait_until(conns, concur::detail::Deadline::infinite());
}
template <class Rep, class Period>
std::vector<Connection*> wait(std::span<Connection* const> conns,
                              std::chrono::duration<Rep, Period> timeout) {
  return detail::wait_until(conns, concur::detail::Deadline::after(timeout));
}
template <class C, class D>
std::vector<Connection*> wait(std::span<Connection* const> conns,
                              std::chrono::time_point<C, D> deadline) {
  return detail::wait_until(conns, concur::detail::Deadline::at(deadline));
}

// ---- Template bodies

template <class T>
void Connection::send(const T& obj) {
  check_writable();
  const Payload payload = dumps(obj);
  send_frame(payload.bytes, payload.fds);
}

template <class T>
T Connection::recv() {
  static_assert(TaskArgument<T>,
                "concur::mp::Connection::recv<T>: T must be Serializable and default "
                "constructible (it is built, then loaded from the message)");
  check_readable();
  Message m = recv_message(std::nullopt);
  T out{};
  if (m.memfd < 0) {
    loads(m.bytes, std::exchange(m.fds, {}), out);
  } else {
    // A large payload is loaded straight from the sender's memfd: no intermediate copy.
    const MappedPayload payload(m.memfd, m.length);
    loads(payload.view(), std::exchange(m.fds, {}), out);
  }
  return out;
}

}  // namespace concur::mp
