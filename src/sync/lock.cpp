// Lock: release, naming, and the lock-order-tracked acquisition path.
#include "concur/sync/lock.hpp"

#include <cstdio>

#include "concur/errors.hpp"

namespace concur {

namespace {
std::string address_name(const char* kind, const void* p) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s@%p", kind, p);
  return buf;
}
}  // namespace

Lock::~Lock() {
  if (detail::lock_order_on()) detail::lock_order_forget(this);
}

void Lock::release() {
  if (detail::lock_order_on()) [[unlikely]]
    detail::lock_order_released(this);
  if (mu_.unlock() == 0) throw RuntimeError("release unlocked lock");
}

std::string Lock::name() const { return name_.empty() ? address_name("Lock", this) : name_; }

bool Lock::acquire_tracked(const detail::Deadline& deadline) {
  // Check before blocking, so an inversion is reported even on runs that would not deadlock.
  // A free lock cannot block us, but its order still counts: check regardless.
  detail::lock_order_before_acquire(this, name());
  const bool taken = mu_.lock_until(deadline);
  if (taken) detail::lock_order_acquired(this);
  return taken;
}

}  // namespace concur
