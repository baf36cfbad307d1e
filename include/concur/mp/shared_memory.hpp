// concur/mp/shared_memory.hpp — shared memory between processes: SharedMemory (Python's
// multiprocessing.shared_memory.SharedMemory), Value<T> and Array<T> (multiprocessing.Value /
// Array), and the OSError family they throw (FileExistsError, FileNotFoundError).
//
// SharedMemory is a named POSIX block (shm_open + ftruncate + mmap): create(size, name) makes one,
// attach(name) maps an existing one, close() unmaps this process's view, unlink() removes the name.
// As in Python the destructor only closes; the creator must unlink() explicitly, or the block
// lives until reboot.
// Value<T> and Array<T> live in a memfd-backed shared mapping made at construction: children
// forked afterwards share it, and any other process (spawn, forkserver) receives it as a task
// argument or through a Connection — both are mp::Serializable (the descriptor travels, not the
// bytes), and the loaded object shares the memory *and the lock* with the original. Loading into
// an existing object replaces its memory and lock. With Options{.lock = true} (the default) each
// carries a process-shared mp::RLock (get_lock()), as Python does.
// Thread- and process-safety: the objects themselves are like std::vector (one thread uses or
// moves a given object); the memory they point to is shared and unsynchronized except through
// get_lock() or the locked value()/set_value() of a locked Value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "concur/detail/config.hpp"
#include "concur/errors.hpp"
#include "concur/mp/synchronize.hpp"

namespace concur::mp {

// ---- Errors (Python's OSError family; here because only this layer throws them).

// OSError: a system call on a shared-memory object failed. what() is Python's text:
// "OSError: [Errno 28] No space left on device: '/name'".
class CONCUR_EXPORT OSError : public Error {
 public:
  OSError(int errno_code, const std::string& filename);
  [[nodiscard]] int errno_code() const noexcept { return errno_; }
  [[nodiscard]] const std::string& filename() const noexcept { return filename_; }

 protected:
  OSError(const char* type_name, int errno_code, const std::string& filename);

 private:
  int errno_;
  std::string filename_;
};

// FileExistsError: create() with a name already in use (EEXIST):
// "FileExistsError: [Errno 17] File exists: '/name'".
class CONCUR_EXPORT FileExistsError : public OSError {
 public:
  explicit FileExistsError(const std::string& filename);
};

// FileNotFoundError: attach() or unlink() of a name that does not exist (ENOENT):
// "FileNotFoundError: [Errno 2] No such file or directory: '/name'".
class CONCUR_EXPORT FileNotFoundError : public OSError {
 public:
  explicit FileNotFoundError(const std::string& filename);
};

// ---- SharedMemory

class CONCUR_EXPORT SharedMemory {
 public:
  // create(size, name) creates a new block of `size` bytes (zero-filled) and maps it. An empty
  // name picks a fresh "/concur_<pid>_<counter>_<random>"; a name without a leading '/' gets one.
  // Throws ValueError when size is 0, FileExistsError when the name exists, OSError otherwise.
  static SharedMemory create(std::size_t size, std::string name = {});
  // attach(name) maps the existing block `name` (read-write); size() is the block's size.
  // Throws FileNotFoundError when no such block exists, ValueError when it is empty.
  static SharedMemory attach(std::string name);

  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  // Moves transfer the mapping; the moved-from object is closed (data() null, size() 0).
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  // ~SharedMemory() closes (unmaps) this process's view; it never unlinks.
  ~SharedMemory();

  // name() is the block's name, with its leading '/' (kept after close()).
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // size() is the mapped size in bytes; 0 once closed.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  // data() is the start of the mapping; nullptr once closed.
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  // buf() is the mapping as a span (Python's .buf); empty once closed.
  [[nodiscard]] std::span<std::byte> buf() const noexcept { return {data_, size_}; }
  // close() unmaps this process's view; other processes and the name are unaffected. Idempotent.
  void close() noexcept;
  // unlink() removes the name, so no new attach() can find it; existing mappings stay valid and
  // the memory is freed when the last one is closed. Throws FileNotFoundError when the name was
  // already removed.
  void unlink();

