// concur/errors.hpp — the whole error vocabulary of concur, named after Python's.
//
// A shallow tree under concur::Error, grouped by how a caller reacts:
//   UsageError      a programming mistake (RuntimeError, ValueError, InvalidStateError);
//                   SendfileNotAvailableError (a RuntimeError, as asyncio's)
//   TimeoutError    a bounded wait ran out; TimeLimitExceeded / SoftTimeLimitExceeded: a task ran
//                   past its time limit / soft time limit
//   CancelledError  the work was cancelled
//   BrokenError     a shared object can no longer be used (BrokenBarrierError, BrokenExecutor
//                   and its BrokenThreadPool, ...)
//   DeadlockError   a wait that could never end was detected instead of hanging
//   QueueError      queue.Empty / queue.Full (try again later) and queue.ShutDown (stop)
//   ExceptionGroup  several errors at once (a TaskGroup's children)
//   KeyboardInterrupt  Ctrl-C ended aio::run()
//   IncompleteReadError, LimitOverrunError  aio streams
//   OSError         a system call failed (aio's sockets), with Python's ConnectionError family:
//                   BrokenPipeError, ConnectionAbortedError, ConnectionRefusedError,
//                   ConnectionResetError; SSLError (TLS); gaierror (name resolution)
//   crawl::DownloadError  an HTTP fetch failed where no error above fits (libcurl's code):
//                   ResponseTooLarge, TruncatedResponse, TooManyRedirects, DNSLookupError
//   http::HTTPError  a web handler answers with an error status (Flask's abort())
// Every what() starts with the Python-style type name, e.g. "RuntimeError: release unlocked
// lock", so messages are greppable. Later layers add their types here.
// Thread-safety: plain value types.
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace concur {

// Error is the root of every exception concur throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// UsageError: the caller broke a documented precondition; state was left unchanged.
class UsageError : public Error {
 public:
  using Error::Error;
};

// RuntimeError: misuse of a synchronization object or thread, as Python's RuntimeError
// (releasing an unlocked Lock, releasing an RLock owned by another thread, starting a thread
// twice, joining a thread that was never started).
class RuntimeError : public UsageError {
 public:
  explicit RuntimeError(const std::string& msg) : UsageError("RuntimeError: " + msg) {}

 protected:
  // RuntimeError(type_name, msg): for subclasses, so what() starts with their own name.
  RuntimeError(const char* type_name, const std::string& msg)
      : UsageError(std::string(type_name) + ": " + msg) {}
};

// SendfileNotAvailableError: aio::sock_sendfile() cannot use the kernel's sendfile for this
// socket and file (not a regular file, or sendfile refused it before sending a byte) and was told
// not to fall back to reading and sending (asyncio.SendfileNotAvailableError, a RuntimeError).
class SendfileNotAvailableError : public RuntimeError {
 public:
  explicit SendfileNotAvailableError(const std::string& msg)
      : RuntimeError("SendfileNotAvailableError", msg) {}
};

// ValueError: an argument out of range, as Python's ValueError (negative semaphore value,
// BoundedSemaphore released too many times, Barrier with zero parties).
class ValueError : public UsageError {
 public:
  explicit ValueError(const std::string& msg) : UsageError("ValueError: " + msg) {}
};

// InvalidStateError: an operation not allowed in the object's current state
// (concurrent.futures.InvalidStateError).
class InvalidStateError : public UsageError {
 public:
  explicit InvalidStateError(const std::string& msg) : UsageError("InvalidStateError: " + msg) {}
};

// TimeoutError: a throwing bounded wait ran out of time (Python's TimeoutError).
class TimeoutError : public Error {
 public:
  explicit TimeoutError(const std::string& msg = "timed out") : Error("TimeoutError: " + msg) {}

 protected:
  // TimeoutError(type_name, msg): for subclasses, so what() starts with their own name.
  TimeoutError(const std::string& type_name, const std::string& msg)
      : Error(type_name + ": " + msg) {}
};

// TimeLimitExceeded: a task ran past its hard time limit and was stopped (its worker process
// killed) — ProcessPoolOptions::time_limit, dist::TaskOptions::time_limit (Celery's
// TimeLimitExceeded).
class TimeLimitExceeded : public TimeoutError {
 public:
  explicit TimeLimitExceeded(const std::string& msg = "the task ran past its time limit")
      : TimeoutError("TimeLimitExceeded", msg) {}
};

// SoftTimeLimitExceeded: thrown by mp::check_soft_time_limit() in a task past its soft time limit
// (Celery's SoftTimeLimitExceeded, which C++ cannot raise from outside the task: the task asks).
class SoftTimeLimitExceeded : public TimeoutError {
 public:
  explicit SoftTimeLimitExceeded(const std::string& msg = "the task passed its soft time limit")
      : TimeoutError("SoftTimeLimitExceeded", msg) {}
};

// CancelledError: the awaited work was cancelled.
class CancelledError : public Error {
 public:
  explicit CancelledError(const std::string& msg = "cancelled") : Error("CancelledError: " + msg) {}
};

// BrokenError: a shared object is broken for every user until reset.
class BrokenError : public Error {
 public:
  using Error::Error;
};

// BrokenBarrierError: the Barrier was aborted, reset, timed out, or its action threw
// while this thread waited on it (threading.BrokenBarrierError).
class BrokenBarrierError : public BrokenError {
 public:
  explicit BrokenBarrierError(const std::string& msg = "barrier is broken")
      : BrokenError("BrokenBarrierError: " + msg) {}
};

// BrokenExecutor: an executor can no longer run work (concurrent.futures.BrokenExecutor): a
// worker failed to initialize or died, or the producer of a future vanished without a result (a
// Promise or an unrun task destroyed). The futures of the affected work finish with it.
class BrokenExecutor : public BrokenError {
 public:
  explicit BrokenExecutor(const std::string& msg = "the executor is broken")
      : BrokenError("BrokenExecutor: " + msg) {}

 protected:
  // BrokenExecutor(type_name, msg): for subclasses, so what() starts with their own name.
  BrokenExecutor(const std::string& type_name, const std::string& msg)
      : BrokenError(type_name + ": " + msg) {}
};

// BrokenThreadPool: a ThreadPoolExecutor is broken (a worker's initializer failed); pending and
// later futures of the pool finish with it (concurrent.futures.thread.BrokenThreadPool).
class BrokenThreadPool : public BrokenExecutor {
 public:
  explicit BrokenThreadPool(const std::string& msg = "the thread pool is broken")
      : BrokenExecutor("BrokenThreadPool", msg) {}
};

// BrokenProcessPool: a ProcessPoolExecutor (or mp::Pool) worker died while running a task, or
// could not start; the futures it affects finish with it
// (concurrent.futures.process.BrokenProcessPool).
class BrokenProcessPool : public BrokenExecutor {
 public:
  explicit BrokenProcessPool(const std::string& msg = "the process pool is broken")
      : BrokenExecutor("BrokenProcessPool", msg) {}
};

// RemoteError: an exception raised in another process (a process pool worker, a remote worker).
// C++ cannot recreate the original exception object, so it carries the original's type name and
// message, and a text describing where it was raised (the remote "traceback"). what() is
// "RemoteError: <type name>: <message>".
class RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string message, std::string traceback)
      : Error("RemoteError: " + type_name + ": " + message),
        type_name_(std::move(type_name)),
        message_(std::move(message)),
        traceback_(std::move(traceback)) {}
  // type_name() is the original exception's type: a concur error's Python name ("ValueError"),
  // else the demangled C++ type ("std::out_of_range").
  [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
  // message() is the original what() (for concur errors, without the "ValueError: " prefix).
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  // traceback() describes where it was raised: process, pid, task.
  [[nodiscard]] const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string type_name_;
  std::string message_;
  std::string traceback_;
};

