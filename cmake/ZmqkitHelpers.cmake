# Warnings and sanitizers for project targets (never applied to third-party code).

set(ZMQKIT_SANITIZER "none" CACHE STRING "Sanitizer build: none, address (address+undefined), undefined, thread")
set_property(CACHE ZMQKIT_SANITIZER PROPERTY STRINGS none address undefined thread)

# zmqkit_warnings(target): -Wall -Wextra -Wconversion -Werror on project code.
function(zmqkit_warnings target)
    if(ZMQKIT_WARNINGS_AS_ERRORS)
        set(werror -Werror)
    endif()
    target_compile_options(${target} PRIVATE
        -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow
        -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough ${werror})
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND NOT ZMQKIT_SANITIZER STREQUAL "none")
        # GCC 12's flow analysis under -fsanitize reports maybe-uninitialized inside libstdc++
        # (std::regex, std::function) where nothing is uninitialized.
        target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
       AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
        # GCC 12 at -O3 (a Release build) reports -Wrestrict inside libstdc++'s
        # `"literal" + std::string` (GCC bug 105329) where nothing overlaps: keep it a warning.
        target_compile_options(${target} PRIVATE -Wno-error=restrict)
    endif()
endfunction()

# Applied globally so that the libraries, tests and binaries agree on the runtime.
macro(zmqkit_apply_sanitizer)
    if(ZMQKIT_SANITIZER STREQUAL "address")
        add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
        add_link_options(-fsanitize=address,undefined)
    elseif(ZMQKIT_SANITIZER STREQUAL "undefined")
        add_compile_options(-fsanitize=undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
        add_link_options(-fsanitize=undefined)
    elseif(ZMQKIT_SANITIZER STREQUAL "thread")
        add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
        add_link_options(-fsanitize=thread)
    elseif(NOT ZMQKIT_SANITIZER STREQUAL "none")
        message(FATAL_ERROR "ZMQKIT_SANITIZER must be none, address, undefined or thread (got '${ZMQKIT_SANITIZER}')")
    endif()
endmacro()

# zmqkit_library_properties(target): what every installed zmqkit library carries: its VERSION
# and SOVERSION (0.x: major.minor, since a 0.x minor release may break the ABI; from 1.0: major),
# and position-independent code (a static zmqkit links into a user's shared library).
function(zmqkit_library_properties target)
    if(PROJECT_VERSION_MAJOR EQUAL 0)
        set(soversion ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
    else()
        set(soversion ${PROJECT_VERSION_MAJOR})
    endif()
    set_target_properties(${target} PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${soversion}
                          POSITION_INDEPENDENT_CODE ON)
endfunction()

# zmqkit_pattern_library(target EXPORT_NAME name SOURCES files...): one pattern's library
# (zmqkit_<target>, alias zmqkit::<name>, file libzmqkit-<name>): public on zmqkit::device (and so core),
# private on the pattern helpers and nlohmann (BUILD_INTERFACE: users need neither). It is added
# to the global property ZMQKIT_PATTERN_TARGETS, which the umbrella zmqkit::patterns and the
# install rules read.
function(zmqkit_pattern_library target)
    cmake_parse_arguments(ARG "" "EXPORT_NAME" "SOURCES" ${ARGN})
    add_library(${target} ${ARG_SOURCES})
    add_library(zmqkit::${ARG_EXPORT_NAME} ALIAS ${target})
    string(REPLACE "_" "-" file_name "zmqkit-${ARG_EXPORT_NAME}")
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${file_name}
                          EXPORT_NAME ${ARG_EXPORT_NAME})
    zmqkit_library_properties(${target})
    target_link_libraries(${target} PUBLIC zmqkit_device)
    target_link_libraries(${target} PRIVATE zmqkit_pattern_common
                          $<BUILD_INTERFACE:nlohmann_json::nlohmann_json>)
    zmqkit_warnings(${target})
    set_property(GLOBAL APPEND PROPERTY ZMQKIT_PATTERN_TARGETS ${target})
endfunction()

# zmqkit_library(<target> <name> sources...): a project library exported as zmqkit::<name>, file
# libzmqkit-<name>, with the public headers of include/ and C++20 for its users, and the
# project's warnings.
function(zmqkit_library target name)
    add_library(${target} ${ARGN})
    add_library(zmqkit::${name} ALIAS ${target})
    set_target_properties(${target} PROPERTIES OUTPUT_NAME zmqkit-${name} EXPORT_NAME ${name}
                          POSITION_INDEPENDENT_CODE ON)
    target_include_directories(${target} PUBLIC
        $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
        $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
    zmqkit_library_properties(${target})
    target_compile_features(${target} PUBLIC cxx_std_20)
    zmqkit_warnings(${target})
endfunction()