 private:
  SharedMemory(std::string name, std::byte* data, std::size_t size) noexcept
      : name_(std::move(name)), data_(data), size_(size) {}

  std::string name_;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// ---- Value and Array

// Options configures a Value or Array: lock = true gives it a process-shared RLock (get_lock())
// and makes Value's value()/set_value() take it; lock = false gives plain, unlocked access and
// get_lock() throws InvalidStateError (Python's Value(lock=False) has no get_lock at all).
struct Options {
  bool lock = true;
};

namespace detail {

// SharedBlock owns `count` T in a SharedRegion, plus the optional lock. Serializable: the region
// and the lock travel together, so a loaded Value or Array shares both with the original.
template <class T>
class SharedBlock {
  static_assert(std::is_trivially_copyable_v<T>,
                "concur::mp::Value<T> / Array<T>: T must be trivially copyable, because its bytes "
                "are shared between processes (no constructors, destructors or pointers to "
                "process-local memory run across the boundary)");

 public:
  SharedBlock(std::size_t count, Options options)
      : count_(count),
        region_(bytes(count)),
        lock_(options.lock ? std::make_unique<RLock>() : nullptr) {}
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
  SharedBlock(SharedBlock&& other) noexcept
      : count_(std::exchange(other.count_, 0)),
        region_(std::move(other.region_)),
        lock_(std::move(other.lock_)) {}
  SharedBlock& operator=(SharedBlock&& other) noexcept {
    if (this != &other) {
      count_ = std::exchange(other.count_, 0);
      region_ = std::move(other.region_);
      lock_ = std::move(other.lock_);
    }
    return *this;
  }
  ~SharedBlock() = default;

  [[nodiscard]] std::size_t count() const noexcept { return count_; }
  [[nodiscard]] T* data() const noexcept { return region_.template as<T>(); }
  [[nodiscard]] RLock* lock() const noexcept { return lock_.get(); }
  RLock& require_lock(const char* what) const {
    if (!lock_) throw InvalidStateError(std::string(what) + " was created with lock = false");
    return *lock_;
  }

  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<std::uint64_t>(count_), region_, lock_ != nullptr);
    if (lock_) ar(*lock_);
  }
  // load replaces the region and the lock (all or nothing: on a throw the block is unchanged).
  template <class Archive>
  void load(Archive& ar) {
    std::uint64_t count = 0;
    SharedRegion region;
    bool has_lock = false;
    ar(count, region, has_lock);
    if (count > SIZE_MAX / sizeof(T) || region.size() != bytes(static_cast<std::size_t>(count))) {
      throw UnpicklingError("a shared Value/Array arrived with a region of the wrong size");
    }
    std::unique_ptr<RLock> lock;
    if (has_lock) {
      lock = std::make_unique<RLock>(ForLoad{});
      ar(*lock);
    }
    count_ = static_cast<std::size_t>(count);
    region_ = std::move(region);
    lock_ = std::move(lock);
  }

 private:
  // bytes(count) is at least 1, so a zero-length Array still owns a (tiny) region.
  static std::size_t bytes(std::size_t count) noexcept {
    return count == 0 ? 1 : count * sizeof(T);
  }

  std::size_t count_;
  SharedRegion region_;
  std::unique_ptr<RLock> lock_;
};

}  // namespace detail

