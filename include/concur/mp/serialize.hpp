// concur/mp/serialize.hpp — what crosses a process boundary: the Serializable concept, dumps() /
// loads() (Python's pickle.dumps / pickle.loads) on cereal's binary archive, and the descriptor
// channel that lets handles (Connection, mp::Lock, Value, Queue...) travel with their file
// descriptors (SCM_RIGHTS or inheritance) instead of being copied.
//
// A type is Serializable when cereal can save and load it: arithmetic types, enums, the standard
// containers, strings, tuples, optionals and variants (this header includes cereal's support for
// all of them), and any class with a cereal serialize() (or save()/load()) member or free function.
// A handle type's save() calls save_fd(ar, fd) and its load() calls load_fd(ar); the bytes then
// carry only an index into the descriptors that travel beside them (Payload::fds).
// Errors: a value cereal cannot write throws PicklingError at once in the caller; bytes that do not
// decode throw UnpicklingError. Thread-safety: dumps/loads are reentrant; the descriptor channel is
// per thread.
// detail::SpilledBytes (with SpillOutBuf / SpillInBuf) is serialized bytes that move into a sealed
// memfd past a threshold, written and read without a copy in user space: the process pool's large
// arguments and results.
#pragma once

#include <unistd.h>

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"

namespace concur::mp {

// PicklingError: a value could not be serialized (pickle.PicklingError). what() starts with
// "PicklingError: ".
class CONCUR_EXPORT PicklingError : public Error {
 public:
  explicit PicklingError(const std::string& msg) : Error("PicklingError: " + msg) {}
};

// UnpicklingError: bytes could not be turned back into values (pickle.UnpicklingError).
class CONCUR_EXPORT UnpicklingError : public Error {
 public:
  explicit UnpicklingError(const std::string& msg) : Error("UnpicklingError: " + msg) {}
};

using OutputArchive = cereal::BinaryOutputArchive;
using InputArchive = cereal::BinaryInputArchive;

// Serializable<T>: cereal can both save and load T with concur's archives.
template <class T>
concept Serializable =
    cereal::traits::is_output_serializable<std::remove_cvref_t<T>, OutputArchive>::value &&
    cereal::traits::is_input_serializable<std::remove_cvref_t<T>, InputArchive>::value;

// TaskArgument<T>: T can be a parameter of a registered task: Serializable, and default
// constructible, because the receiving process builds the value and then loads into it.
template <class T>
concept TaskArgument = Serializable<T> && std::default_initializable<std::remove_cvref_t<T>>;

// save_fd / load_fd (below): a handle's descriptor in an archive.
template <class Archive>
void save_fd(Archive& ar, int fd);
template <class Archive>
int load_fd(Archive& ar);

namespace detail {

// Descriptors is a list of descriptors it owns (closed when destroyed or cleared; movable, not
// copyable) that can cross a process hand-off as descriptors: save() records each with save_fd,
// load() takes them back with load_fd. It holds a Payload's own descriptors, and the handles a
// process pool task's arguments carry, which travel beside the arguments' bytes (these refer to
// them by position).
class CONCUR_EXPORT Descriptors {
 public:
  Descriptors() noexcept = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  Descriptors(Descriptors&& other) noexcept : fds_(std::exchange(other.fds_, {})) {}
  Descriptors& operator=(Descriptors&& other) noexcept;
  ~Descriptors() { clear(); }

  // copy_of(fds): close-on-exec duplicates of fds, in order. Throws OSError (closing the ones
  // made) when the system refuses one (EMFILE).
  static Descriptors copy_of(const std::vector<int>& fds);
  // push_back(fd): the list owns fd from now on.
  void push_back(int fd) { fds_.push_back(fd); }
  [[nodiscard]] bool empty() const noexcept { return fds_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return fds_.size(); }
  // fds(): the descriptors, still owned by this list.
  [[nodiscard]] const std::vector<int>& fds() const noexcept { return fds_; }
  // release() hands the descriptors to the caller, who must close them; this list is then empty.
  [[nodiscard]] std::vector<int> release() noexcept { return std::exchange(fds_, {}); }
  // clear() closes them.
  void clear() noexcept;

