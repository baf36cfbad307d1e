// Notes 11-11 "进程间通信 - Manager": progress_dict = Manager().dict(); two processes run
// add_data(progress_dict, "bobby1", 22) and add_data(progress_dict, "bobby2", 23); the parent
// prints {'bobby1': 22, 'bobby2': 23}. The dict lives in the manager's server process; every
// single operation on it is atomic, a read-modify-write is not (the notes' warning to add a Lock)
// — increment() is the atomic form of `d[k] += 1`, shown with four counting processes.
#include <cstdio>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace mp = concur::mp;

namespace {

void add_data(mp::DictProxy<std::string, int> p_dict, std::string key, int value) {
  p_dict.set(key, value);
}
CONCUR_TASK(add_data);

void count(mp::DictProxy<std::string, int> p_dict, int times) {
  for (int i = 0; i < times; ++i) (void)p_dict.increment("hits");
}
CONCUR_TASK(count);

}  // namespace

int main() {
  mp::Manager manager;
  auto progress_dict = manager.dict<std::string, int>();

  mp::Process first_progress(add_data, progress_dict, "bobby1", 22);
  mp::Process second_progress(add_data, progress_dict, "bobby2", 23);
  first_progress.start();
  second_progress.start();
  first_progress.join();
  second_progress.join();

  std::printf("{");
  const char* sep = "";
  for (const auto& [key, value] : progress_dict.items()) {
    std::printf("%s'%s': %d", sep, key.c_str(), value);
    sep = ", ";
  }
  std::printf("}\n");
  const bool filled = progress_dict.get("bobby1") == 22 && progress_dict.get("bobby2") == 23;

  std::vector<mp::Process> counters;
  for (int i = 0; i < 4; ++i) counters.emplace_back(count, progress_dict, 250);
  for (auto& p : counters) p.start();
  for (auto& p : counters) p.join();
  const int hits = progress_dict.at("hits");
  std::printf("4 processes x 250 increments: %d\n", hits);

  return filled && hits == 1000 ? 0 : 1;
}