// Value<T> is multiprocessing.Value: one T in shared memory, shared with children forked after
// construction and with processes it is sent to (save / load). value() / set_value() take
// get_lock() when the Value has one, so each single read or write is atomic across processes; a
// read-modify-write (`v.set_value(v.value() + 1)`) is not, exactly as in Python — hold get_lock()
// around it.
// Memory ordering: writes made under get_lock() are visible to the next holder of the lock.
template <class T>
class Value {
 public:
  // Value(initial, options) maps the shared T, initialized to `initial`. Throws OSError when the
  // system refuses the mapping.
  explicit Value(T initial = T{}, Options options = {}) : block_(1, options) {
    *block_.data() = initial;
  }
  Value(const Value&) = delete;
  Value& operator=(const Value&) = delete;
  // Moves transfer the mapping (and the lock); the moved-from Value may only be destroyed or
  // assigned to.
  Value(Value&&) noexcept = default;
  Value& operator=(Value&&) noexcept = default;
  ~Value() = default;

  // value() reads the T (under get_lock() when the Value has a lock).
  [[nodiscard]] T value() const {
    if (RLock* lock = block_.lock()) {
      std::scoped_lock guard(*lock);
      return *block_.data();
    }
    return *block_.data();
  }
  // set_value(v) writes the T (under get_lock() when the Value has a lock).
  void set_value(const T& v) {
    if (RLock* lock = block_.lock()) {
      std::scoped_lock guard(*lock);
      *block_.data() = v;
      return;
    }
    *block_.data() = v;
  }
  // get_lock() is the process-shared RLock guarding the value; throws InvalidStateError when the
  // Value was made with Options{.lock = false}.
  [[nodiscard]] RLock& get_lock() const { return block_.require_lock("Value"); }
  // get_obj() is the raw shared T, for unlocked access or access while holding get_lock()
  // (Python's .get_obj()).
  [[nodiscard]] T& get_obj() const noexcept { return *block_.data(); }

  // save / load: cereal; the memory and the lock travel together (see the header comment).
  template <class Archive>
  void save(Archive& ar) const {
    ar(block_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(block_);
  }

 private:
  detail::SharedBlock<T> block_;
};

// Array<T> is multiprocessing.Array: `size` T in shared memory (zero-filled), shared with
// children forked after construction and with processes it is sent to (save / load). operator[] and
// data() give plain references: an element access is not synchronized even when the Array has a
// lock (unlike Python's SynchronizedArray, which locks each item access); hold get_lock() around
// accesses that other processes may race.
// Memory ordering: writes made under get_lock() are visible to the next holder of the lock.
template <class T>
class Array {
 public:
  // Array() is an empty (size 0) locked Array, mainly a target for loads().
  Array() : Array(0) {}
  // Array(size, options) maps `size` zero-filled T. Throws OSError when the system refuses.
  explicit Array(std::size_t size, Options options = {}) : block_(size, options) {}
  // Array(init, options) maps init.size() T copied from init (Python's Array('i', range(10))).
  Array(std::initializer_list<T> init, Options options = {}) : block_(init.size(), options) {
    std::size_t i = 0;
    for (const T& v : init) block_.data()[i++] = v;
  }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  Array(Array&&) noexcept = default;
  Array& operator=(Array&&) noexcept = default;
  ~Array() = default;

  // operator[](i) is element i (precondition: i < size(); not checked, as std::vector).
  [[nodiscard]] T& operator[](std::size_t i) const noexcept { return block_.data()[i]; }
  // size() is the number of elements.
  [[nodiscard]] std::size_t size() const noexcept { return block_.count(); }
  // data() is the first element.
  [[nodiscard]] T* data() const noexcept { return block_.data(); }
  // begin() / end() iterate the elements.
  [[nodiscard]] T* begin() const noexcept { return block_.data(); }
  [[nodiscard]] T* end() const noexcept { return block_.data() + block_.count(); }
  // get_lock() is the process-shared RLock of the Array; throws InvalidStateError when the Array
  // was made with Options{.lock = false}.
  [[nodiscard]] RLock& get_lock() const { return block_.require_lock("Array"); }

  // save / load: cereal; the memory and the lock travel together; a loaded Array takes the size
  // of the one saved.
  template <class Archive>
  void save(Archive& ar) const {
    ar(block_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(block_);
  }

 private:
  detail::SharedBlock<T> block_;
};

}  // namespace concur::mp
