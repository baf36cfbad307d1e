// src/mp/exception_info.hpp (internal) — how a task's exception is described to another process
// or machine (RemoteError's type name and message): the process pool's workers and concur::dist's
// workers describe it the same way.
#pragma once

#include <string>

#include "concur/detail/config.hpp"

namespace concur::mp::detail {

struct ExceptionInfo {
  std::string type_name;
  std::string message;
};

// describe_current_exception() describes the exception being handled (call it in a catch block).
// concur errors keep their Python name ("ValueError") as the type and the rest of what() as the
// message; other exceptions give their demangled C++ type and what(); mp::SystemExit gives
// "SystemExit" and its code; a non-exception object gives its type.
CONCUR_EXPORT ExceptionInfo describe_current_exception();

}  // namespace concur::mp::detail
