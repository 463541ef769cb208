# Writes generated/core/version_info.h: the project version and the git revision it was built from.
find_package(Git QUIET)
set(RLFT_GIT_REVISION "unknown")
if(GIT_FOUND AND EXISTS "${PROJECT_SOURCE_DIR}/.git")
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _rev OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _rc ERROR_QUIET)
  if(_rc EQUAL 0 AND _rev)
    set(RLFT_GIT_REVISION "${_rev}")
  endif()
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/version_info.h.in
               ${PROJECT_BINARY_DIR}/generated/core/version_info.h @ONLY)
