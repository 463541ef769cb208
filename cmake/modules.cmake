# rlft_module(NAME [TORCH_PCH] DEPS ...): the library target rlft_NAME from the .cpp files in
# NAME/ (recursively; app/main.cpp belongs to the executable). It links only the targets
# given, which must lie below it on the ladder, so a wrong include fails to link.
#
# Compile time: <torch/torch.h> costs ~19 s per file on these machines, ATen.h ~6 s, a file
# without LibTorch ~4 s. Modules whose files are tensor code (TORCH_PCH) share one
# precompiled <torch/torch.h> (~11 s per file); the others include only what they use, since
# loading a 600 MB precompiled header would cost them more than it saves.

function(rlft_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  if(RLFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# The one precompiled LibTorch header, shared with REUSE_FROM.
function(rlft_ensure_torch_pch)
  if(TARGET rlft_torch_pch)
    return()
  endif()
  add_library(rlft_torch_pch OBJECT "${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp")
  target_link_libraries(rlft_torch_pch PUBLIC torch fmt::fmt)
  target_include_directories(rlft_torch_pch PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/generated)
  target_precompile_headers(rlft_torch_pch PRIVATE "${PROJECT_SOURCE_DIR}/cmake/torch_pch.h")
  rlft_warnings(rlft_torch_pch)
endfunction()

# rlft_use_torch_pch(TARGET): compile TARGET with the shared precompiled LibTorch header.
function(rlft_use_torch_pch target)
  rlft_ensure_torch_pch()
  target_precompile_headers(${target} REUSE_FROM rlft_torch_pch)
endfunction()

# rlft_unity(TARGET): with RLFT_UNITY_BUILD, compile TARGET's files in batches of
# RLFT_UNITY_BATCH (one translation unit each). LibTorch's headers cost ~10 s of compiler
# time in every translation unit that includes them, whatever the file's own size; batching
# pays that once per batch. Files keep their helpers in uniquely named namespaces or
# anonymous ones without clashes, so both modes build.
function(rlft_unity target)
  if(RLFT_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE ${RLFT_UNITY_BATCH})
  endif()
endfunction()

# rlft_isa_sources(SRCS_VAR): files named NAME.avx512.cpp, NAME.avx2.cpp and NAME.base.cpp are
# one kernel compiled for one instruction set each, chosen at run time by the CPU's features
# (policy/kernels/small_gemm.cpp). They get that set's flags, and stay out of the unity
# batches and the precompiled header, whose code must run on any x86-64. Off x86-64 only the
# .base file is kept.
function(rlft_isa_sources srcs_var)
  set(srcs ${${srcs_var}})
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    list(FILTER srcs EXCLUDE REGEX "\\.(avx512|avx2)\\.cpp$")
  endif()
  foreach(src IN LISTS srcs)
    set(flags "")
    if(src MATCHES "\\.avx512\\.cpp$")
      set(flags -mavx512f -mfma)
    elseif(src MATCHES "\\.avx2\\.cpp$")
      set(flags -mavx2 -mfma)
    elseif(NOT src MATCHES "\\.base\\.cpp$")
      continue()
    endif()
    # Fused multiply-adds from `a * b + c` on vector types (ISO C++ mode contracts nothing).
    set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${flags};-ffp-contract=fast"
                                SKIP_UNITY_BUILD_INCLUSION ON SKIP_PRECOMPILE_HEADERS ON)
  endforeach()
  set(${srcs_var} ${srcs} PARENT_SCOPE)
endfunction()

function(rlft_module name)
  cmake_parse_arguments(M "TORCH_PCH" "" "DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${name}/*.cpp")
  list(FILTER srcs EXCLUDE REGEX "/app/main\\.cpp$")
  set(t rlft_${name})
  if(NOT srcs)
    # A rung with no code yet still holds its place on the ladder.
    add_library(${t} INTERFACE)
    target_include_directories(${t} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${t} INTERFACE ${M_DEPS})
    return()
  endif()
  rlft_isa_sources(srcs)
  add_library(${t} STATIC ${srcs})
  target_include_directories(${t} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/generated)
  target_link_libraries(${t} PUBLIC ${M_DEPS})
  if(M_TORCH_PCH)
    rlft_use_torch_pch(${t})
  endif()
  rlft_unity(${t})
  rlft_warnings(${t})
endfunction()