// DeadlockError: concur detected a wait that can never end (a lock-order cycle, a pool
// waiting on itself) and raised this instead of hanging. The message names what is involved.
class DeadlockError : public Error {
 public:
  explicit DeadlockError(const std::string& msg) : Error("DeadlockError: " + msg) {}
};

// QueueError groups the queue module's exceptions.
class QueueError : public Error {
 public:
  using Error::Error;
};

// Empty: get_nowait() on an empty queue, or get(timeout) that timed out (queue.Empty).
class Empty : public QueueError {
 public:
  explicit Empty(const std::string& msg = "queue is empty") : QueueError("Empty: " + msg) {}
};

// Full: put_nowait() on a full queue, or put(timeout) that timed out (queue.Full).
class Full : public QueueError {
 public:
  explicit Full(const std::string& msg = "queue is full") : QueueError("Full: " + msg) {}
};

// ShutDown: the queue was shut down — every put, and a get on an empty queue (queue.ShutDown,
// Python 3.13).
class ShutDown : public QueueError {
 public:
  explicit ShutDown(const std::string& msg = "queue is shut down")
      : QueueError("ShutDown: " + msg) {}
};

// ExceptionGroup: several exceptions raised together (Python 3.11's ExceptionGroup): the errors of
// an aio::TaskGroup's children. exceptions() holds them in the order they happened; what() is
// "ExceptionGroup: <message> (<n> sub-exceptions)" followed by each one's what().
class ExceptionGroup : public Error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : Error(describe(message, exceptions)),
        message_(message),
        exceptions_(std::move(exceptions)) {}
  // message(): the group's own message, without the sub-exceptions.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  // exceptions(): the sub-exceptions (rethrow one to inspect it).
  [[nodiscard]] const std::vector<std::exception_ptr>& exceptions() const noexcept {
    return exceptions_;
  }

 private:
  static std::string describe(const std::string& message,
                              const std::vector<std::exception_ptr>& exceptions) {
    std::string out = "ExceptionGroup: " + message + " (" + std::to_string(exceptions.size()) +
                      " sub-exception" + (exceptions.size() == 1 ? "" : "s") + ")";
    for (const auto& e : exceptions) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        out += "\n  ";
        out += x.what();
      } catch (...) {
        out += "\n  (a non-std exception)";
      }
    }
    return out;
  }
  std::string message_;
  std::vector<std::exception_ptr> exceptions_;
};

