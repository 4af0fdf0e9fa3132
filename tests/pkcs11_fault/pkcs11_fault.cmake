# Fault-injecting PKCS#11 module for the HSM tests (tests/pkcs11_fault/README.md).
# Included from tests/CMakeLists.txt (so the set_property calls below act on tests defined there).

set(PKCS11_FAULT_DIR ${CMAKE_CURRENT_SOURCE_DIR}/pkcs11_fault)

# The real module it forwards to when FULCRUM_PKCS11_FAULT_TARGET is not set: SoftHSM2.
find_library(FULCRUM_SOFTHSM2_MODULE NAMES softhsm2
  PATH_SUFFIXES softhsm ${CMAKE_LIBRARY_ARCHITECTURE}/softhsm
  DOC "SoftHSM2 PKCS#11 module (libsofthsm2.so)")
# PKCS#11 declarations: p11-kit's pkcs11.h when installed, else the minimal pkcs11_min.h.
find_path(FULCRUM_P11KIT_INCLUDE_DIR p11-kit/pkcs11.h PATH_SUFFIXES p11-kit-1)

add_library(fulcrum-pkcs11-fault MODULE
  ${PKCS11_FAULT_DIR}/fault_module.c ${PKCS11_FAULT_DIR}/fault_state.c)
set_target_properties(fulcrum-pkcs11-fault PROPERTIES
  PREFIX "lib" C_VISIBILITY_PRESET hidden LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_include_directories(fulcrum-pkcs11-fault PRIVATE ${PKCS11_FAULT_DIR})
if(FULCRUM_P11KIT_INCLUDE_DIR)
  target_include_directories(fulcrum-pkcs11-fault PRIVATE ${FULCRUM_P11KIT_INCLUDE_DIR})
  target_compile_definitions(fulcrum-pkcs11-fault PRIVATE FULCRUM_FAULT_P11KIT)
endif()
if(FULCRUM_SOFTHSM2_MODULE)
  target_compile_definitions(fulcrum-pkcs11-fault PRIVATE
    FULCRUM_FAULT_DEFAULT_TARGET="${FULCRUM_SOFTHSM2_MODULE}")
endif()
# It is loaded by uninstrumented programs (pkcs11-tool) too, so never build it with sanitizers.
target_compile_options(fulcrum-pkcs11-fault PRIVATE -fno-sanitize=all)
# -z nodelete: an application that unloads and reloads the module (libp11's PKCS11_CTX_unload +
# PKCS11_CTX_load, a typical HSM recovery) keeps the fault state (counts, log-out) of the process.
target_link_options(fulcrum-pkcs11-fault PRIVATE -fno-sanitize=all -Wl,-z,nodelete)
target_link_libraries(fulcrum-pkcs11-fault PRIVATE Threads::Threads ${CMAKE_DL_LIBS})

# In-process checks of the module (run by test_fault_module.sh).
add_executable(fulcrum-pkcs11-fault-check ${PKCS11_FAULT_DIR}/fault_check.c)
target_include_directories(fulcrum-pkcs11-fault-check PRIVATE ${PKCS11_FAULT_DIR}
  ${CMAKE_CURRENT_SOURCE_DIR})
if(FULCRUM_P11KIT_INCLUDE_DIR)
  target_include_directories(fulcrum-pkcs11-fault-check PRIVATE ${FULCRUM_P11KIT_INCLUDE_DIR})
  target_compile_definitions(fulcrum-pkcs11-fault-check PRIVATE FULCRUM_FAULT_P11KIT)
endif()
target_link_libraries(fulcrum-pkcs11-fault-check PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
add_dependencies(fulcrum-pkcs11-fault-check fulcrum-pkcs11-fault)

set(PKCS11_FAULT_ENV
  "FULCRUM_PKCS11_FAULT_MODULE=$<TARGET_FILE:fulcrum-pkcs11-fault>"
  "FULCRUM_PKCS11_FAULT_CHECK=$<TARGET_FILE:fulcrum-pkcs11-fault-check>"
  "FULCRUM_SOFTHSM2_MODULE=${FULCRUM_SOFTHSM2_MODULE}")

# The module's own check: SoftHSM2 token + pkcs11-tool through the module.
add_test(NAME pkcs11_fault/module
  COMMAND bash ${PKCS11_FAULT_DIR}/test_fault_module.sh)
set_tests_properties(pkcs11_fault/module PROPERTIES ENVIRONMENT "${PKCS11_FAULT_ENV}" TIMEOUT 120)

# The server's recovery from HSM faults (tests/integration/test_pkcs11_faults.c).
if(TARGET test_pkcs11_faults)
  add_dependencies(test_pkcs11_faults fulcrum-pkcs11-fault)
  set_property(TEST integration/test_pkcs11_faults APPEND PROPERTY ENVIRONMENT ${PKCS11_FAULT_ENV})
endif()
