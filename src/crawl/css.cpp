// CSS selectors to XPath 1.0 (include/concur/crawl/selector.hpp, css_to_xpath), in cssselect's
// translation scheme with parsel's ::text and ::attr(name). A recursive-descent parser over the
// selector text builds each step's XPath directly; docs/internals/crawl-parse.md has the table.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "concur/crawl/selector.hpp"
#include "concur/errors.hpp"
#include "internal.hpp"

namespace concur::crawl {

namespace {

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || static_cast<unsigned char>(c) >= 0x80;
}

bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// cat(parts...): concatenation (g++ 12 warns falsely, -Wrestrict, on "literal" + std::string&&).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// xpath_literal(s): s as an XPath 1.0 string literal (which has no escapes: concat() when s holds
// both quote characters).
std::string xpath_literal(std::string_view s) {
  if (s.find('\'') == std::string_view::npos) return cat("'", s, "'");
  if (s.find('"') == std::string_view::npos) return cat("\"", s, "\"");
  std::string out = "concat(";
  std::size_t start = 0;
  bool first = true;
  while (start < s.size()) {
    std::size_t q = s.find('\'', start);
    if (!first) out += ", ";
    first = false;
    if (q == start) {
      out += "\"'\"";
      start = q + 1;
    } else {
      std::size_t end = q == std::string_view::npos ? s.size() : q;
      out += '\'';
      out.append(s.substr(start, end - start));
      out += '\'';
      start = end;
    }
  }
  return out + ")";
}

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// An+B (nth-child's argument).
struct Nth {
  long a = 0;
  long b = 0;
};

// nth_condition(count_expr, nth): the condition that position count_expr + 1 is a*n + b for some
// n >= 0.
std::string nth_condition(const std::string& count, Nth nth) {
  long b1 = nth.b - 1;  // count = position - 1
  if (nth.a == 0) return count + " = " + std::to_string(b1);
  if (nth.a > 0) {
    std::string cond =
        "(" + count + " - " + std::to_string(b1) + ") mod " + std::to_string(nth.a) + " = 0";
    if (b1 > 0) cond = count + " >= " + std::to_string(b1) + " and " + cond;
    return cond;
  }
  return count + " <= " + std::to_string(b1) + " and (" + std::to_string(b1) + " - " + count +
         ") mod " + std::to_string(-nth.a) + " = 0";
}

// One compound selector's translation.
struct Step {
  std::string element = "*";  // the node test
  bool bare = true;           // no type, no condition
  std::vector<std::string> conditions;
  std::string pseudo;  // "", "text" or "attr"
  std::string pseudo_arg;

  [[nodiscard]] std::string xpath() const {
    std::string out = element;
    if (!conditions.empty()) {
      out += '[';
      for (std::size_t i = 0; i < conditions.size(); ++i) {
        if (i > 0) out += " and ";
        out += conditions.size() == 1 ? conditions[i] : "(" + conditions[i] + ")";
      }
      out += ']';
    }
    return out;
  }
};

class Translator {
 public:
  explicit Translator(std::string_view css) : s_(css) {}

  std::string group(std::string_view prefix) {
    std::string out;
    while (true) {
      skip_space();
      if (!out.empty()) out += " | ";
      out += selector(prefix);
      skip_space();
      if (at_end()) break;
      if (peek() != ',') fail("expected ',' or the end");
      ++i_;
    }
    return out;
  }

 private:
  std::string selector(std::string_view prefix) {
    std::string path(prefix);
    Step step = compound();
    append_step(path, "", step);
    while (true) {
      bool space = skip_space();
      if (at_end() || peek() == ',') break;
      if (!step.pseudo.empty()) fail("a pseudo-element must end the selector");
      std::string_view combinator = kDescendant;
      char c = peek();
      if (c == '>' || c == '+' || c == '~') {
        ++i_;
        skip_space();
        if (c == '>') combinator = "/";
        if (c == '+') combinator = "/following-sibling::*[1]/self::";
        if (c == '~') combinator = "/following-sibling::";
      } else if (!space) {
        fail("unexpected character");
      }
      step = compound();
      append_step(path, combinator, step);
    }
    return path;
  }

  static constexpr std::string_view kDescendant = "/descendant-or-self::*/";

  // append_step(path, combinator, step): a bare "::text" first or after a descendant combinator
  // is the text nodes themselves ("descendant-or-self::text()", as parsel), a bare "::attr(x)"
  // after a descendant combinator the attributes; otherwise the pseudo-element is a last step.
  static void append_step(std::string& path, std::string_view combinator, const Step& step) {
    path += combinator;
    if (step.pseudo.empty()) {
      path += step.xpath();
    } else if (step.bare && step.pseudo == "text" &&
               (combinator.empty() || combinator == kDescendant)) {
      path += "text()";
    } else if (step.bare && step.pseudo == "attr" && combinator == kDescendant) {
      path += "@" + step.pseudo_arg;
    } else {
      path += step.xpath();
      path += step.pseudo == "text" ? "/text()" : "/@" + step.pseudo_arg;
    }
  }

