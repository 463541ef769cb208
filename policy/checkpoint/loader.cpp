#include "policy/checkpoint/loader.h"

#include "core/error.h"

#include <torch/torch.h>

#include <map>

namespace rlft::checkpoint {

namespace {

constexpr size_t kMaxListed = 20;

std::string shape_str(c10::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string dtype_name(at::ScalarType t) {
  try {
    return safetensors_dtype_name(t);
  } catch (const Error&) {
    return c10::toString(t);
  }
}

bool ignored(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (p.empty()) continue;
    if (name == p) return true;
    if (p.back() == '.' && name.rfind(p, 0) == 0) return true;
    if (p.front() == '.' && name.size() > p.size() && name.compare(name.size() - p.size(), p.size(), p) == 0)
      return true;
  }
  return false;
}

// Every problem, found from the headers alone (no tensor data is read).
void check(const CheckpointReader& reader, const std::vector<ParamSpec>& specs, const LoadParamsOptions& options) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  for (const auto& spec : specs) {
    RLFT_CHECK(expected.insert(spec.name).second, "parameter `{}` is expected twice", spec.name);
    if (!reader.contains(spec.name)) {
      if (!options.optional_names.count(spec.name))
        problems.push_back(fmt::format("{}: missing (expected shape {})", spec.name, shape_str(spec.shape)));
      continue;
    }
    const TensorInfo& info = reader.info(spec.name);
    if (info.shape != spec.shape)
      problems.push_back(fmt::format("{}: shape {} in the checkpoint, the model expects {}", spec.name,
                                     shape_str(info.shape), shape_str(spec.shape)));
    if (spec.stored_dtype) {
      if (info.scalar_type != *spec.stored_dtype)
        problems.push_back(fmt::format("{}: dtype {} in the checkpoint, the model expects {}", spec.name, info.dtype,
                                       dtype_name(*spec.stored_dtype)));
    } else if (!checkpoint::is_floating_dtype(info.scalar_type)) {
      problems.push_back(
          fmt::format("{}: dtype {} in the checkpoint, the model expects a floating dtype "
                      "(F32, BF16, F16 or F64)",
                      spec.name, info.dtype));
    }
  }
  if (!options.allow_unexpected) {
    for (const auto& name : reader.names())
      if (!expected.count(name) && !ignored(name, options.ignore))
        problems.push_back(fmt::format("{}: unexpected (in the checkpoint, not in the model)", name));
  }
  if (problems.empty()) return;
  const size_t n = problems.size();
  if (n > kMaxListed) {
    problems.resize(kMaxListed);
    problems.push_back(fmt::format("... and {} more", n - kMaxListed));
  }
  throw Error(fmt::format("{}: {} problem{} loading the checkpoint:\n  {}", reader.path(), n, n == 1 ? "" : "s",
                          fmt::join(problems, "\n  ")));
}

}  // namespace

TensorMap load_params(const CheckpointReader& reader, const std::vector<ParamSpec>& specs,
                      const LoadParamsOptions& options) {
  check(reader, specs, options);
  LoadOptions load;
  load.dtype = options.dtype;
  load.device = options.device;
  TensorMap out;
  for (const auto& spec : specs)
    if (reader.contains(spec.name)) out.emplace(spec.name, reader.tensor(spec.name, load));
  return out;
}

TensorMap load_params(const std::string& path, const std::vector<ParamSpec>& specs, const LoadParamsOptions& options) {
  return load_params(CheckpointReader::open(path), specs, options);
}

std::vector<ParamSpec> module_specs(const torch::nn::Module& module) {
  std::vector<ParamSpec> specs;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (!t.defined()) return;
    ParamSpec s;
    s.name = name;
    s.shape = t.sizes().vec();
    if (!checkpoint::is_floating_dtype(t.scalar_type())) s.stored_dtype = t.scalar_type();
    specs.push_back(std::move(s));
  };
  for (const auto& p : module.named_parameters(/*recurse=*/true)) add(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) add(b.key(), b.value());
  return specs;
}

void load_into_module(torch::nn::Module& module, const std::string& path, const LoadParamsOptions& options) {
  load_into_module(module, CheckpointReader::open(path), options);
}

void load_into_module(torch::nn::Module& module, const CheckpointReader& reader, const LoadParamsOptions& options) {
  auto name_of = [&](const std::string& name) {
    return options.checkpoint_name ? options.checkpoint_name(name) : name;
  };
  auto specs = module_specs(module);
  for (auto& spec : specs) spec.name = name_of(spec.name);
  check(reader, specs, options);
  torch::NoGradGuard no_grad;
  auto fill = [&](const std::string& module_name, at::Tensor& target, bool may_share) {
    if (!target.defined()) return;
    const std::string name = name_of(module_name);
    if (!reader.contains(name)) return;
    if (may_share && options.share_mapped && target.device().is_cpu() &&
        reader.info(name).scalar_type == target.scalar_type()) {
      const at::Tensor view = reader.mapped(name);
      if (view.defined()) {
        target.set_data(view);
        return;
      }
    }
    LoadOptions load;
    load.dtype = target.scalar_type();
    at::Tensor t = reader.tensor(name, load);
    target.copy_(t);
  };
  for (auto& p : module.named_parameters(true)) fill(p.key(), p.value(), true);
  for (auto& b : module.named_buffers(true)) fill(b.key(), b.value(), false);
}

TensorMap module_tensors(const torch::nn::Module& module, const std::set<std::string>& skip) {
  TensorMap out;
  for (const auto& p : module.named_parameters(true))
    if (p.value().defined() && !skip.count(p.key())) out.emplace(p.key(), p.value().detach());
  for (const auto& b : module.named_buffers(true))
    if (b.value().defined() && !skip.count(b.key())) out.emplace(b.key(), b.value().detach());
  return out;
}

}  // namespace rlft::checkpoint
