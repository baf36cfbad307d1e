// An outside program linking single layers of an installed concur (concur::futures) and two
// components (concur::crawl, concur::dist), to show each brings what it needs and no more.
#include <concur/crawl/url.hpp>
#include <concur/dist/redis.hpp>
#include <concur/thread_pool.hpp>
#include <cstdio>
#include <string>

int main() {
  concur::ThreadPoolExecutor pool(1);
  const int v = pool.submit([] { return 41 + 1; }).result();
  const std::string url = concur::crawl::canonicalize_url("http://Example.com/a?b=2&a=1#frag");
  const concur::dist::RedisUrl redis = concur::dist::RedisUrl::parse("redis://10.0.0.5:6380/2");
  const bool ok =
      v == 42 && url == "http://example.com/a?a=1&b=2" && redis.port == 6380 && redis.db == 2;
  std::printf("futures %d, crawl %s, dist %s:%d/%d\n", v, url.c_str(), redis.host.c_str(),
              redis.port, redis.db);
  return ok ? 0 : 1;
}
