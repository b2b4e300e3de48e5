# bpgenConfig.cmake — what find_package(bpgen) loads.
#
#   find_package(bpgen 0.2 REQUIRED)
#   add_executable(app app.c)
#   bpgen_add_model(app iris.net)            # then: #include "iris.h"
#
# gives the imported targets bpgen::bpgen (the compiler) and bpgen::bp (the
# runtime library, with its include folder and -lm), and the function
# bpgen_add_model. Paths are found from this file's place, PREFIX/lib/cmake/
# bpgen, so an installed tree may be moved (or staged with DESTDIR).

if(CMAKE_VERSION VERSION_LESS 3.13)
  message(FATAL_ERROR "bpgen needs CMake 3.13 or newer (this is ${CMAKE_VERSION})")
endif()

get_filename_component(_bpgen_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT TARGET bpgen::bpgen)
  add_executable(bpgen::bpgen IMPORTED)
  set_target_properties(bpgen::bpgen PROPERTIES
    IMPORTED_LOCATION "${_bpgen_prefix}/bin/bpgen")
endif()

if(NOT TARGET bpgen::bp)
  add_library(bpgen::bp STATIC IMPORTED)
  set_target_properties(bpgen::bp PROPERTIES
    IMPORTED_LOCATION "${_bpgen_prefix}/lib/libbp.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES C
    INTERFACE_INCLUDE_DIRECTORIES "${_bpgen_prefix}/include")
  if(UNIX)
    # the runtime's maths (exp, sqrt, ...) is in libm on Unix
    set_property(TARGET bpgen::bp APPEND PROPERTY INTERFACE_LINK_LIBRARIES m)
  endif()
endif()

foreach(_bpgen_file "${_bpgen_prefix}/bin/bpgen" "${_bpgen_prefix}/lib/libbp.a"
                    "${_bpgen_prefix}/include/bp.h")
  if(NOT EXISTS "${_bpgen_file}")
    set(bpgen_FOUND FALSE)
    set(bpgen_NOT_FOUND_MESSAGE "bpgen's installation is incomplete: ${_bpgen_file} is missing")
  endif()
endforeach()
unset(_bpgen_file)
unset(_bpgen_prefix)

# bpgen_add_model(TARGET MODEL.net [PRECISION float|double])
#
# Compiles MODEL.net with bpgen at build time into
# CMAKE_CURRENT_BINARY_DIR/bpgen/TARGET/M.c and M.h, M being the model's
# name (its `model NAME` statement, else the file's name as the language
# says: nets/my-model.net gives my_model); adds M.c to TARGET, puts that
# folder on TARGET's include path so `#include "M.h"` works, and links
# TARGET privately to bpgen::bp. The model file is a dependency of the
# generated code and of CMake's configuration: editing it regenerates the
# code, and renaming the model (which renames the header) is picked up too.
function(bpgen_add_model target model)
  cmake_parse_arguments(PARSE_ARGV 2 _bp "" "PRECISION" "")
  if(_bp_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "bpgen_add_model: unexpected arguments: ${_bp_UNPARSED_ARGUMENTS} "
                        "(usage: bpgen_add_model(TARGET MODEL.net [PRECISION float|double]))")
  endif()
  if(NOT TARGET "${target}")
    message(FATAL_ERROR "bpgen_add_model: '${target}' is not a target; "
                        "create it first (add_executable or add_library)")
  endif()
  if(NOT DEFINED _bp_PRECISION)
    set(_bp_PRECISION float)
  endif()
  if(NOT _bp_PRECISION STREQUAL "float" AND NOT _bp_PRECISION STREQUAL "double")
    message(FATAL_ERROR "bpgen_add_model: PRECISION must be float or double, "
                        "not '${_bp_PRECISION}'")
  endif()
  get_filename_component(_model "${model}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${_model}" OR IS_DIRECTORY "${_model}")
    message(FATAL_ERROR "bpgen_add_model: model file '${model}' not found (looked for ${_model})")
  endif()

  # The header is named after the model, so the name is asked of bpgen now
  # (by the same rule it compiles with), and asked again whenever the model
  # file changes.
  get_target_property(_bpgen bpgen::bpgen IMPORTED_LOCATION)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_model}")
  execute_process(COMMAND "${_bpgen}" "${_model}" --print-name
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _name ERROR_VARIABLE _err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0 OR _name STREQUAL "")
    message(FATAL_ERROR "bpgen_add_model: '${_bpgen} ${_model} --print-name' failed:\n${_err}")
  endif()

  set(_dir "${CMAKE_CURRENT_BINARY_DIR}/bpgen/${target}")
  file(MAKE_DIRECTORY "${_dir}")
  add_custom_command(
    OUTPUT "${_dir}/${_name}.c" "${_dir}/${_name}.h"
    COMMAND "${_bpgen}" "${_model}" -o "${_dir}/${_name}.c" "--precision=${_bp_PRECISION}"
    DEPENDS "${_model}" "${_bpgen}"
    COMMENT "bpgen: compiling ${model} to ${_name}.c (${_bp_PRECISION})"
    VERBATIM)
  target_sources("${target}" PRIVATE "${_dir}/${_name}.c" "${_dir}/${_name}.h")
  target_include_directories("${target}" PRIVATE "${_dir}")
  target_link_libraries("${target}" PRIVATE bpgen::bp)
endfunction()
