#pragma once
// The precompiled header shared by every rlft target (see cmake/modules.cmake; used by modules declared TORCH_PCH).
// Only heavy, stable third-party headers belong here; rlft headers are included where used.
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
