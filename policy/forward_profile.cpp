#include "policy/forward_profile.h"

namespace rlft::policy {
namespace {
thread_local ForwardProfile* current = nullptr;
}  // namespace

ForwardProfile* forward_profile() {
  return current;
}

ScopedForwardProfile::ScopedForwardProfile(ForwardProfile* profile) : previous_(current) {
  current = profile;
}

ScopedForwardProfile::~ScopedForwardProfile() {
  current = previous_;
}

}  // namespace rlft::policy
