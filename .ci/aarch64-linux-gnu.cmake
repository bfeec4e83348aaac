# CMake toolchain: cross-build _core for aarch64 Linux on an x86-64 host (.ci/arm64).
# The compiler is $CXX when set (e.g. a `zig c++ -target aarch64-linux-gnu.2.17`
# wrapper), else Debian's aarch64-linux-gnu-g++; programs CMake itself runs go
# through qemu-user. Python's headers come from the arm64 libpython3.11-dev
# (passed as Python_INCLUDE_DIR), pybind11 from the host (header-only).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
if(NOT DEFINED ENV{CXX})
  set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
  set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