  Step compound() {
    Step step;
    std::size_t start = i_;
    if (!at_end() && peek() == '*') {
      ++i_;
    } else if (!at_end() && (is_name_char(peek()) || peek() == '\\')) {
      step.element = lower(identifier());
      step.bare = false;
    }
    while (!at_end()) {
      char c = peek();
      if (c == '#') {
        ++i_;
        std::string id = name();
        step.conditions.push_back(cat("@id = ", xpath_literal(id)));
      } else if (c == '.') {
        ++i_;
        std::string cls = identifier();
        step.conditions.push_back(
            cat("@class and contains(concat(' ', normalize-space(@class), ' '), ",
                xpath_literal(cat(" ", cls, " ")), ")"));
      } else if (c == '[') {
        ++i_;
        step.conditions.push_back(attribute());
      } else if (c == ':' && i_ + 1 < s_.size() && s_[i_ + 1] == ':') {
        i_ += 2;
        pseudo_element(step);
        break;
      } else if (c == ':') {
        ++i_;
        step.conditions.push_back(pseudo_class(step));
      } else {
        break;
      }
    }
    if (!step.conditions.empty()) step.bare = false;
    if (i_ == start) fail("expected a selector");
    return step;
  }

  std::string attribute() {
    skip_space();
    std::string attr = cat("@", lower(identifier()));
    skip_space();
    if (at_end()) fail("unclosed '['");
    if (peek() == ']') {
      ++i_;
      return attr;
    }
    std::string op;
    if (peek() == '=') {
      op = "=";
      ++i_;
    } else if (i_ + 1 < s_.size() && s_[i_ + 1] == '=' &&
               std::string_view("~^$*|").find(peek()) != std::string_view::npos) {
      op = std::string(1, peek()) + "=";
      i_ += 2;
    } else {
      fail("expected an attribute operator");
    }
    skip_space();
    std::string value;
    if (!at_end() && (peek() == '"' || peek() == '\'')) {
      value = string_literal();
    } else {
      value = identifier();
    }
    skip_space();
    if (at_end() || peek() != ']') fail("expected ']'");
    ++i_;
    std::string lit = xpath_literal(value);
    if (op == "=") return attr + " = " + lit;
    if (op == "|=") {
      return attr + " and (" + attr + " = " + lit + " or starts-with(" + attr + ", " +
             xpath_literal(value + "-") + "))";
    }
    if (value.empty()) return "0";  // ~= ^= $= *= with an empty value match nothing
    if (op == "~=") {
      if (value.find_first_of(" \t\n\r\f") != std::string::npos) return "0";
      return attr + " and contains(concat(' ', normalize-space(" + attr + "), ' '), " +
             xpath_literal(" " + value + " ") + ")";
    }
    if (op == "^=") return attr + " and starts-with(" + attr + ", " + lit + ")";
    if (op == "$=") {
      return attr + " and substring(" + attr + ", string-length(" + attr + ") - " +
             std::to_string(code_points(value) - 1) + ") = " + lit;
    }
    return attr + " and contains(" + attr + ", " + lit + ")";  // *=
  }

  std::string pseudo_class(const Step& step) {
    std::string name = lower(identifier());
    const std::string prev = "count(preceding-sibling::*)";
    const std::string next = "count(following-sibling::*)";
    auto of_type = [&](const char* axis) {
      if (step.bare || step.element == "*") fail("*:" + name + " needs an element type");
      return std::string("count(") + axis + "::" + step.element + ")";
    };
    if (name == "first-child") return prev + " = 0";
    if (name == "last-child") return next + " = 0";
    if (name == "only-child") return prev + " = 0 and " + next + " = 0";
    if (name == "empty") return "not(*) and not(string-length())";
    if (name == "first-of-type") return of_type("preceding-sibling") + " = 0";
    if (name == "last-of-type") return of_type("following-sibling") + " = 0";
    if (name == "nth-child" || name == "nth-last-child" || name == "nth-of-type" ||
        name == "nth-last-of-type") {
      Nth nth = nth_argument();
      if (name == "nth-child") return nth_condition(prev, nth);
      if (name == "nth-last-child") return nth_condition(next, nth);
      if (name == "nth-of-type") return nth_condition(of_type("preceding-sibling"), nth);
      return nth_condition(of_type("following-sibling"), nth);
    }
    if (name == "not") {
      expect('(');
      skip_space();
      Step inner = compound();
      skip_space();
      expect(')');
      if (!inner.pseudo.empty()) fail(":not() takes no pseudo-element");
      std::vector<std::string> parts;
      if (inner.element != "*") parts.push_back("self::" + inner.element);
      for (auto& c : inner.conditions) parts.push_back("(" + c + ")");
      if (parts.empty()) return "0";  // :not(*)
      std::string all;
      for (std::size_t k = 0; k < parts.size(); ++k) all += (k ? " and " : "") + parts[k];
      return "not(" + all + ")";
    }
    fail("unsupported pseudo-class :" + name);
  }

