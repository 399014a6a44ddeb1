// Empty on purpose: each core library's link check is a shared object made of that library alone and the libraries
// it may use, linked with -Wl,--no-undefined, so that a use of a folder above it fails to link (core/CMakeLists.txt).
