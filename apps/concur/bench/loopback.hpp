// bench/loopback.hpp — ports on 127.0.0.1 for the servers `concur bench` starts (gunicorn for
// serve_*, redis-server for is_prime_redis).
#pragma once

#include <cstdint>

namespace concur::apps::bench {

// free_loopback_port(): a loopback port nothing listened on a moment ago (bound, then released: a
// race with other binders, which the callers retry with another port). Throws std::system_error.
std::uint16_t free_loopback_port();

}  // namespace concur::apps::bench
