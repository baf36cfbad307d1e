// settings_test: Scrapy's NAME=VALUE settings (crawl/settings.hpp): every kind parses and prints
// back, bad names and values are ValueErrors naming the setting, validate() catches ranges.
#include "concur/crawl/settings.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "concur/errors.hpp"

namespace concur::crawl {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ValueError& e) {
    return e.what();
  }
  return "no error";
}

TEST(SettingsTest, DefaultsAreScrapysProjectDefaults) {
  const Settings s;
  EXPECT_EQ(s.concurrent_requests, 16);
  EXPECT_EQ(s.concurrent_requests_per_domain, 8);
  EXPECT_EQ(s.retry_times, 2);
  EXPECT_EQ(s.retry_http_codes, (std::vector<int>{500, 502, 503, 504, 522, 524, 408, 429}));
  EXPECT_TRUE(s.robotstxt_obey);
  EXPECT_EQ(s.redirect_max_times, 20);
  EXPECT_DOUBLE_EQ(s.download_timeout, 180.0);
  EXPECT_EQ(s.get("URLLENGTH_LIMIT"), "2083");
  EXPECT_NO_THROW(s.validate());
}

TEST(SettingsTest, EveryKindParsesAndPrintsBack) {
  Settings s;
  s.set("CONCURRENT_REQUESTS", "32");
  s.set("DOWNLOAD_DELAY", " 0.25 ");
  s.set("ROBOTSTXT_OBEY", "False");
  s.set("AUTOTHROTTLE_ENABLED", "1");
  s.set("DOWNLOAD_MAXSIZE", "1048576");
  s.set("USER_AGENT", "MyBot/2.0");
  s.set("RETRY_HTTP_CODES", "500, 503");
  s.set("HTTPERROR_ALLOWED_CODES=[404,410]");
  s.set("DOWNLOAD_SLOTS", R"({"a.example": {"concurrency": 2, "delay": 1.5}})");
  EXPECT_EQ(s.concurrent_requests, 32);
  EXPECT_DOUBLE_EQ(s.download_delay, 0.25);
  EXPECT_FALSE(s.robotstxt_obey);
  EXPECT_TRUE(s.autothrottle_enabled);
  EXPECT_EQ(s.download_maxsize, 1048576u);
  EXPECT_EQ(s.user_agent, "MyBot/2.0");
  EXPECT_EQ(s.retry_http_codes, (std::vector<int>{500, 503}));
  EXPECT_EQ(s.httperror_allowed_codes, (std::vector<int>{404, 410}));
  ASSERT_EQ(s.download_slots.count("a.example"), 1u);
  EXPECT_EQ(s.download_slots.at("a.example").concurrency, 2);
  EXPECT_EQ(s.download_slots.at("a.example").delay, 1.5);
  EXPECT_FALSE(s.download_slots.at("a.example").randomize_delay.has_value());

  EXPECT_EQ(s.get("CONCURRENT_REQUESTS"), "32");
  EXPECT_EQ(s.get("DOWNLOAD_DELAY"), "0.25");
  EXPECT_EQ(s.get("ROBOTSTXT_OBEY"), "False");
  EXPECT_EQ(s.get("RETRY_HTTP_CODES"), "500,503");
  EXPECT_EQ(s.get("DOWNLOAD_SLOTS"), R"({"a.example":{"concurrency":2,"delay":1.5}})");
  // What get() prints, set() takes.
  for (const std::string& name : Settings::names()) {
    Settings copy;
    EXPECT_NO_THROW(copy.set(name, s.get(name))) << name;
    EXPECT_EQ(copy.get(name), s.get(name)) << name;
  }
}

TEST(SettingsTest, NamesAreSortedAndComplete) {
  const auto names = Settings::names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_GE(names.size(), 40u);
  for (const char* n : {"CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "DOWNLOAD_DELAY",
                        "RANDOMIZE_DOWNLOAD_DELAY", "AUTOTHROTTLE_TARGET_CONCURRENCY",
                        "RETRY_TIMES", "ROBOTSTXT_OBEY", "DEPTH_LIMIT", "CLOSESPIDER_PAGECOUNT"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

TEST(SettingsTest, BadNamesAndValuesNameTheSetting) {
  Settings s;
  EXPECT_NE(error_of([&] { s.set("CONCURENT_REQUESTS", "4"); }).find("CONCURENT_REQUESTS"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.set("CONCURRENT_REQUESTS", "4x"); }).find("CONCURRENT_REQUESTS"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.set("DOWNLOAD_DELAY", "fast"); }).find("a number"), std::string::npos);
  EXPECT_NE(error_of([&] { s.set("DOWNLOAD_DELAY", "inf"); }).find("a number"), std::string::npos);
  EXPECT_NE(error_of([&] { s.set("ROBOTSTXT_OBEY", "yes"); }).find("boolean"), std::string::npos);
  EXPECT_NE(error_of([&] { s.set("RETRY_HTTP_CODES", "500,,503"); }).find("RETRY_HTTP_CODES"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.set("DOWNLOAD_SLOTS", "{\"a\": 3}"); }).find("DOWNLOAD_SLOTS"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.set("DOWNLOAD_SLOTS", "not json"); }).find("DOWNLOAD_SLOTS"),
            std::string::npos);
  EXPECT_NE(error_of([&] { s.set("NO_EQUALS_SIGN"); }).find("NAME=VALUE"), std::string::npos);
  EXPECT_NE(error_of([&] { (void)s.get("NOPE"); }).find("NOPE"), std::string::npos);
  // A failed set() leaves the setting as it was.
  EXPECT_EQ(s.concurrent_requests, 16);
}

TEST(SettingsTest, ValidateRejectsOutOfRangeValues) {
  auto invalid = [](const char* name, const char* value) {
    Settings s;
    s.set(name, value);
    return error_of([&] { s.validate(); });
  };
  EXPECT_NE(invalid("CONCURRENT_REQUESTS", "0").find("CONCURRENT_REQUESTS"), std::string::npos);
  EXPECT_NE(invalid("DOWNLOAD_DELAY", "-1").find("DOWNLOAD_DELAY"), std::string::npos);
  EXPECT_NE(invalid("AUTOTHROTTLE_TARGET_CONCURRENCY", "0").find("greater than 0"),
            std::string::npos);
  EXPECT_NE(invalid("SCHEDULER_ORDER", "random").find("lifo or fifo"), std::string::npos);
  EXPECT_NE(invalid("LOG_LEVEL", "LOUD").find("LOG_LEVEL"), std::string::npos);
  EXPECT_NE(invalid("RETRY_HTTP_CODES", "5000").find("5000"), std::string::npos);
  EXPECT_NE(invalid("DOWNLOAD_SLOTS", R"({"x": {"concurrency": 0}})").find("'x'"),
            std::string::npos);
}

}  // namespace
}  // namespace concur::crawl
