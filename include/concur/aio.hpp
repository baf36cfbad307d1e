// concur/aio.hpp — the whole coroutine layer, Python's asyncio: the event loop, tasks, the
// combinators, TaskGroup, the bridges to threads and executors, the coroutine locks and queues,
// streams, the low-level socket operations (see each header).
#pragma once

#include "concur/aio/combinators.hpp"
#include "concur/aio/loop.hpp"
#include "concur/aio/queue.hpp"
#include "concur/aio/sockets.hpp"
#include "concur/aio/streams.hpp"
#include "concur/aio/subprocess.hpp"
#include "concur/aio/sync.hpp"
#include "concur/aio/task.hpp"
#include "concur/aio/task_group.hpp"
#include "concur/aio/threads.hpp"