// KeyboardInterrupt: aio::run()'s main task was cancelled by Ctrl-C (SIGINT), as Python's
// asyncio.run raises KeyboardInterrupt.
class KeyboardInterrupt : public Error {
 public:
  KeyboardInterrupt() : Error("KeyboardInterrupt") {}
};

// IncompleteReadError: a stream ended before readexactly()/readuntil() got what they need
// (asyncio.IncompleteReadError). partial() is what was read; expected() is the size wanted (0: a
// separator that never came).
class IncompleteReadError : public Error {
 public:
  IncompleteReadError(std::string partial, std::size_t expected)
      : Error("IncompleteReadError: " + std::to_string(partial.size()) +
              " bytes read on a total of " +
              (expected == 0 ? std::string("undefined") : std::to_string(expected)) +
              " expected bytes"),
        partial_(std::move(partial)),
        expected_(expected) {}
  [[nodiscard]] const std::string& partial() const noexcept { return partial_; }
  [[nodiscard]] std::size_t expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::size_t expected_;
};

// LimitOverrunError: readuntil()/readline() found no separator within the stream's limit
// (asyncio.LimitOverrunError); consumed() bytes are left in the buffer.
class LimitOverrunError : public Error {
 public:
  LimitOverrunError(const std::string& msg, std::size_t consumed)
      : Error("LimitOverrunError: " + msg), consumed_(consumed) {}
  [[nodiscard]] std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

// OSError: a system call failed (Python's OSError), as aio's sockets raise it. errno_code() is
// the errno (0 when there is none); what() is Python's text, "OSError: [Errno 98] Address already
// in use" ("OSError: <message>" without an errno). (concur::mp::OSError is multiprocessing's own,
// for shared memory and pipes.)
class OSError : public Error {
 public:
  OSError(int errno_code, const std::string& msg) : OSError("OSError", errno_code, msg) {}
  [[nodiscard]] int errno_code() const noexcept { return errno_; }

 protected:
  // OSError(type_name, errno_code, msg): for subclasses, so what() starts with their own name.
  OSError(const char* type_name, int errno_code, const std::string& msg)
      : Error(std::string(type_name) + ": " +
              (errno_code != 0 ? "[Errno " + std::to_string(errno_code) + "] " : std::string()) +
              msg),
        errno_(errno_code) {}

 private:
  int errno_;
};

// ConnectionError: a connection could not be made or was lost (Python's ConnectionError); the
// caller reconnects or gives up. Its subclasses name the errno.
class ConnectionError : public OSError {
 public:
  ConnectionError(int errno_code, const std::string& msg)
      : OSError("ConnectionError", errno_code, msg) {}

