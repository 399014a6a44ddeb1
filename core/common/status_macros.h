// Early-return helpers for absl::Status and absl::StatusOr.
#ifndef SEGREL_CORE_COMMON_STATUS_MACROS_H_
#define SEGREL_CORE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define SEGREL_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    const absl::Status segrel_status_ = (expr);      \
    if (!segrel_status_.ok()) return segrel_status_; \
  } while (false)

// Evaluates `expr` (an absl::StatusOr<T>); returns its status when not OK, else moves its value into `lhs`.
#define SEGREL_ASSIGN_OR_RETURN(lhs, expr) \
  SEGREL_ASSIGN_OR_RETURN_IMPL_(SEGREL_STATUS_CONCAT_(segrel_status_or_, __LINE__), lhs, expr)

#define SEGREL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#define SEGREL_STATUS_CONCAT_INNER_(a, b) a##b
#define SEGREL_STATUS_CONCAT_(a, b) SEGREL_STATUS_CONCAT_INNER_(a, b)

#endif  // SEGREL_CORE_COMMON_STATUS_MACROS_H_
