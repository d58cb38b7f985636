# Embeds every file under dashboards/ui/ into a C file, so the binary serves the web UI
# with no file on disk (the very files of the repository, byte for byte).
# Usage: cmake -DDIR=<ui dir> -DOUT=<file.c> -P embed_files.cmake
# Output: const struct kw_ui_file kw_ui_files[] = {{"/index.html", "text/html; …", data, len},
# …}; const size_t kw_ui_nfiles; (sidecar/ui.h).  Paths are relative to DIR with a leading
# '/', sorted; the content type comes from the extension (html, js, css, svg, json, png,
# ico; anything else is refused, so that nothing is served with a guessed type).
file(GLOB_RECURSE files RELATIVE "${DIR}" "${DIR}/*")
list(SORT files)
set(body "/* Generated from dashboards/ui/ by cmake/embed_files.cmake: do not edit. */\n")
string(APPEND body "#include \"sidecar/ui.h\"\n\n")
set(table "")
set(n 0)
foreach(rel ${files})
  get_filename_component(base "${rel}" NAME)
  if(base MATCHES "^\\." OR base MATCHES "~$")
    continue() # editor and hidden files
  endif()
  string(TOLOWER "${rel}" lower)
  if(lower MATCHES "\\.html?$")
    set(type "text/html; charset=utf-8")
  elseif(lower MATCHES "\\.js$")
    set(type "text/javascript; charset=utf-8")
  elseif(lower MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  elseif(lower MATCHES "\\.svg$")
    set(type "image/svg+xml")
  elseif(lower MATCHES "\\.json$")
    set(type "application/json")
  elseif(lower MATCHES "\\.png$")
    set(type "image/png")
  elseif(lower MATCHES "\\.ico$")
    set(type "image/x-icon")
  else()
    message(FATAL_ERROR "embed_files: ${DIR}/${rel}: no content type for this extension "
                        "(html, js, css, svg, json, png, ico)")
  endif()
  if(rel MATCHES "[\"\\\\ ]")
    message(FATAL_ERROR "embed_files: ${DIR}/${rel}: quotes, backslashes or spaces in a UI file name")
  endif()
  file(SIZE "${DIR}/${rel}" len)
  file(READ "${DIR}/${rel}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
  # one trailing NUL, not counted in len: text files can be used as C strings
  string(APPEND body "static const unsigned char file${n}[] = {${arr}0x00}; /* /${rel} */\n")
  string(APPEND table "    {\"/${rel}\", \"${type}\", file${n}, ${len}},\n")
  math(EXPR n "${n} + 1")
endforeach()
if(n EQUAL 0)
  string(APPEND table "    {0},\n") # C has no empty arrays; kw_ui_nfiles stays 0
endif()
string(APPEND body "\nconst struct kw_ui_file kw_ui_files[] = {\n${table}};\n")
string(APPEND body "const size_t kw_ui_nfiles = ${n};\n")
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