  template <class Archive>
  void save(Archive& ar) const {
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(fds_.size())));
    for (const int fd : fds_) save_fd(ar, fd);
  }
  template <class Archive>
  void load(Archive& ar) {
    clear();
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    for (cereal::size_type i = 0; i < n; ++i) fds_.push_back(load_fd(ar));
  }

 private:
  std::vector<int> fds_;
};

// Remaker: a descriptor made for one hand-off (a Manager proxy's fresh connection), by position
// among the saved ones, and how to make another like it for a second hand-off of the same bytes.
struct Remaker {
  std::uint32_t index = 0;
  std::function<int()> make;
};

// FdSink collects the descriptors saved while a dumps() runs on this thread; `owned` are those
// created for the hand-off itself (save_owned_fd), which the Payload closes; `remakers` those of
// them that save_fresh_fd made.
struct FdSink {
  std::vector<int> fds;
  Descriptors owned;
  std::vector<Remaker> remakers;
};

}  // namespace detail

// Payload is serialized values: the bytes, and the file descriptors the bytes refer to (by index).
// Most descriptors belong to the objects that were saved (they stay valid while those objects
// live and are not closed); some were made for this hand-off and belong to the Payload, which
// closes them when destroyed. The sender passes them on (SCM_RIGHTS, or inheritance across fork).
struct Payload {
  std::string bytes;
  std::vector<int> fds;
  detail::Descriptors owned;
  // remakers: the owned descriptors that can be made again (save_fresh_fd), so that the same
  // bytes can go to several processes, each with descriptors of its own.
  std::vector<detail::Remaker> remakers;
};

namespace detail {

// FdSource hands received descriptors to the handles loaded from them. It owns them: a
// descriptor no handle took is closed when the source is destroyed.
class CONCUR_EXPORT FdSource {
 public:
  explicit FdSource(std::vector<int> owned) noexcept : fds_(std::move(owned)) {}
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;
  ~FdSource();
  // take(index) transfers descriptor `index` to the caller; throws UnpicklingError when the index
  // is out of range or was already taken.
  int take(std::uint32_t index);

 private:
  std::vector<int> fds_;
};

// The descriptor channel of the calling thread: set by dumps()/loads() (and by the process
// machinery) for the duration of one archive. Null outside of them.
CONCUR_EXPORT FdSink*& current_fd_sink() noexcept;
CONCUR_EXPORT FdSource*& current_fd_source() noexcept;

// ScopedFdSink / ScopedFdSource install a channel for the current thread and restore the
// previous one on exit (archives may nest: a Payload can be saved inside another).
class ScopedFdSink {
 public:
  explicit ScopedFdSink(FdSink& sink) noexcept
      : previous_(std::exchange(current_fd_sink(), &sink)) {}
  ScopedFdSink(const ScopedFdSink&) = delete;
  ScopedFdSink& operator=(const ScopedFdSink&) = delete;
  ~ScopedFdSink() { current_fd_sink() = previous_; }

 private:
  FdSink* previous_;
};

class ScopedFdSource {
 public:
  explicit ScopedFdSource(FdSource& source) noexcept
      : previous_(std::exchange(current_fd_source(), &source)) {}
  ScopedFdSource(const ScopedFdSource&) = delete;
  ScopedFdSource& operator=(const ScopedFdSource&) = delete;
  ~ScopedFdSource() { current_fd_source() = previous_; }

 private:
  FdSource* previous_;
};

// StringOutBuf appends everything written to a std::string; MemoryInBuf reads a string_view.
class StringOutBuf : public std::streambuf {
 public:
  explicit StringOutBuf(std::string& out) noexcept : out_(out) {}

