// Anchors the shared precompiled LibTorch header (cmake/modules.cmake); no code.
