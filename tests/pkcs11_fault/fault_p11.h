/*
 * tests/pkcs11_fault/fault_p11.h: which PKCS#11 header the fault module compiles against.
 * FULCRUM_FAULT_P11KIT is defined by pkcs11_fault.cmake when p11-kit's pkcs11.h was found;
 * otherwise the project's own minimal declarations (pkcs11_min.h) are used.
 */
#ifndef FULCRUM_FAULT_P11_H
#define FULCRUM_FAULT_P11_H

#ifdef FULCRUM_FAULT_P11KIT
#include <p11-kit/pkcs11.h>
#else
#include "pkcs11_min.h"
#endif

#endif
