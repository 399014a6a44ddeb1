#include "core/common/gpu_memory.h"

#include <dlfcn.h>

#include <mutex>

#include "absl/strings/str_cat.h"

namespace segrel {
namespace {

// The few NVML entry points used, as nvml.h declares them (NVML's C ABI is stable; 0 is NVML_SUCCESS).
struct NvmlMemory {
  unsigned long long total, free, used;  // NOLINT(runtime/int): nvml.h's types
};
using NvmlDevice = void*;
struct Nvml {
  int (*init)();
  int (*device_count)(unsigned*);
  int (*device_by_index)(unsigned, NvmlDevice*);
  int (*memory_info)(NvmlDevice, NvmlMemory*);
  int (*device_name)(NvmlDevice, char*, unsigned);
};

// Loads and initialises NVML once, for the life of the process.
absl::StatusOr<const Nvml*> LoadNvml() {
  static Nvml nvml;
  static absl::Status status;
  static std::once_flag once;
  std::call_once(once, [] {
    void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      status = absl::UnavailableError("no NVIDIA driver: libnvidia-ml.so.1 cannot be loaded");
      return;
    }
    const auto symbol = [&](const char* name) { return dlsym(library, name); };
    nvml.init = reinterpret_cast<int (*)()>(symbol("nvmlInit_v2"));
    nvml.device_count = reinterpret_cast<int (*)(unsigned*)>(symbol("nvmlDeviceGetCount_v2"));
    nvml.device_by_index = reinterpret_cast<int (*)(unsigned, NvmlDevice*)>(symbol("nvmlDeviceGetHandleByIndex_v2"));
    nvml.memory_info = reinterpret_cast<int (*)(NvmlDevice, NvmlMemory*)>(symbol("nvmlDeviceGetMemoryInfo"));
    nvml.device_name = reinterpret_cast<int (*)(NvmlDevice, char*, unsigned)>(symbol("nvmlDeviceGetName"));
    if (!nvml.init || !nvml.device_count || !nvml.device_by_index || !nvml.memory_info || !nvml.device_name) {
      status = absl::UnavailableError("libnvidia-ml.so.1 lacks the NVML functions segrel uses");
    } else if (const int code = nvml.init(); code != 0) {
      status = absl::UnavailableError(absl::StrCat("NVML does not initialise (error ", code, ")"));
    }
  });
  if (!status.ok()) return status;
  return &nvml;
}

}  // namespace

absl::StatusOr<std::vector<GpuMemory>> ReadGpuMemory() {
  absl::StatusOr<const Nvml*> nvml = LoadNvml();
  if (!nvml.ok()) return nvml.status();
  unsigned count = 0;
  if (const int code = (*nvml)->device_count(&count); code != 0) {
    return absl::InternalError(absl::StrCat("NVML: cannot count the GPUs (error ", code, ")"));
  }
  std::vector<GpuMemory> gpus;
  for (unsigned i = 0; i < count; ++i) {
    NvmlDevice device = nullptr;
    NvmlMemory memory{};
    char name[96] = {};
    if (const int code = (*nvml)->device_by_index(i, &device); code != 0) {
      return absl::InternalError(absl::StrCat("NVML: no handle for GPU ", i, " (error ", code, ")"));
    }
    if (const int code = (*nvml)->memory_info(device, &memory); code != 0) {
      return absl::InternalError(absl::StrCat("NVML: no memory information for GPU ", i, " (error ", code, ")"));
    }
    (*nvml)->device_name(device, name, sizeof(name));  // the name only labels the metric
    gpus.push_back({static_cast<int>(i), name, memory.used, memory.total});
  }
  return gpus;
}

}  // namespace segrel