  void pseudo_element(Step& step) {
    std::string name = lower(identifier());
    if (name == "text") {
      step.pseudo = "text";
    } else if (name == "attr") {
      expect('(');
      skip_space();
      step.pseudo_arg = lower(identifier());
      skip_space();
      expect(')');
      step.pseudo = "attr";
    } else {
      fail("unsupported pseudo-element ::" + name);
    }
  }

  Nth nth_argument() {
    expect('(');
    std::size_t close = s_.find(')', i_);
    if (close == std::string_view::npos) fail("unclosed '('");
    std::string arg;
    for (std::size_t k = i_; k < close; ++k) {
      if (!is_space(s_[k])) arg += s_[k];
    }
    arg = lower(arg);
    i_ = close + 1;
    if (arg == "odd") return {2, 1};
    if (arg == "even") return {2, 0};
    Nth nth;
    std::size_t n = arg.find('n');
    auto parse_int = [&](std::string_view t, long& out) {
      if (t.empty() || t.size() > 9) return false;
      std::size_t k = 0;
      bool neg = false;
      if (t[0] == '+' || t[0] == '-') {
        neg = t[0] == '-';
        k = 1;
      }
      if (k == t.size()) return false;
      long v = 0;
      for (; k < t.size(); ++k) {
        if (t[k] < '0' || t[k] > '9') return false;
        v = v * 10 + (t[k] - '0');
      }
      out = neg ? -v : v;
      return true;
    };
    if (n == std::string::npos) {
      if (!parse_int(arg, nth.b)) fail("invalid :nth-*() argument");
      return nth;
    }
    std::string_view a(arg.data(), n);
    if (a.empty() || a == "+") {
      nth.a = 1;
    } else if (a == "-") {
      nth.a = -1;
    } else if (!parse_int(a, nth.a)) {
      fail("invalid :nth-*() argument");
    }
    std::string_view b = std::string_view(arg).substr(n + 1);
    if (!b.empty() && (b[0] != '+' && b[0] != '-')) fail("invalid :nth-*() argument");
    if (!b.empty() && !parse_int(b, nth.b)) fail("invalid :nth-*() argument");
    return nth;
  }

  // identifier(): a CSS identifier with backslash escapes.
  std::string identifier() {
    std::string out;
    while (!at_end()) {
      char c = peek();
      if (c == '\\') {
        escape(out);
      } else if (is_name_char(c)) {
        out += c;
        ++i_;
      } else {
        break;
      }
    }
    if (out.empty()) fail("expected an identifier");
    return out;
  }

  // name(): an #id's name (identifier characters, digits first allowed).
  std::string name() { return identifier(); }

  void escape(std::string& out) {
    ++i_;  // the backslash
    if (at_end()) fail("dangling escape");
    if (is_hex(peek())) {
      std::uint32_t cp = 0;
      int digits = 0;
      while (!at_end() && is_hex(peek()) && digits < 6) {
        char h = peek();
        cp = cp * 16 + static_cast<std::uint32_t>(
                           h <= '9' ? h - '0' : (h <= 'F' ? h - 'A' + 10 : h - 'a' + 10));
        ++i_;
        ++digits;
      }
      if (!at_end() && is_space(peek())) ++i_;
      detail::append_utf8(out, cp);
    } else {
      out += peek();
      ++i_;
    }
  }

  std::string string_literal() {
    char quote = s_[i_++];
    std::string out;
    while (!at_end() && peek() != quote) {
      if (peek() == '\\') {
        if (i_ + 1 < s_.size() && s_[i_ + 1] == '\n') {
          i_ += 2;  // line continuation
          continue;
        }
        escape(out);
      } else {
        out += peek();
        ++i_;
      }
    }
    if (at_end()) fail("unclosed string");
    ++i_;
    return out;
  }

  void expect(char c) {
    if (at_end() || peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }

  bool skip_space() {
    std::size_t start = i_;
    while (!at_end() && is_space(peek())) ++i_;
    return i_ != start;
  }

  [[nodiscard]] bool at_end() const noexcept { return i_ >= s_.size(); }
  [[nodiscard]] char peek() const noexcept { return s_[i_]; }

  [[noreturn]] void fail(const std::string& why) const {
    std::string shown(s_.substr(0, 200));
    throw ValueError("invalid CSS selector '" + shown + "': " + why + " at offset " +
                     std::to_string(i_));
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::string css_to_xpath(std::string_view css, std::string_view prefix) {
  return Translator(css).group(prefix);
}

}  // namespace concur::crawl
