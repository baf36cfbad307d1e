// concur/concur.hpp — includes every public concur header.
#pragma once

#include "concur/errors.hpp"
#include "concur/executor.hpp"
#include "concur/future.hpp"
#include "concur/local.hpp"
#include "concur/queue.hpp"
#include "concur/subprocess.hpp"
#include "concur/sync/barrier.hpp"
#include "concur/sync/condition.hpp"
#include "concur/sync/event.hpp"
#include "concur/sync/lock.hpp"
#include "concur/sync/lock_order.hpp"
#include "concur/sync/rlock.hpp"
#include "concur/sync/semaphore.hpp"
#include "concur/thread.hpp"
#include "concur/thread_pool.hpp"
#include "concur/timer.hpp"