 protected:
  int_type overflow(int_type ch) override {
    if (!traits_type::eq_int_type(ch, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(ch));
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }

 private:
  std::string& out_;
};

class MemoryInBuf : public std::streambuf {
 public:
  explicit MemoryInBuf(std::string_view in) noexcept {
    char* p = const_cast<char*>(in.data());  // never written: a get area only
    setg(p, p, p + in.size());
  }
};

[[noreturn]] CONCUR_EXPORT void throw_pickling(const char* what_happened);
[[noreturn]] CONCUR_EXPORT void throw_unpickling(const char* what_happened);

// require_serializable<T>() turns a missing serializer into one readable compile error.
template <class T>
consteval void require_task_argument() {
  static_assert(Serializable<T>,
                "concur::mp: this argument type is not serializable, so it cannot cross a "
                "process boundary. Give it a cereal serialize(Archive&) member (or save/load), or "
                "pass a type cereal knows (numbers, strings, standard containers, tuples...).");
  static_assert(std::default_initializable<std::remove_cvref_t<T>>,
                "concur::mp: a task argument type must be default constructible: the child "
                "process builds the value and then loads it.");
}

}  // namespace detail

// save_fd(ar, fd) records descriptor `fd` in the archive being written (for a handle type's
// save()). Throws PicklingError when no process hand-off is under way (a handle saved into plain
// bytes could never be revived), or when fd is negative (a closed handle).
template <class Archive>
void save_fd(Archive& ar, int fd) {
  detail::FdSink* sink = detail::current_fd_sink();
  if (sink == nullptr)
    throw PicklingError(
        "a handle (Connection, Lock, Value, Queue...) can only be passed to another process as a "
        "task argument or through a Connection, not serialized to plain bytes");
  if (fd < 0) throw PicklingError("a closed handle cannot be passed to another process");
  const auto index = static_cast<std::uint32_t>(sink->fds.size());
  sink->fds.push_back(fd);
  ar(index);
}

// save_owned_fd(ar, fd) is save_fd for a descriptor made for this hand-off (a fresh socket end):
// the Payload being written owns it and closes it once sent. Throws as save_fd (closing fd).
template <class Archive>
void save_owned_fd(Archive& ar, int fd) {
  detail::FdSink* sink = detail::current_fd_sink();
  if (fd >= 0) {
    if (sink != nullptr) {
      sink->owned.push_back(fd);
    } else {
      ::close(fd);  // save_fd throws: nothing will send it
      fd = -2;      // (save_fd's "no hand-off" error comes first)
    }
  }
  save_fd(ar, fd);
}

// save_fresh_fd(ar, make) is save_owned_fd(ar, make()) for a descriptor that `make` creates for
// each hand-off (a Manager proxy's new connection to its server): it is recorded with `make`, so
// that bytes written once can go to several processes, each with a descriptor of its own (a
// process pool's initializer arguments, sent to every worker it starts). Throws as save_fd, and
// what make() throws.
template <class Archive>
void save_fresh_fd(Archive& ar, std::function<int()> make) {
  detail::FdSink* sink = detail::current_fd_sink();
  const int fd = make();
  if (sink != nullptr && fd >= 0)
    sink->remakers.push_back({static_cast<std::uint32_t>(sink->fds.size()), std::move(make)});
  save_owned_fd(ar, fd);
}

// load_fd(ar) takes the descriptor recorded by save_fd from the received ones; the caller owns it.
// Throws UnpicklingError when the bytes name a descriptor that did not arrive.
template <class Archive>
int load_fd(Archive& ar) {
  std::uint32_t index = 0;
  ar(index);
  detail::FdSource* source = detail::current_fd_source();
  if (source == nullptr)
    throw UnpicklingError("a handle was loaded outside of a process hand-off (no descriptors)");
  return source->take(index);
}

// dumps(values...) serializes the values, in order, into one Payload. Throws PicklingError when
// cereal fails (the values are untouched).
template <class... Ts>
Payload dumps(const Ts&... values) {
  (detail::require_task_argument<Ts>(), ...);
  Payload out;
  detail::FdSink sink;
  {
    detail::ScopedFdSink scope(sink);
    detail::StringOutBuf buf(out.bytes);
    std::ostream os(&buf);
    try {
      OutputArchive ar(os);
      if constexpr (sizeof...(Ts) > 0) ar(values...);
    } catch (const cereal::Exception& e) {
      detail::throw_pickling(e.what());
    }
  }
  out.fds = std::move(sink.fds);
  out.owned = std::move(sink.owned);
  out.remakers = std::move(sink.remakers);
  return out;
}

// loads(bytes, fds, out...) reads values written by dumps() into `out...`, in order. It owns
// `fds` (descriptors received with the bytes): each is taken by the handle that refers to it, the
// rest are closed. Throws UnpicklingError on truncated or malformed bytes.
template <class... Ts>
void loads(std::string_view bytes, std::vector<int> fds, Ts&... out) {
  detail::FdSource source(std::move(fds));
  detail::ScopedFdSource scope(source);
  detail::MemoryInBuf buf(bytes);
  std::istream is(&buf);
  try {
    InputArchive ar(is);
    if constexpr (sizeof...(Ts) > 0) ar(out...);
  } catch (const cereal::Exception& e) {
    detail::throw_unpickling(e.what());
  }
}

namespace detail {

// ---- Serialized bytes that may live in a file

// SpilledBytes is serialized bytes held in memory or, once a SpillOutBuf writing them passed its
// threshold, in a sealed memfd: the bytes then take no room in this process's memory (its RSS)
// but in the kernel's, another process gets them as a descriptor (SCM_RIGHTS) and reads them with
// pread (SpillInBuf) — neither side ever copies them in user space, and the file can be sent
// again (it is sealed: nobody can change it). Movable; closes its file when destroyed or
// cleared. Serializable for a process hand-off only when in a file (the descriptor is saved with
// save_fd): inside dumps() / Connection::send(), loaded by loads() / Connection::recv().
class CONCUR_EXPORT SpilledBytes {
 public:
  SpilledBytes() noexcept = default;
  SpilledBytes(SpilledBytes&& other) noexcept;
  SpilledBytes& operator=(SpilledBytes&& other) noexcept;
  SpilledBytes(const SpilledBytes&) = delete;
  SpilledBytes& operator=(const SpilledBytes&) = delete;
  ~SpilledBytes();