 protected:
  ConnectionError(const char* type_name, int errno_code, const std::string& msg)
      : OSError(type_name, errno_code, msg) {}
};

// BrokenPipeError: writing to a connection whose peer is gone (EPIPE, ESHUTDOWN).
class BrokenPipeError : public ConnectionError {
 public:
  BrokenPipeError(int errno_code, const std::string& msg)
      : ConnectionError("BrokenPipeError", errno_code, msg) {}
};

// ConnectionAbortedError: the connection was aborted (ECONNABORTED).
class ConnectionAbortedError : public ConnectionError {
 public:
  ConnectionAbortedError(int errno_code, const std::string& msg)
      : ConnectionError("ConnectionAbortedError", errno_code, msg) {}
};

// ConnectionRefusedError: nothing listens at the address (ECONNREFUSED).
class ConnectionRefusedError : public ConnectionError {
 public:
  ConnectionRefusedError(int errno_code, const std::string& msg)
      : ConnectionError("ConnectionRefusedError", errno_code, msg) {}
};

// ConnectionResetError: the peer reset the connection (ECONNRESET), or it was lost while a
// writer waited in drain() ("Connection lost", errno 0).
class ConnectionResetError : public ConnectionError {
 public:
  ConnectionResetError(int errno_code, const std::string& msg)
      : ConnectionError("ConnectionResetError", errno_code, msg) {}
};

// gaierror: a name or address could not be resolved (Python's socket.gaierror), raised by
// aio::getaddrinfo() / getnameinfo() and the operations that resolve names. errno_code() is the
// EAI_* code (negative on Linux: EAI_NONAME is -2), the message gai_strerror's text: what() is
// "gaierror: [Errno -2] Name or service not known".
class gaierror : public OSError {
 public:
  gaierror(int eai_code, const std::string& msg) : OSError("gaierror", eai_code, msg) {}
};

// SSLError: a TLS failure (Python's ssl.SSLError): a handshake that failed (a certificate that did
// not verify, no common protocol), a corrupt or truncated record. what() is "SSLError: [SSL]
// certificate verify failed: self-signed certificate".
class SSLError : public OSError {
 public:
  explicit SSLError(const std::string& msg) : OSError("SSLError", 0, "[SSL] " + msg) {}
};

// ---- crawl (include/concur/crawl/http.hpp): the downloader's failures -------------------------
// A fetch raises the errors above where they fit (ConnectionRefusedError, ConnectionResetError,
// TimeoutError, SSLError, OSError) and these otherwise. HTTP statuses are never errors.
namespace crawl {

// DownloadError: a fetch failed for a reason no other error names. curl_code() is libcurl's
// CURLcode (0 when the failure is concur's own), curl_message() libcurl's text; what() is
// "DownloadError: [curl 3] URL using bad/illegal format or missing URL (GET foo://x)".
class DownloadError : public Error {
 public:
  DownloadError(int curl_code, const std::string& msg)
      : DownloadError("DownloadError", curl_code, msg) {}
  [[nodiscard]] int curl_code() const noexcept { return curl_code_; }
  [[nodiscard]] const std::string& curl_message() const noexcept { return message_; }

 protected:
  DownloadError(const char* type_name, int curl_code, const std::string& msg)
      : Error(std::string(type_name) + ": [curl " + std::to_string(curl_code) + "] " + msg),
        curl_code_(curl_code),
        message_(msg) {}

 private:
  int curl_code_;
  std::string message_;
};

// ResponseTooLarge: the response's body exceeded the request's max_size (Scrapy's
// DOWNLOAD_MAXSIZE): announced by Content-Length (expected_size() is it), or while streaming
// (expected_size() 0 when unknown). The transfer was abandoned.
class ResponseTooLarge : public DownloadError {
 public:
  ResponseTooLarge(int curl_code, const std::string& msg, std::size_t max_size,
                   std::size_t expected_size)
      : DownloadError("ResponseTooLarge", curl_code, msg),
        max_size_(max_size),
        expected_size_(expected_size) {}
  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
  [[nodiscard]] std::size_t expected_size() const noexcept { return expected_size_; }

 private:
  std::size_t max_size_;
  std::size_t expected_size_;
};

// TruncatedResponse: the server ended the connection before the whole body arrived (fewer bytes
// than Content-Length, a chunked body without its last chunk): Scrapy's data loss. received()
// is how many body bytes arrived.
class TruncatedResponse : public DownloadError {
 public:
  TruncatedResponse(int curl_code, const std::string& msg, std::size_t received)
      : DownloadError("TruncatedResponse", curl_code, msg), received_(received) {}
  [[nodiscard]] std::size_t received() const noexcept { return received_; }

 private:
  std::size_t received_;
};

// TooManyRedirects: a followed chain of redirects went past the request's max_redirects.
class TooManyRedirects : public DownloadError {
 public:
  TooManyRedirects(int curl_code, const std::string& msg)
      : DownloadError("TooManyRedirects", curl_code, msg) {}
};

// DNSLookupError: the host (or the proxy's) name did not resolve (Scrapy's DNSLookupError).
class DNSLookupError : public DownloadError {
 public:
  DNSLookupError(int curl_code, const std::string& msg)
      : DownloadError("DNSLookupError", curl_code, msg) {}
};

}  // namespace crawl

namespace http {

// HTTPError: thrown by a web handler (concur/http) to answer with an error status, as Flask's
// abort(status, description): the server answers `status` with the JSON body
// {"error": {"status": 404, "reason": "Not Found", "message": "<message>"}}. status() is the
// code, message() the text; what() is "HTTPError: 404: <message>". ValueError for a status
// outside 400-599 (a handler that means success returns a Response).
class HTTPError : public Error {
 public:
  HTTPError(int status, const std::string& message)
      : Error("HTTPError: " + std::to_string(checked(status)) + ": " + message),
        status_(status),
        message_(message) {}
  [[nodiscard]] int status() const noexcept { return status_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  static int checked(int status) {
    if (status < 400 || status > 599) {
      throw ValueError("HTTPError wants a status in 400-599, not " + std::to_string(status));
    }
    return status;
  }
  int status_;
  std::string message_;
};

}  // namespace http
}  // namespace concur