  // in_file(): the bytes are in a memfd (fd()), not in bytes().
  [[nodiscard]] bool in_file() const noexcept { return fd_ >= 0; }
  [[nodiscard]] std::size_t size() const noexcept { return in_file() ? file_size_ : bytes_.size(); }
  // bytes(): the bytes, when in memory (empty when in a file).
  [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }
  // fd(): the memfd, still owned by this object; -1 when in memory.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  // clear() empties it: no bytes, in memory; the file, if any, is closed.
  void clear() noexcept;

  template <class Archive>
  void save(Archive& ar) const {
    ar(in_file());
    if (in_file()) {
      ar(static_cast<std::uint64_t>(file_size_));
      save_fd(ar, fd_);
    } else {
      ar(bytes_);
    }
  }
  template <class Archive>
  void load(Archive& ar) {
    clear();
    bool file = false;
    ar(file);
    if (file) {
      std::uint64_t size = 0;
      ar(size);
      adopt_file(load_fd(ar), size);
    } else {
      ar(bytes_);
    }
  }

 private:
  friend class SpillOutBuf;
  // adopt_file(fd, size) takes a received file said to hold `size` bytes. Throws UnpicklingError
  // (closing fd) when it holds fewer.
  void adopt_file(int fd, std::uint64_t size);

  std::string bytes_;
  int fd_ = -1;
  std::size_t file_size_ = 0;
  bool budgeted_ = false;  // made here by a SpillOutBuf: counts against the file budget
};

// SpillOutBuf writes serialized bytes into a SpilledBytes: into its memory while they fit in
// `threshold` bytes; past that, into a new close-on-exec memfd named `name` (the bytes so far
// first), through a 64 KiB buffer, a large write going straight to the file. It stays in memory
// when this process holds its budget of such files already (a quarter of RLIMIT_NOFILE, at most
// 1024: a backlog of large tasks must not take every descriptor) or memfd_create fails. close()
// ends a complete write: it flushes and seals the file (F_SEAL_WRITE, _GROW, _SHRINK, _SEAL).
// Without close() (an exception unwound the writer) the bytes are incomplete: clear() them.
// Writing the file throws OSError on failure (ENOMEM, ENOSPC). Not thread-safe (one writer).
class CONCUR_EXPORT SpillOutBuf : public std::streambuf {
 public:
  SpillOutBuf(SpilledBytes& out, std::size_t threshold, const char* name) noexcept
      : out_(out), threshold_(threshold), name_(name) {}
  SpillOutBuf(const SpillOutBuf&) = delete;
  SpillOutBuf& operator=(const SpillOutBuf&) = delete;
  ~SpillOutBuf() override = default;
  // close(): see the class comment. Throws OSError.
  void close();

 protected:
  int_type overflow(int_type ch) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;

 private:
  // spill() moves the bytes so far into a new file; false when no file can be had.
  bool spill();
  void flush_staged();
  void write_file(const char* s, std::size_t n);

  SpilledBytes& out_;
  std::size_t threshold_;
  const char* name_;
  bool memory_only_ = false;  // no file to be had: stay in memory
  std::string staged_;        // file mode: bytes not written to the file yet
};

// SpillInBuf reads a SpilledBytes from the start: bytes in memory directly, a file by pread
// through a 64 KiB buffer, a large read going straight into the destination (cereal reads a long
// string or vector in one sgetn). pread never moves the file offset, which the descriptor shares
// with every process it was sent to. A read error or a file shorter than its size ends the input
// early (the archive then throws). The SpilledBytes must outlive it.
class CONCUR_EXPORT SpillInBuf : public std::streambuf {
 public:
  explicit SpillInBuf(const SpilledBytes& in);
  // SpillInBuf(in, release_when_read): with release_when_read, `in` is cleared (its file closed)
  // as soon as its last byte has been read — a worker lets go of a task's argument file before
  // it runs the task.
  SpillInBuf(SpilledBytes& in, bool release_when_read);
  SpillInBuf(const SpillInBuf&) = delete;
  SpillInBuf& operator=(const SpillInBuf&) = delete;
  ~SpillInBuf() override = default;

 protected:
  int_type underflow() override;
  std::streamsize xsgetn(char* s, std::streamsize n) override;

 private:
  // read_file(out, n) preads up to n bytes at pos_ into out; returns how many it got.
  std::size_t read_file(char* out, std::size_t n);

  int fd_ = -1;
  std::size_t size_ = 0;
  std::size_t pos_ = 0;  // the file offset of the next byte not in the get area
  std::unique_ptr<char[]> buf_;
  SpilledBytes* release_ = nullptr;  // cleared once the file is read to its end
};

// SpillReader holds the streambuf that reads a SpilledBytes (rdbuf()): a MemoryInBuf over bytes
// in memory (the cheapest reads of small items: SpillInBuf's file path is not in their way), a
// SpillInBuf over a file. The SpilledBytes must outlive it.
class SpillReader {
 public:
  explicit SpillReader(const SpilledBytes& in) : memory_(in.bytes()) {
    if (in.in_file()) file_.emplace(in);
  }
  // SpillReader(in, release_when_read): see SpillInBuf.
  SpillReader(SpilledBytes& in, bool release_when_read) : memory_(in.bytes()) {
    if (in.in_file()) file_.emplace(in, release_when_read);
  }
  SpillReader(const SpillReader&) = delete;
  SpillReader& operator=(const SpillReader&) = delete;
  [[nodiscard]] std::streambuf* rdbuf() noexcept {
    if (file_) return &*file_;
    return &memory_;
  }

 private:
  MemoryInBuf memory_;
  std::optional<SpillInBuf> file_;
};

// loads_spilled(in, out...) is loads() reading a SpilledBytes (no descriptors may come with it).
// Throws UnpicklingError on truncated or malformed bytes.
template <class... Ts>
void loads_spilled(const SpilledBytes& in, Ts&... out) {
  FdSource source({});
  ScopedFdSource scope(source);
  SpillReader reader(in);
  std::istream is(reader.rdbuf());
  try {
    InputArchive ar(is);
    if constexpr (sizeof...(Ts) > 0) ar(out...);
  } catch (const cereal::Exception& e) {
    throw_unpickling(e.what());
  }
}

}  // namespace detail

}  // namespace concur::mp
